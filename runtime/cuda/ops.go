package cuda

import (
	"fmt"
	"math"
)

// Entries are the kernels of lorac's modules that Lorac binds (the table
// of backends/ptx; TestEntriesMatchModule checks the two agree).
var Entries = []string{
	"lorac_add", "lorac_mul", "lorac_gelu", "lorac_gelu_grad", "lorac_silu", "lorac_silu_grad",
	"lorac_scale", "lorac_softcap", "lorac_softcap_grad",
	"lorac_layernorm", "lorac_rmsnorm", "lorac_softmax", "lorac_cross_entropy", "lorac_cross_entropy_grad",
	"lorac_adamw", "lorac_gemm_f32_nt", "lorac_gemm_f32_nn", "lorac_gemm_f32_tn", "lorac_gemm_f32_tt",
	"lorac_gemm_bf16_nt", "lorac_gemm_bf16_nt_async", "lorac_f32_to_bf16", "lorac_gemv",
	"lorac_attention", "lorac_attention_grad_q", "lorac_attention_grad_kv", "lorac_kv_append", "lorac_attention_decode",
	"lorac_row_stats", "lorac_layernorm_grad", "lorac_rmsnorm_grad", "lorac_softmax_grad", "lorac_col_grads",
	"lorac_rope", "lorac_embedding", "lorac_embedding_grad", "lorac_copy_cols", "lorac_fill",
	"lorac_dropout_mask",
}

// Lorac launches lorac's kernels on one device, sizing each grid as its
// kernel expects. All launches go to Stream.
type Lorac struct {
	D       *Device
	Stream  Stream
	m       *Module
	k       map[string]*Kernel
	scratch map[string]Buffer // grow-only work buffers of the composite ops
	freqs   map[ropeKey]Ptr   // RoPE inverse frequency tables
}

