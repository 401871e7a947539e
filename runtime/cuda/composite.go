package cuda

import (
	"lorac.dev/lorac/runtime/kern"

	"fmt"
	"math"
)

// The lowering table's kernels on the device, by kern's names and argument
// order (device pointers for slices, 0 for nil), composed from the PTX
// entries. Kernels that need intermediates (T and G of the LoRA products,
// row statistics, the masked input) take them from grow-only scratch
// buffers that Lorac owns.

// work returns a scratch buffer of at least n float32s for slot.
func (l *Lorac) work(slot string, n int) (Ptr, error) {
	if b, ok := l.scratch[slot]; ok && b.Len >= 4*n {
		return b.Ptr, nil
	}
	if b, ok := l.scratch[slot]; ok {
		if err := l.D.Free(b); err != nil {
			return 0, err
		}
		delete(l.scratch, slot)
	}
	b, err := l.D.Alloc(4 * max(n, 1))
	if err != nil {
		return 0, fmt.Errorf("cuda: scratch %s: %w", slot, err)
	}
	l.scratch[slot] = b
	return b.Ptr, nil
}

// Release frees the scratch buffers and RoPE tables.
func (l *Lorac) Release() error {
	var first error
	for k, b := range l.scratch {
		if err := l.D.Free(b); err != nil && first == nil {
			first = err
		}
		delete(l.scratch, k)
	}
	for k, p := range l.freqs {
		if err := l.D.Free(Buffer{Ptr: p, Len: 1}); err != nil && first == nil {
			first = err
		}
		delete(l.freqs, k)
	}
	return first
}

// weightLayouts: the GEMM layout of x·Wᵀ and of dout·W for W (M, K), or
// (K, M) with conv1d.
func weightLayouts(conv1d bool) (forward, gradInput string) {
	if conv1d {
		return "nn", "nt"
	}
	return "nt", "nn"
}

// Linear is kern.Linear; one row with nn.Linear's layout (decoding) runs
// the GEMV, a warp per output.
func (l *Lorac) Linear(out, inp, w, bias Ptr, N, K, M int, conv1d bool) error {
	if N == 1 && !conv1d {
		return l.GEMV(out, w, inp, bias, M, K)
	}
	fw, _ := weightLayouts(conv1d)
	return l.GemmF32(fw, out, inp, w, bias, 0, 0, 0, N, M, K, 0, 1, 0)
}

// LinearGradInput is kern.LinearGradInput: dinp = dout·W.
func (l *Lorac) LinearGradInput(dinp, dout, w Ptr, N, K, M int, conv1d bool) error {
	_, gi := weightLayouts(conv1d)
	return l.GemmF32(gi, dinp, dout, w, 0, 0, 0, 0, N, K, M, 0, 1, 0)
}

// LinearGradWeight is kern.LinearGradWeight: dW = doutᵀ·inp in W's layout.
func (l *Lorac) LinearGradWeight(dw, dout, inp Ptr, N, K, M int, conv1d bool) error {
	if conv1d {
		return l.GemmF32("tn", dw, inp, dout, 0, 0, 0, 0, K, M, N, 0, 1, 0)
	}
	return l.GemmF32("tn", dw, dout, inp, 0, 0, 0, 0, M, K, N, 0, 1, 0)
}

// LinearGradBias is kern.LinearGradBias: column sums of dout.
func (l *Lorac) LinearGradBias(dbias, dout Ptr, N, M int) error {
	return l.colGrads(0, dbias, dout, 0, 0, N, M)
}

func (l *Lorac) colGrads(dgain, dbias, dout, x, stats Ptr, N, C int) error {
	if N <= 0 || tooBig(N*C) {
		return fmt.Errorf("cuda: column sums over %d×%d out of range", N, C)
	}
	s, err := elementwiseShape(C)
	return l.launch("lorac_col_grads", s, err, dgain, dbias, dout, x, stats, N, C)
}

// loraDown computes t = scale·(inp⊙mask)·Aᵀ (N, R).
func (l *Lorac) loraDown(t, inp, a, mask Ptr, N, K, R int, scale float32) error {
	return l.GemmF32("nt", t, inp, a, 0, mask, 0, 0, N, R, K, 0, scale, 0)
}

// LoRA is kern.LoRA: out = scale·((inp⊙mask)·Aᵀ)·Bᵀ.
func (l *Lorac) LoRA(out, inp, a, b, mask Ptr, N, K, M, R int, scale float32) error {
	t, err := l.work("t", N*R)
	if err != nil {
		return err
	}
	if err := l.loraDown(t, inp, a, mask, N, K, R, scale); err != nil {
		return err
	}
	return l.GemmF32("nt", out, t, b, 0, 0, 0, 0, N, M, R, 0, 1, 0)
}

// LoRALinear is kern.LoRALinear: T = scale·(inp⊙mask)·Aᵀ (into t when
// not 0), then out = inp·Wᵀ + bias + T·Bᵀ in one GEMM, T·Bᵀ its second
// segment.
func (l *Lorac) LoRALinear(out, t, inp, w, bias, a, b, mask Ptr, N, K, M, R int, scale float32, conv1d bool) error {
	if t == 0 {
		var err error
		if t, err = l.work("t", N*R); err != nil {
			return err
		}
	}
	if err := l.loraDown(t, inp, a, mask, N, K, R, scale); err != nil {
		return err
	}
	fw, _ := weightLayouts(conv1d)
	return l.GemmF32(fw, out, inp, w, bias, 0, t, b, N, M, K, R, 1, 1)
}

// LoRALinearRows is kern.LoRALinearRows: out = inp·Wᵀ + bias over all N
// rows in one product, then each branch i added to its row row[i]:
// weight[i]·scale·(inp_r·A_iᵀ)·B_iᵀ (LoRA on the row, into scratch, then
// an add); a and b hold each branch's device pointers, row and weight its
// row and weight in the row's mix (host slices).
func (l *Lorac) LoRALinearRows(out, inp, w, bias Ptr, a, b []Ptr, row []int32, weight []float32, N, K, M, R int, scale float32, conv1d bool) error {
	if len(b) != len(a) || len(row) != len(a) || len(weight) != len(a) {
		return fmt.Errorf("cuda: LoRALinearRows: %d A and %d B pointers, %d rows and %d weights for the branches", len(a), len(b), len(row), len(weight))
	}
	for i := range a {
		if a[i] == 0 || b[i] == 0 {
			return fmt.Errorf("cuda: LoRALinearRows: branch %d has no A or no B", i)
		}
		if row[i] < 0 || int(row[i]) >= N {
			return fmt.Errorf("cuda: LoRALinearRows: branch %d is on row %d, outside the %d rows", i, row[i], N)
		}
	}
	if err := l.Linear(out, inp, w, bias, N, K, M, conv1d); err != nil {
		return err
	}
	if len(a) == 0 {
		return nil
	}
	branch, err := l.work("rows", M)
	if err != nil {
		return err
	}
	for i := range a {
		r := int(row[i])
		inpR, outR := inp+Ptr(4*r*K), out+Ptr(4*r*M)
		if err := l.LoRA(branch, inpR, a[i], b[i], 0, 1, K, M, R, scale*weight[i]); err != nil {
			return err
		}
		if err := l.Binary("lorac_add", outR, outR, branch, M); err != nil {
			return err
		}
	}
	return nil
}

// loraGradParams writes dA and dB and returns G = scale·dout·B (scratch).
func (l *Lorac) loraGradParams(da, db, dout, inp, a, b, t, mask Ptr, N, K, M, R int, scale float32) (Ptr, error) {
	g, err := l.work("g", N*R)
	if err != nil {
		return 0, err
	}
	if err := l.GemmF32("nn", g, dout, b, 0, 0, 0, 0, N, R, M, 0, scale, 0); err != nil {
		return 0, err
	}
	xt := inp
	if mask != 0 {
		if xt, err = l.work("xt", N*K); err != nil {
			return 0, err
		}
		if err := l.Binary("lorac_mul", xt, inp, mask, N*K); err != nil {
			return 0, err
		}
	}
	// dA = Gᵀ·x̃
	if err := l.GemmF32("tn", da, g, xt, 0, 0, 0, 0, R, K, N, 0, 1, 0); err != nil {
		return 0, err
	}
	if t == 0 {
		if t, err = l.work("t", N*R); err != nil {
			return 0, err
		}
		if err := l.loraDown(t, xt, a, 0, N, K, R, scale); err != nil {
			return 0, err
		}
	}
	// dB = doutᵀ·T, T = scale·x̃·Aᵀ
	if err := l.GemmF32("tn", db, dout, t, 0, 0, 0, 0, M, R, N, 0, 1, 0); err != nil {
		return 0, err
	}
	return g, nil
}