// Lorac loads the embedded module for the device and binds every entry.
func (d *Device) Lorac() (*Lorac, error) {
	m, err := d.LoadLorac()
	if err != nil {
		return nil, err
	}
	l := &Lorac{D: d, m: m, k: map[string]*Kernel{}, scratch: map[string]Buffer{}, freqs: map[ropeKey]Ptr{}}
	for _, e := range Entries {
		if l.k[e], err = m.Kernel(e); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// maxIndex bounds every matrix: the kernels index elements with 32-bit
// unsigned arithmetic.
const maxIndex = math.MaxUint32

// tooBig reports an element count past 32-bit indexing.
func tooBig(n int) bool { return uint64(n) > maxIndex }

// Shape is a launch: grid, block and the dynamic shared memory (always 0:
// lorac's kernels declare their shared arrays statically).
type Shape struct {
	Grid, Block Dim3
}

// elementwiseShape: a grid-stride loop, 256 threads a block, at most 4096
// blocks (the loop covers the rest).
func elementwiseShape(n int) (Shape, error) {
	if n <= 0 || tooBig(n) {
		return Shape{}, fmt.Errorf("cuda: %d elements: want 1 to %d", n, uint64(maxIndex))
	}
	return Shape{Dim3{min((n+255)/256, 4096), 1, 1}, Dim3{256, 1, 1}}, nil
}

// rowsShape: one 256-thread block per row.
func rowsShape(N, C int) (Shape, error) {
	if N <= 0 || C <= 0 || N > math.MaxInt32 || tooBig(N*C) {
		return Shape{}, fmt.Errorf("cuda: %d rows of %d: out of range", N, C)
	}
	return Shape{Dim3{N, 1, 1}, Dim3{256, 1, 1}}, nil
}

// gemmShape: 64×64 tiles, of 256 threads (fp32) or 128 (bf16), grid x over
// the M output columns, y over the N rows.
func gemmShape(bf16 bool, N, M, K1, K2 int) (Shape, error) {
	if N <= 0 || M <= 0 || K1 < 0 || K2 < 0 {
		return Shape{}, fmt.Errorf("cuda: GEMM dimensions N=%d M=%d K1=%d K2=%d must be positive (K2 may be 0)", N, M, K1, K2)
	}
	for _, p := range [][2]int{{N, M}, {N, K1}, {M, K1}, {N, K2}, {M, K2}} {
		if tooBig(p[0] * p[1]) {
			return Shape{}, fmt.Errorf("cuda: GEMM operand of %d×%d elements exceeds 32-bit indexing", p[0], p[1])
		}
	}
	if bf16 {
		if K1%2 != 0 || K2%2 != 0 {
			return Shape{}, fmt.Errorf("cuda: bf16 GEMM needs even K1, K2 (got %d, %d): fragments load bf16 pairs", K1, K2)
		}
	}
	if (N+63)/64 > 65535 {
		return Shape{}, fmt.Errorf("cuda: GEMM with %d rows exceeds the grid", N)
	}
	if bf16 {
		return Shape{Dim3{(M + 63) / 64, (N + 63) / 64, 1}, Dim3{128, 1, 1}}, nil
	}
	return Shape{Dim3{(M + 63) / 64, (N + 63) / 64, 1}, Dim3{256, 1, 1}}, nil
}

// gemmBF16Async reports whether lorac_gemm_bf16_nt_async can take a bf16
// GEMM: its cp.async copies move 16 bytes (8 bf16) of a row at a time, so
// every operand row must start on a 16-byte boundary — K1 and K2 multiples
// of 8 and the operand pointers 16-byte aligned (a2, b2 only when K2 > 0).
// Other shapes go to lorac_gemm_bf16_nt, which reads 4-byte pairs.
func gemmBF16Async(a1, b1, a2, b2 Ptr, K1, K2 int) bool {
	if K1%8 != 0 || K2%8 != 0 {
		return false
	}
	ptrs := []Ptr{a1, b1}
	if K2 > 0 {
		ptrs = append(ptrs, a2, b2)
	}
	for _, p := range ptrs {
		if p%16 != 0 {
			return false
		}
	}
	return true
}

// gemmAsyncShape: 128×128 tiles of 256 threads, grid x over the M output
// columns, y over the N rows (after gemmShape's checks).
func gemmAsyncShape(N, M, K1, K2 int) (Shape, error) {
	if _, err := gemmShape(true, N, M, K1, K2); err != nil {
		return Shape{}, err
	}
	return Shape{Dim3{(M + 127) / 128, (N + 127) / 128, 1}, Dim3{256, 1, 1}}, nil
}

// gemvShape: one warp per output row, 8 rows a block.
func gemvShape(M, K int) (Shape, error) {
	if M <= 0 || K <= 0 || tooBig(M*K) {
		return Shape{}, fmt.Errorf("cuda: GEMV %d×%d out of range", M, K)
	}
	return Shape{Dim3{(M + 7) / 8, 1, 1}, Dim3{256, 1, 1}}, nil
}

func (l *Lorac) launch(entry string, s Shape, err error, args ...any) error {
	if err != nil {
		return fmt.Errorf("%s: %w", entry, err)
	}
	k, ok := l.k[entry]
	if !ok {
		return fmt.Errorf("cuda: kernel %s is not bound", entry)
	}
	return k.Launch(s.Grid, s.Block, 0, l.Stream, args...)
}

// Unary runs out = f(x) for entry lorac_gelu or lorac_silu.
func (l *Lorac) Unary(entry string, out, x Ptr, n int) error {
	s, err := elementwiseShape(n)
	return l.launch(entry, s, err, out, x, n)
}

// Binary runs out = f(a, b): lorac_add, lorac_mul, and the gradients
// lorac_gelu_grad and lorac_silu_grad (a = dout, b = x).
func (l *Lorac) Binary(entry string, out, a, b Ptr, n int) error {
	s, err := elementwiseShape(n)
	return l.launch(entry, s, err, out, a, b, n)
}

// LayerNorm is kern.LayerNorm; bias may be 0.
func (l *Lorac) LayerNorm(out, x, gain, bias Ptr, N, C int, eps float32) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_layernorm", s, err, out, x, gain, bias, N, C, eps)
}

// RMSNorm is kern.RMSNorm, the gain shifted by offset (Gemma's 1 + w).
// Per-head normalisation needs nothing of its own: the lowering passes rows
// of one head each (N = rows·heads, C = head size).
func (l *Lorac) RMSNorm(out, x, gain Ptr, N, C int, eps, offset float32) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_rmsnorm", s, err, out, x, gain, N, C, eps, offset)
}

// Softmax is kern.Softmax.
func (l *Lorac) Softmax(out, x Ptr, N, C int) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_softmax", s, err, out, x, N, C)
}

// CrossEntropyRows writes each row's loss (0 for ignored rows); the mean
// kern.CrossEntropy returns is their sum over the counted rows.
func (l *Lorac) CrossEntropyRows(loss, logits, targets Ptr, N, V int) error {
	s, err := rowsShape(N, V)
	return l.launch("lorac_cross_entropy", s, err, loss, logits, targets, N, V)
}