// loraInputGrad adds (G·A)⊙mask to dinp (set when base, else written).
func (l *Lorac) loraInputGrad(dinp, g, a, mask Ptr, N, K, R int, base bool) error {
	dst := dinp
	if base || mask != 0 {
		var err error
		if dst, err = l.work("ga", N*K); err != nil {
			return err
		}
	}
	if err := l.GemmF32("nn", dst, g, a, 0, 0, 0, 0, N, K, R, 0, 1, 0); err != nil {
		return err
	}
	if mask != 0 {
		if err := l.Binary("lorac_mul", dst, dst, mask, N*K); err != nil {
			return err
		}
	}
	switch {
	case base:
		return l.Binary("lorac_add", dinp, dinp, dst, N*K)
	case dst != dinp:
		return l.CopyCols(dinp, K, 0, dst, K, 0, N, K)
	}
	return nil
}

// LoRAGrad is kern.LoRAGrad; dinp 0 skips the input gradient.
func (l *Lorac) LoRAGrad(da, db, dinp, dout, inp, a, b, mask Ptr, N, K, M, R int, scale float32) error {
	g, err := l.loraGradParams(da, db, dout, inp, a, b, 0, mask, N, K, M, R, scale)
	if err != nil || dinp == 0 {
		return err
	}
	return l.loraInputGrad(dinp, g, a, mask, N, K, R, false)
}

// LoRALinearGrad is kern.LoRALinearGrad: dA, dB, and dinp = dout·W +
// (G·A)⊙mask (dinp 0 skips it); t is the forward's T or 0.
func (l *Lorac) LoRALinearGrad(da, db, dinp, dout, inp, w, a, b, t, mask Ptr, N, K, M, R int, scale float32, conv1d bool) error {
	g, err := l.loraGradParams(da, db, dout, inp, a, b, t, mask, N, K, M, R, scale)
	if err != nil || dinp == 0 {
		return err
	}
	if err := l.LinearGradInput(dinp, dout, w, N, K, M, conv1d); err != nil {
		return err
	}
	return l.loraInputGrad(dinp, g, a, mask, N, K, R, true)
}

// LoRAMerge is kern.LoRAMerge: W += scale·B·A in place, in W's layout.
func (l *Lorac) LoRAMerge(w, a, b Ptr, K, M, R int, scale float32, conv1d bool) error {
	tmp, err := l.work("merge", K*M)
	if err != nil {
		return err
	}
	if conv1d {
		// (K, M) = Aᵀ·Bᵀ: A (R, K) read transposed, B (M, R) read transposed.
		err = l.GemmF32("tt", tmp, a, b, 0, 0, 0, 0, K, M, R, 0, scale, 0)
	} else {
		err = l.GemmF32("nn", tmp, b, a, 0, 0, 0, 0, M, K, R, 0, scale, 0)
	}
	if err != nil {
		return err
	}
	return l.Binary("lorac_add", w, w, tmp, K*M)
}

// LayerNormGrad is kern.LayerNormGrad.
func (l *Lorac) LayerNormGrad(dinp, dout, inp, gain Ptr, N, C int, eps float32) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_layernorm_grad", s, err, dinp, dout, inp, gain, N, C, eps)
}

// RMSNormGrad is kern.RMSNormGrad.
func (l *Lorac) RMSNormGrad(dinp, dout, inp, gain Ptr, N, C int, eps, offset float32) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_rmsnorm_grad", s, err, dinp, dout, inp, gain, N, C, eps, offset)
}