// CrossEntropyGradScaled is kern.CrossEntropyGrad with g = dloss/count
// given.
func (l *Lorac) CrossEntropyGradScaled(dlogits, logits, targets Ptr, N, V int, g float32) error {
	s, err := rowsShape(N, V)
	return l.launch("lorac_cross_entropy_grad", s, err, dlogits, logits, targets, N, V, g)
}

// AdamW is one engine.AdamW.Step on the device: update number step
// (from 1) at rate lr.
func (l *Lorac) AdamW(p, g, m, v Ptr, n int, beta1, beta2, eps, weightDecay, lr float64, step int) error {
	if step < 1 {
		return fmt.Errorf("cuda: AdamW step %d must count from 1", step)
	}
	t := float64(step)
	stepSize := lr / (1 - math.Pow(beta1, t))
	sqrtBC2 := math.Sqrt(1 - math.Pow(beta2, t))
	decay := 1 - lr*weightDecay
	s, err := elementwiseShape(n)
	return l.launch("lorac_adamw", s, err, p, g, m, v, n, beta1, beta2, eps, stepSize, sqrtBC2, decay)
}

// GemmF32 is C = alpha1·op(A1)·op(B1) + alpha2·A2·B2ᵀ + bias on the exact
// fp32 path. layout is "nt" (B1 is nn.Linear's (M, K1) weight), "nn"
// (B1 is (K1, M)), "tn" or "tt" (A1 stored (K1, N)). bias, mask, a2 and
// b2 may be 0 (K2 = 0 without a LoRA segment).
func (l *Lorac) GemmF32(layout string, c, a1, b1, bias, mask, a2, b2 Ptr, N, M, K1, K2 int, alpha1, alpha2 float32) error {
	switch layout {
	case "nt", "nn", "tn", "tt":
	default:
		return fmt.Errorf("cuda: GEMM layout %q: want nt, nn, tn or tt", layout)
	}
	s, err := gemmShape(false, N, M, K1, K2)
	return l.launch("lorac_gemm_f32_"+layout, s, err, c, a1, b1, bias, mask, a2, b2, N, M, K1, K2, alpha1, alpha2)
}

// GemmBF16 is the tensor-core C = alpha1·A1·B1ᵀ + alpha2·A2·B2ᵀ + bias,
// operands bf16 (ToBF16), C and bias fp32. It runs the pipelined
// lorac_gemm_bf16_nt_async where gemmBF16Async allows, else
// lorac_gemm_bf16_nt; both compute the same thing.
func (l *Lorac) GemmBF16(c, a1, b1, bias, a2, b2 Ptr, N, M, K1, K2 int, alpha1, alpha2 float32) error {
	if gemmBF16Async(a1, b1, a2, b2, K1, K2) {
		s, err := gemmAsyncShape(N, M, K1, K2)
		return l.launch("lorac_gemm_bf16_nt_async", s, err, c, a1, b1, bias, a2, b2, N, M, K1, K2, alpha1, alpha2)
	}
	s, err := gemmShape(true, N, M, K1, K2)
	return l.launch("lorac_gemm_bf16_nt", s, err, c, a1, b1, bias, a2, b2, N, M, K1, K2, alpha1, alpha2)
}

// ToBF16 rounds n float32s to bf16 (2 bytes each in out).
func (l *Lorac) ToBF16(out, x Ptr, n int) error {
	s, err := elementwiseShape(n)
	return l.launch("lorac_f32_to_bf16", s, err, out, x, n)
}

// GEMV is the batch-1 decode y = W·x + bias, W (M, K); bias may be 0.
func (l *Lorac) GEMV(y, w, x, bias Ptr, M, K int) error {
	s, err := gemvShape(M, K)
	return l.launch("lorac_gemv", s, err, y, w, x, bias, M, K)
}

// MaxHeadSize is the largest head the attention kernels take.
const MaxHeadSize = 256

// attentionShape: one warp per row (8 a block), grid y over B·heads.
func attentionShape(rows, B, heads, NH, KVH, HS int) (Shape, error) {
	switch {
	case rows <= 0 || B <= 0 || NH <= 0 || KVH <= 0 || HS <= 0:
		return Shape{}, fmt.Errorf("cuda: attention dimensions must be positive")
	case NH%KVH != 0:
		return Shape{}, fmt.Errorf("cuda: attention: %d kv heads do not divide %d heads", KVH, NH)
	case HS > MaxHeadSize:
		return Shape{}, fmt.Errorf("cuda: attention: head size %d exceeds %d", HS, MaxHeadSize)
	case B*heads > 65535:
		return Shape{}, fmt.Errorf("cuda: attention: %d sequences × heads exceed the grid", B*heads)
	case tooBig(B * rows * NH * HS):
		return Shape{}, fmt.Errorf("cuda: attention operands exceed 32-bit indexing")
	}
	return Shape{Dim3{(rows + 7) / 8, B * heads, 1}, Dim3{256, 1, 1}}, nil
}