func (l *Lorac) rowStats(inp Ptr, N, C int, eps float32, rms bool) (Ptr, error) {
	stats, err := l.work("stats", 2*N)
	if err != nil {
		return 0, err
	}
	flag := 0
	if rms {
		flag = 1
	}
	s, err := rowsShape(N, C)
	return stats, l.launch("lorac_row_stats", s, err, stats, inp, N, C, eps, flag)
}

// LayerNormGradParams is kern.LayerNormGradParams; dbias may be 0.
func (l *Lorac) LayerNormGradParams(dgain, dbias, dout, inp Ptr, N, C int, eps float32) error {
	stats, err := l.rowStats(inp, N, C, eps, false)
	if err != nil {
		return err
	}
	return l.colGrads(dgain, dbias, dout, inp, stats, N, C)
}

// RMSNormGradGain is kern.RMSNormGradGain.
func (l *Lorac) RMSNormGradGain(dgain, dout, inp Ptr, N, C int, eps float32) error {
	stats, err := l.rowStats(inp, N, C, eps, true)
	if err != nil {
		return err
	}
	return l.colGrads(dgain, 0, dout, inp, stats, N, C)
}

// SoftmaxGrad is kern.SoftmaxGrad.
func (l *Lorac) SoftmaxGrad(dinp, dout, out Ptr, N, C int) error {
	s, err := rowsShape(N, C)
	return l.launch("lorac_softmax_grad", s, err, dinp, dout, out, N, C)
}

// ropeKey is one table of inverse frequencies: the RoPE kernels'
// arguments that select it.
type ropeKey struct {
	HS                        int
	theta                     float64
	scaling                   int
	factor, lowFreq, highFreq float64
	origCtx                   int
}

// invFreq uploads (once per table) the HS/2 inverse frequencies, in
// float64 as the CPU kernel computes them.
func (l *Lorac) invFreq(k ropeKey) (Ptr, error) {
	if p, ok := l.freqs[k]; ok {
		return p, nil
	}
	f := kern.RoPEInvFreq(k.HS, k.theta, k.scaling, k.factor, k.lowFreq, k.highFreq, k.origCtx)
	b, err := l.D.Alloc(8 * max(len(f), 1))
	if err != nil {
		return 0, err
	}
	if err := Upload(l.D, b, f); err != nil {
		l.D.Free(b)
		return 0, err
	}
	l.freqs[k] = b.Ptr
	return b.Ptr, nil
}

// ropeCheck rejects what kern.RoPEInvFreq's formulas cannot take.
func ropeCheck(kernel string, k ropeKey) error {
	switch {
	case k.HS%2 != 0 || k.HS <= 0:
		return fmt.Errorf("cuda: %s: head size %d must be even", kernel, k.HS)
	case !(k.theta > 0):
		return fmt.Errorf("cuda: %s: theta %g must be positive", kernel, k.theta)
	case k.scaling == kern.RoPEDefault:
		return nil
	case k.scaling == kern.RoPELinear && k.factor > 0:
		return nil
	case k.scaling == kern.RoPELlama3 && k.factor > 0 && k.origCtx > 0 && k.lowFreq > 0 && k.highFreq > k.lowFreq:
		return nil
	case k.scaling == kern.RoPELinear || k.scaling == kern.RoPELlama3:
		return fmt.Errorf("cuda: %s: RoPE scaling kind %d with factor %g, frequencies %g..%g, original context %d: out of range",
			kernel, k.scaling, k.factor, k.lowFreq, k.highFreq, k.origCtx)
	}
	return fmt.Errorf("cuda: %s: unknown RoPE scaling kind %d", kernel, k.scaling)
}

func (l *Lorac) rope(kernel string, out, inp, pos Ptr, N, NH int, k ropeKey, sign float32) error {
	if err := ropeCheck(kernel, k); err != nil {
		return err
	}
	freq, err := l.invFreq(k)
	if err != nil {
		return err
	}
	s, err := elementwiseShape(N * NH * k.HS / 2)
	return l.launch("lorac_rope", s, err, out, inp, pos, freq, N, NH, k.HS, sign)
}