func attnScale(HS int) float32 { return float32(1 / math.Sqrt(float64(HS))) }

// attnArgs checks the attention kernels' window, score scale and soft-cap
// and returns the scale to pass: scale, or 1/√HS for 0.
func attnArgs(kernel string, HS, W int, scale, softcap float32) (float32, error) {
	switch {
	case W < 0 || W > math.MaxInt32:
		return 0, fmt.Errorf("cuda: %s: window %d out of range (0: none)", kernel, W)
	case math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0):
		return 0, fmt.Errorf("cuda: %s: score scale %g is not finite", kernel, scale)
	case !(softcap >= 0) || math.IsInf(float64(softcap), 0):
		return 0, fmt.Errorf("cuda: %s: soft-cap %g must be finite and ≥ 0 (0: none)", kernel, softcap)
	case scale == 0:
		return attnScale(HS), nil
	}
	return scale, nil
}

// Attention is kern.Attention: causal, grouped-query, online softmax; W > 0
// keeps each query's last W keys, softcap > 0 caps the scaled scores
// (scale 0: 1/√HS).
func (l *Lorac) Attention(out, q, k, v Ptr, B, T, NH, KVH, HS, W int, scale, softcap float32) error {
	sc, err := attnArgs("Attention", HS, W, scale, softcap)
	if err != nil {
		return err
	}
	s, err := attentionShape(T, B, NH, NH, KVH, HS)
	return l.launch("lorac_attention", s, err, out, q, k, v, B, T, NH, KVH, HS, W, sc, softcap)
}

// AttentionStatsLen is the float32 count of the scratch AttentionGrad needs:
// three per query row and head.
func AttentionStatsLen(B, T, NH int) int { return 3 * B * T * NH }

// AttentionGradStats is kern.AttentionGrad with its scratch given: the
// query-side kernel writes dq and each row's softmax statistics into stats
// (AttentionStatsLen floats), the key-side kernel then writes dk and dv.
func (l *Lorac) AttentionGradStats(dq, dk, dv, dout, q, k, v, stats Ptr, B, T, NH, KVH, HS, W int, scale, softcap float32) error {
	sc, err := attnArgs("AttentionGrad", HS, W, scale, softcap)
	if err != nil {
		return err
	}
	s, err := attentionShape(T, B, NH, NH, KVH, HS)
	if err := l.launch("lorac_attention_grad_q", s, err, dq, stats, dout, q, k, v, B, T, NH, KVH, HS, W, sc, softcap); err != nil {
		return err
	}
	s, err = attentionShape(T, B, KVH, NH, KVH, HS)
	return l.launch("lorac_attention_grad_kv", s, err, dk, dv, stats, dout, q, k, v, B, T, NH, KVH, HS, W, sc, softcap)
}

// AttentionDecode is kern.AttentionDecode for one new token per sequence
// (T = 1): append each sequence's k and v at pos[b] of the caches, then
// attend over positions 0..pos[b]. pos must hold values in [0, Ctx): the
// kernels index with them unchecked. Several new tokens a sequence (a
// prefill chunk, T > 1) are not on the device yet: refused.
func (l *Lorac) AttentionDecode(out, q, k, v, kcache, vcache, pos Ptr, B, T, Ctx, NH, KVH, HS, W int, scale, softcap float32) error {
	sc, err := attnArgs("AttentionDecode", HS, W, scale, softcap)
	if err != nil {
		return err
	}
	if err := decodeTokens(T); err != nil {
		return err
	}
	if Ctx <= 0 || tooBig(B*Ctx*KVH*HS) {
		return fmt.Errorf("cuda: decode cache of %d×%d×%d out of range", B, Ctx, KVH*HS)
	}
	s, err := elementwiseShape(B * KVH * HS)
	if err := l.launch("lorac_kv_append", s, err, kcache, vcache, k, v, pos, B, Ctx, KVH*HS); err != nil {
		return err
	}
	s, err = attentionShape(NH, B, 1, NH, KVH, HS)
	return l.launch("lorac_attention_decode", s, err, out, q, kcache, vcache, pos, B, Ctx, NH, KVH, HS, W, sc, softcap)
}