// RoPE is kern.RoPE: the inverse frequencies (scaled per kern.RoPEInvFreq)
// are a float64 table made on the host, uploaded once per set of
// arguments.
func (l *Lorac) RoPE(out, inp, pos Ptr, N, NH, HS int, theta float64, scaling int, factor, lowFreq, highFreq float64, origCtx int) error {
	return l.rope("RoPE", out, inp, pos, N, NH, ropeKey{HS, theta, scaling, factor, lowFreq, highFreq, origCtx}, 1)
}

// RoPEGrad is kern.RoPEGrad.
func (l *Lorac) RoPEGrad(dinp, dout, pos Ptr, N, NH, HS int, theta float64, scaling int, factor, lowFreq, highFreq float64, origCtx int) error {
	return l.rope("RoPEGrad", dinp, dout, pos, N, NH, ropeKey{HS, theta, scaling, factor, lowFreq, highFreq, origCtx}, -1)
}

// Embedding is kern.Embedding; ids must be in range (validated by callers,
// as on the CPU).
func (l *Lorac) Embedding(out, ids, table Ptr, N, C int) error {
	s, err := elementwiseShape(N * C)
	return l.launch("lorac_embedding", s, err, out, ids, table, N, C)
}

// EmbeddingGrad is kern.EmbeddingGrad (deterministic: one thread per
// column, rows in order).
func (l *Lorac) EmbeddingGrad(dtable, dout, ids Ptr, N, V, C int) error {
	if tooBig(V*C) || tooBig(N*C) {
		return fmt.Errorf("cuda: embedding gradient %d×%d out of range", V, C)
	}
	s, err := elementwiseShape(C)
	return l.launch("lorac_embedding_grad", s, err, dtable, dout, ids, N, V, C)
}

// CopyCols is kern.CopyCols.
func (l *Lorac) CopyCols(dst Ptr, dstStride, dstOff int, src Ptr, srcStride, srcOff, rows, width int) error {
	s, err := elementwiseShape(rows * width)
	return l.launch("lorac_copy_cols", s, err, dst, src, dstStride, dstOff, srcStride, srcOff, rows, width)
}

// Fill is kern.Fill over n floats.
func (l *Lorac) Fill(dst Ptr, n int, v float32) error {
	s, err := elementwiseShape(n)
	return l.launch("lorac_fill", s, err, dst, n, v)
}

// DropoutMask is kern.DropoutMask over the n floats at mask, made on the
// device and equal to the host's bit for bit: lorac_dropout_mask draws the
// same splitmix64 values in integer arithmetic; the float parts are done
// here, as the host does them (DropoutThreshold). n = 0 does nothing.
func (l *Lorac) DropoutMask(mask Ptr, n int, p float64, seed, stream uint64) error {
	if n == 0 {
		return nil
	}
	threshold, keep := DropoutThreshold(p)
	s, err := elementwiseShape(n)
	return l.launch("lorac_dropout_mask", s, err, mask, n, seed, stream, threshold, keep)
}

// DropoutThreshold turns dropout probability p into lorac_dropout_mask's
// integer threshold and its kept value. kern.DropoutMask drops element i
// when float64(u>>11) < p·2⁵³ (u the element's 64 random bits); both sides
// are exact in float64 and the left is an integer, so the test is
// u>>11 < ⌈p·2⁵³⌉, the threshold (0 for p ≤ 0 or NaN, which drop nothing;
// 2⁵³ for p ≥ 1, which drops everything, as the host's zeros). keep is
// float32(1/(1−p)), the host's rounding, and 0 for p ≥ 1.
func DropoutThreshold(p float64) (threshold uint64, keep float32) {
	if p >= 1 {
		return 1 << 53, 0
	}
	keep = float32(1 / (1 - p))
	t := p * (1 << 53)
	if !(t > 0) {
		return 0, keep
	}
	return uint64(math.Ceil(t)), keep
}

// Add is kern.Add.
func (l *Lorac) Add(out, a, b Ptr, N int) error { return l.Binary("lorac_add", out, a, b, N) }

// Mul is kern.Mul.
func (l *Lorac) Mul(out, a, b Ptr, N int) error { return l.Binary("lorac_mul", out, a, b, N) }

// Scale is kern.Scale.
func (l *Lorac) Scale(out, inp Ptr, N int, scale float32) error {
	s, err := elementwiseShape(N)
	return l.launch("lorac_scale", s, err, out, inp, N, scale)
}

func positiveCap(kernel string, cap float32) error {
	if !(cap > 0) || math.IsInf(float64(cap), 1) {
		return fmt.Errorf("cuda: %s: soft-cap %g must be positive and finite", kernel, cap)
	}
	return nil
}

// Softcap is kern.Softcap: cap·tanh(inp/cap), cap > 0.
func (l *Lorac) Softcap(out, inp Ptr, N int, cap float32) error {
	if err := positiveCap("Softcap", cap); err != nil {
		return err
	}
	s, err := elementwiseShape(N)
	return l.launch("lorac_softcap", s, err, out, inp, N, cap)
}

// SoftcapGrad is kern.SoftcapGrad, cap > 0.
func (l *Lorac) SoftcapGrad(dinp, dout, inp Ptr, N int, cap float32) error {
	if err := positiveCap("SoftcapGrad", cap); err != nil {
		return err
	}
	s, err := elementwiseShape(N)
	return l.launch("lorac_softcap_grad", s, err, dinp, dout, inp, N, cap)
}

// GELU is kern.GELU.
func (l *Lorac) GELU(out, inp Ptr, N int) error { return l.Unary("lorac_gelu", out, inp, N) }

// GELUGrad is kern.GELUGrad.
func (l *Lorac) GELUGrad(dinp, dout, inp Ptr, N int) error {
	return l.Binary("lorac_gelu_grad", dinp, dout, inp, N)
}

// SiLU is kern.SiLU.
func (l *Lorac) SiLU(out, inp Ptr, N int) error { return l.Unary("lorac_silu", out, inp, N) }

// SiLUGrad is kern.SiLUGrad.
func (l *Lorac) SiLUGrad(dinp, dout, inp Ptr, N int) error {
	return l.Binary("lorac_silu_grad", dinp, dout, inp, N)
}

// AttentionGrad is kern.AttentionGrad, its row statistics in scratch.
func (l *Lorac) AttentionGrad(dq, dk, dv, dout, q, k, v Ptr, B, T, NH, KVH, HS, W int, scale, softcap float32) error {
	stats, err := l.work("attn", AttentionStatsLen(B, T, NH))
	if err != nil {
		return err
	}
	return l.AttentionGradStats(dq, dk, dv, dout, q, k, v, stats, B, T, NH, KVH, HS, W, scale, softcap)
}

// countTargets downloads the targets and counts those not ignored (−1).
func (l *Lorac) countTargets(targets Ptr, N int) (int, error) {
	ts := make([]int32, N)
	if err := l.D.Sync(); err != nil {
		return 0, err
	}
	if err := Download(l.D, ts, Buffer{targets, 4 * N}); err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		if t != -1 {
			n++
		}
	}
	return n, nil
}

// CrossEntropy is kern.CrossEntropy: the mean loss over counted rows (0
// with none). It synchronises to read the per-row losses back.
func (l *Lorac) CrossEntropy(logits, targets Ptr, N, V int) (float32, error) {
	rows, err := l.work("loss", N)
	if err != nil {
		return 0, err
	}
	if err := l.CrossEntropyRows(rows, logits, targets, N, V); err != nil {
		return 0, err
	}
	count, err := l.countTargets(targets, N)
	if err != nil || count == 0 {
		return 0, err
	}
	loss := make([]float32, N)
	if err := Download(l.D, loss, Buffer{rows, 4 * N}); err != nil {
		return 0, err
	}
	var sum float64
	for _, v := range loss {
		sum += float64(v)
	}
	return float32(sum / float64(count)), nil
}

// CrossEntropyGrad is kern.CrossEntropyGrad.
func (l *Lorac) CrossEntropyGrad(dlogits Ptr, dloss float32, logits, targets Ptr, N, V int) error {
	count, err := l.countTargets(targets, N)
	if err != nil {
		return err
	}
	g := float32(0)
	if count > 0 {
		g = float32(float64(dloss) / float64(count))
	}
	return l.CrossEntropyGradScaled(dlogits, logits, targets, N, V, g)
}
