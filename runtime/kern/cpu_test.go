package kern

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// Every float32 entry point against its float64 reference kernel on random
// inputs with poisoned (NaN) outputs, at odd sizes that straddle the GEMM's
// tiles (8 columns, 64-row and 64-column blocks, 512-deep k slices) and its
// small-n path (fewer than 4 rows).

// cpuSizes are the N, K and M values every matmul kernel is tried at.
var cpuSizes = []int{1, 7, 17, 33, 65}

// cpuRandn returns n standard normal values rounded to float32.
func cpuRandn(rng *rand.Rand, n int) []float32 { return to32(randn(rng, n)) }

// cpuScaled returns n normal values with standard deviation 1/√fanIn.
func cpuScaled(rng *rand.Rand, n, fanIn int) []float32 {
	x := randn(rng, n)
	for i := range x {
		x[i] /= math.Sqrt(float64(fanIn))
	}
	return to32(x)
}

// cpuMask returns a dropout mask with p = 0.25: 0 or 4/3.
func cpuMask(rng *rand.Rand, n int) []float32 {
	m := make([]float32, n)
	DropoutMask(m, 0.25, rng.Uint64(), 0)
	return m
}

// cpuCheck fails when |got − want| > tol·(1+|want|) anywhere, or got is NaN.
func cpuCheck(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	for i, w := range want {
		if d := math.Abs(float64(got[i]) - w); !(d <= tol*(1+math.Abs(w))) {
			t.Fatalf("%s[%d] = %.9g, want %.9g (tolerance %.2g·(1+|want|))", name, i, got[i], w, tol)
		}
	}
}

// cpuCheck32 is cpuCheck against a float32 reference.
func cpuCheck32(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	cpuCheck(t, name, got, to64(want), tol)
}

// cpuMatmulTol bounds float32 accumulation against the float64 oracle: sums
// of at most a few hundred products of standard normal values.
const cpuMatmulTol = 1e-4

// cpuShape is one matmul test case; the flags cycle with the case index so
// that every combination appears at several sizes.
type cpuShape struct {
	N, K, M, R             int
	conv1d, masked, biased bool
	nilDinp                bool
}

func (s cpuShape) String() string {
	return fmt.Sprintf("N%d_K%d_M%d_R%d_conv%v_mask%v_bias%v_nildinp%v", s.N, s.K, s.M, s.R, s.conv1d, s.masked, s.biased, s.nilDinp)
}

// cpuShapes returns every (N, K, M) in cpuSizes³ plus cases past the k slice
// and block sizes, with R, conv1d, mask, bias and nil dinp varied.
func cpuShapes() []cpuShape {
	var out []cpuShape
	i := 0
	add := func(n, k, m int) {
		out = append(out, cpuShape{
			N: n, K: k, M: m, R: []int{1, 3, 8}[i%3],
			conv1d: i%2 == 0, masked: i/2%2 == 0, biased: i/4%2 == 0, nilDinp: i%5 == 4,
		})
		i++
	}
	for _, n := range cpuSizes {
		for _, k := range cpuSizes {
			for _, m := range cpuSizes {
				add(n, k, m)
			}
		}
	}
	add(130, 600, 70)
	add(3, 520, 9)
	add(70, 9, 130)
	return out
}

// cpuLoRAInputs draws one case's tensors: inp, w, bias, a, b, mask, dout
// (bias and mask nil unless the case has them).
type cpuLoRAInputs struct {
	inp, w, bias, a, b, mask, dout []float32
	scale                          float32
}

func cpuDraw(rng *rand.Rand, s cpuShape) cpuLoRAInputs {
	// Weights scaled by 1/√fan-in, as initialised, keep outputs near unit
	// size, so that the tolerance relative to them measures the kernel and
	// not cancellation.
	in := cpuLoRAInputs{
		inp:   cpuRandn(rng, s.N*s.K),
		w:     cpuScaled(rng, s.M*s.K, s.K),
		a:     cpuScaled(rng, s.R*s.K, s.K),
		b:     cpuScaled(rng, s.M*s.R, s.R),
		dout:  cpuRandn(rng, s.N*s.M),
		scale: 16 / float32(s.R),
	}
	if s.biased {
		in.bias = cpuRandn(rng, s.M)
	}
	if s.masked {
		in.mask = cpuMask(rng, s.N*s.K)
	}
	return in
}

// wide returns x in float64, keeping nil.
func wide(x []float32) []float64 {
	if x == nil {
		return nil
	}
	return to64(x)
}

func TestCPULinear(t *testing.T) { forEachISA(t, testCPULinear) }

func testCPULinear(t *testing.T) {
	rng := newRand()
	for _, s := range cpuShapes() {
		t.Run(s.String(), func(t *testing.T) {
			in := cpuDraw(rng, s)
			N, K, M := s.N, s.K, s.M
			want := make([]float64, N*M)
			LinearRef(want, wide(in.inp), wide(in.w), wide(in.bias), N, K, M, s.conv1d)
			got := nans[float32](N * M)
			Linear(got, in.inp, in.w, in.bias, N, K, M, s.conv1d)
			cpuCheck(t, "out", got, want, cpuMatmulTol)

			wantIn := make([]float64, N*K)
			LinearGradInputRef(wantIn, wide(in.dout), wide(in.w), N, K, M, s.conv1d)
			gotIn := nans[float32](N * K)
			LinearGradInput(gotIn, in.dout, in.w, N, K, M, s.conv1d)
			cpuCheck(t, "dinp", gotIn, wantIn, cpuMatmulTol)

			wantW := make([]float64, M*K)
			LinearGradWeightRef(wantW, wide(in.dout), wide(in.inp), N, K, M, s.conv1d)
			gotW := nans[float32](M * K)
			LinearGradWeight(gotW, in.dout, in.inp, N, K, M, s.conv1d)
			cpuCheck(t, "dw", gotW, wantW, cpuMatmulTol)

			wantB := make([]float64, M)
			LinearGradBiasRef(wantB, wide(in.dout), N, M)
			gotB := nans[float32](M)
			LinearGradBias(gotB, in.dout, N, M)
			cpuCheck(t, "dbias", gotB, wantB, 1e-6)
		})
	}
}

// cpuLoRARef returns the float64 oracle of LoRALinear and LoRALinearGrad:
// out, da, db, dinp (with the base layer's dinp when base is set).
func cpuLoRARef(s cpuShape, in cpuLoRAInputs, base bool) (out, da, db, dinp []float64) {
	N, K, M, R := s.N, s.K, s.M, s.R
	sc := float64(in.scale)
	out = make([]float64, N*M)
	LoRARef(out, wide(in.inp), wide(in.a), wide(in.b), wide(in.mask), N, K, M, R, sc)
	da, db, dinp = make([]float64, R*K), make([]float64, M*R), make([]float64, N*K)
	LoRAGradRef(da, db, dinp, wide(in.dout), wide(in.inp), wide(in.a), wide(in.b), wide(in.mask), N, K, M, R, sc)
	if !base {
		return out, da, db, dinp
	}
	y := make([]float64, N*M)
	LinearRef(y, wide(in.inp), wide(in.w), wide(in.bias), N, K, M, s.conv1d)
	dx := make([]float64, N*K)
	LinearGradInputRef(dx, wide(in.dout), wide(in.w), N, K, M, s.conv1d)
	for i := range out {
		out[i] += y[i]
	}
	for i := range dinp {
		dinp[i] += dx[i]
	}
	return out, da, db, dinp
}

func TestCPULoRALinear(t *testing.T) { forEachISA(t, testCPULoRALinear) }

func testCPULoRALinear(t *testing.T) {
	rng := newRand()
	for _, s := range cpuShapes() {
		t.Run(s.String(), func(t *testing.T) {
			in := cpuDraw(rng, s)
			N, K, M, R := s.N, s.K, s.M, s.R
			wantOut, wantA, wantB, wantIn := cpuLoRARef(s, in, true)

			// Half the cases keep the forward's t for the backward, as
			// training graphs do; the rest recompute it.
			var tk []float32
			if (N+K+M)%2 == 0 {
				tk = nans[float32](N * R)
			}
			out := nans[float32](N * M)
			LoRALinear(out, tk, in.inp, in.w, in.bias, in.a, in.b, in.mask, N, K, M, R, in.scale, s.conv1d)
			cpuCheck(t, "out", out, wantOut, cpuMatmulTol)
			if tk != nil {
				x := wide(in.inp)
				if in.mask != nil {
					MulRef(x, x, wide(in.mask), len(x))
				}
				wantT := make([]float64, N*R)
				LinearRef(wantT, x, wide(in.a), nil, N, K, R, false)
				for i := range wantT {
					wantT[i] *= float64(in.scale)
				}
				cpuCheck(t, "t", tk, wantT, cpuMatmulTol)
			}

			da, db := nans[float32](R*K), nans[float32](M*R)
			var dinp []float32
			if !s.nilDinp {
				dinp = nans[float32](N * K)
			}
			LoRALinearGrad(da, db, dinp, in.dout, in.inp, in.w, in.a, in.b, tk, in.mask, N, K, M, R, in.scale, s.conv1d)
			cpuCheck(t, "da", da, wantA, cpuMatmulTol)
			cpuCheck(t, "db", db, wantB, cpuMatmulTol)
			if dinp != nil {
				cpuCheck(t, "dinp", dinp, wantIn, cpuMatmulTol)
			}
		})
	}
}

func TestCPULoRA(t *testing.T) { forEachISA(t, testCPULoRA) }

func testCPULoRA(t *testing.T) {
	rng := newRand()
	for _, s := range cpuShapes() {
		t.Run(s.String(), func(t *testing.T) {
			in := cpuDraw(rng, s)
			N, K, M, R := s.N, s.K, s.M, s.R
			wantOut, wantA, wantB, wantIn := cpuLoRARef(s, in, false)

			out := nans[float32](N * M)
			LoRA(out, in.inp, in.a, in.b, in.mask, N, K, M, R, in.scale)
			cpuCheck(t, "out", out, wantOut, cpuMatmulTol)

			da, db := nans[float32](R*K), nans[float32](M*R)
			var dinp []float32
			if !s.nilDinp {
				dinp = nans[float32](N * K)
			}
			LoRAGrad(da, db, dinp, in.dout, in.inp, in.a, in.b, in.mask, N, K, M, R, in.scale)
			cpuCheck(t, "da", da, wantA, cpuMatmulTol)
			cpuCheck(t, "db", db, wantB, cpuMatmulTol)
			if dinp != nil {
				cpuCheck(t, "dinp", dinp, wantIn, cpuMatmulTol)
			}
		})
	}
}

func TestCPULoRAMerge(t *testing.T) { forEachISA(t, testCPULoRAMerge) }

func testCPULoRAMerge(t *testing.T) {
	rng := newRand()
	for _, s := range cpuShapes() {
		t.Run(s.String(), func(t *testing.T) {
			in := cpuDraw(rng, s)
			N, K, M, R := s.N, s.K, s.M, s.R

			want := make([]float64, M*K)
			LoRAMergeRef(want, wide(in.w), wide(in.a), wide(in.b), K, M, R, float64(in.scale), s.conv1d)
			w := slices.Clone(in.w)
			LoRAMerge(w, in.a, in.b, K, M, R, in.scale, s.conv1d)
			cpuCheck(t, "merged", w, want, cpuMatmulTol)

			// The merged layer computes what the fused layer does (no dropout
			// at inference).
			merged := nans[float32](N * M)
			Linear(merged, in.inp, w, in.bias, N, K, M, s.conv1d)
			fused := nans[float32](N * M)
			LoRALinear(fused, nil, in.inp, in.w, in.bias, in.a, in.b, nil, N, K, M, R, in.scale, s.conv1d)
			cpuCheck32(t, "merged vs fused", merged, fused, 1e-3)

			LoRAMerge(w, in.a, in.b, K, M, R, -in.scale, s.conv1d)
			for i, v := range w {
				if d := math.Abs(float64(v - in.w[i])); !(d <= 1e-5*(1+math.Abs(float64(in.w[i])))) {
					t.Fatalf("unmerged w[%d] = %.9g, want %.9g", i, v, in.w[i])
				}
			}
		})
	}
}

// TestCPUThreadsBitIdentical runs every parallel kernel with one thread and
// with two to four, and wants identical bits.
func TestCPUThreadsBitIdentical(t *testing.T) { forEachISA(t, testCPUThreadsBitIdentical) }

func testCPUThreadsBitIdentical(t *testing.T) {
	prev := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(prev)
	defer SetThreads(0)

	rng := newRand()
	s := cpuShape{N: 130, K: 600, M: 200, R: 8, masked: true, biased: true}
	in := cpuDraw(rng, s)
	N, K, M, R := s.N, s.K, s.M, s.R
	const B, T, NH, KVH, HS = 2, 33, 4, 2, 16
	q, kk, vv := cpuRandn(rng, B*T*NH*HS), cpuRandn(rng, B*T*KVH*HS), cpuRandn(rng, B*T*KVH*HS)
	dq := cpuRandn(rng, B*T*NH*HS)
	ids := randIDs(rng, N, 50)
	targets := randIDs(rng, N, M)
	gain := cpuRandn(rng, K)

	run := func() [][]float32 {
		var res [][]float32
		get := func(n int) []float32 {
			x := nans[float32](n)
			res = append(res, x)
			return x
		}
		for _, conv := range []bool{false, true} {
			Linear(get(N*M), in.inp, in.w, in.bias, N, K, M, conv)
			LinearGradInput(get(N*K), in.dout, in.w, N, K, M, conv)
			LinearGradWeight(get(M*K), in.dout, in.inp, N, K, M, conv)
			tk := get(N * R)
			LoRALinear(get(N*M), tk, in.inp, in.w, in.bias, in.a, in.b, in.mask, N, K, M, R, in.scale, conv)
			LoRALinearGrad(get(R*K), get(M*R), get(N*K), in.dout, in.inp, in.w, in.a, in.b, tk, in.mask, N, K, M, R, in.scale, conv)
			w := slices.Clone(in.w)
			LoRAMerge(w, in.a, in.b, K, M, R, in.scale, conv)
			res = append(res, w)
		}
		LinearGradBias(get(M), in.dout, N, M)
		DropoutMask(get(N*K*3), 0.25, 7, 3) // large enough to split over workers
		LoRA(get(N*M), in.inp, in.a, in.b, in.mask, N, K, M, R, in.scale)
		LoRAGrad(get(R*K), get(M*R), get(N*K), in.dout, in.inp, in.a, in.b, in.mask, N, K, M, R, in.scale)
		// A decode-sized product takes the unpacked path.
		Linear(get(M), in.inp[:K], in.w, in.bias, 1, K, M, false)
		Attention(get(B*T*NH*HS), q, kk, vv, B, T, NH, KVH, HS, 0, 0, 0)
		AttentionGrad(get(B*T*NH*HS), get(B*T*KVH*HS), get(B*T*KVH*HS), dq, q, kk, vv, B, T, NH, KVH, HS, 0, 0, 0)
		EmbeddingGrad(get(50*K), in.inp, ids, N, 50, K)
		LayerNormGradParams(get(K), get(K), in.inp, in.inp, N, K, 1e-5)
		RMSNormGradGain(get(K), in.inp, in.inp, N, K, 1e-5)
		LayerNorm(get(N*K), in.inp, gain, gain, N, K, 1e-5)
		Softmax(get(N*M), in.dout, N, M)
		CrossEntropyGrad(get(N*M), 1, in.dout, targets, N, M)
		res = append(res, []float32{CrossEntropy(in.dout, targets, N, M)})
		return res
	}
	SetThreads(1)
	want := run()
	for threads := 2; threads <= 4; threads++ {
		SetThreads(threads)
		got := run()
		for i := range want {
			for j := range want[i] {
				if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
					t.Fatalf("%d threads: result %d element %d = %.9g, one thread gave %.9g", threads, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
}

func TestCPUAttention(t *testing.T) { forEachISA(t, testCPUAttention) }

func testCPUAttention(t *testing.T) {
	rng := newRand()
	for _, B := range []int{1, 2} {
		for _, T := range []int{1, 7, 33, 130} { // 130: three query blocks of attention_blocks.go
			for _, KVH := range []int{4, 2, 1} {
				for _, HS := range []int{5, 16} {
					const NH = 4
					// A sliding window shorter than T (and, at 70, than
					// some query blocks but not others), or none.
					W := []int{0, 3, 70}[(T+KVH+HS)%3]
					// Gemma 2's own scale and soft-capping, on some cases.
					var scale, cap float32
					if (B+KVH)%2 == 1 {
						scale, cap = 0.3, 2.5
					}
					name := fmt.Sprintf("B%d_T%d_NH%d_KVH%d_HS%d_W%d_cap%g", B, T, NH, KVH, HS, W, cap)
					t.Run(name, func(t *testing.T) {
						q := cpuRandn(rng, B*T*NH*HS)
						k := cpuRandn(rng, B*T*KVH*HS)
						v := cpuRandn(rng, B*T*KVH*HS)
						dout := cpuRandn(rng, B*T*NH*HS)

						want := make([]float64, len(q))
						AttentionRef(want, wide(q), wide(k), wide(v), B, T, NH, KVH, HS, W, float64(scale), float64(cap))
						got := nans[float32](len(q))
						Attention(got, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
						cpuCheck(t, "out", got, want, 1e-5)

						wq, wk, wv := make([]float64, len(q)), make([]float64, len(k)), make([]float64, len(v))
						AttentionGradRef(wq, wk, wv, wide(dout), wide(q), wide(k), wide(v), B, T, NH, KVH, HS, W, float64(scale), float64(cap))
						gq, gk, gv := nans[float32](len(q)), nans[float32](len(k)), nans[float32](len(v))
						AttentionGrad(gq, gk, gv, dout, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
						cpuCheck(t, "dq", gq, wq, 1e-4)
						cpuCheck(t, "dk", gk, wk, 1e-4)
						cpuCheck(t, "dv", gv, wv, 1e-4)
					})
				}
			}
		}
	}
}

func TestCPUNorms(t *testing.T) { forEachISA(t, testCPUNorms) }

func testCPUNorms(t *testing.T) {
	rng := newRand()
	const eps = 1e-5
	for _, N := range cpuSizes {
		for _, C := range []int{1, 7, 33, 300} {
			t.Run(fmt.Sprintf("N%d_C%d", N, C), func(t *testing.T) {
				x := cpuRandn(rng, N*C)
				for i := range x {
					x[i] = 3*x[i] + 1 // a non-zero mean and a non-unit variance
				}
				gain, bias, dout := cpuRandn(rng, C), cpuRandn(rng, C), cpuRandn(rng, N*C)

				for _, b := range [][]float32{bias, nil} {
					want := make([]float64, N*C)
					LayerNormRef(want, wide(x), wide(gain), wide(b), N, C, eps)
					got := nans[float32](N * C)
					LayerNorm(got, x, gain, b, N, C, eps)
					cpuCheck(t, "layernorm", got, want, 1e-5)
				}
				want := make([]float64, N*C)
				LayerNormGradRef(want, wide(dout), wide(x), wide(gain), N, C, eps)
				got := nans[float32](N * C)
				LayerNormGrad(got, dout, x, gain, N, C, eps)
				// C = 1 divides by sqrt(eps): the gradient is pure rounding.
				tol := 1e-4
				if C == 1 {
					tol = 1e-1
				}
				cpuCheck(t, "layernorm dinp", got, want, tol)

				wg, wb := make([]float64, C), make([]float64, C)
				LayerNormGradParamsRef(wg, wb, wide(dout), wide(x), N, C, eps)
				gg, gb := nans[float32](C), nans[float32](C)
				LayerNormGradParams(gg, gb, dout, x, N, C, eps)
				cpuCheck(t, "layernorm dgain", gg, wg, 1e-5)
				cpuCheck(t, "layernorm dbias", gb, wb, 1e-6)
				gg = nans[float32](C)
				LayerNormGradParams(gg, nil, dout, x, N, C, eps)
				cpuCheck(t, "layernorm dgain (no bias)", gg, wg, 1e-5)

				for _, off := range []float32{0, 1} { // llama's norm, Gemma's (1 + w)
					want = make([]float64, N*C)
					RMSNormRef(want, wide(x), wide(gain), N, C, eps, float64(off))
					got = nans[float32](N * C)
					RMSNorm(got, x, gain, N, C, eps, off)
					cpuCheck(t, fmt.Sprint("rmsnorm offset ", off), got, want, 1e-5)

					want = make([]float64, N*C)
					RMSNormGradRef(want, wide(dout), wide(x), wide(gain), N, C, eps, float64(off))
					got = nans[float32](N * C)
					RMSNormGrad(got, dout, x, gain, N, C, eps, off)
					cpuCheck(t, fmt.Sprint("rmsnorm dinp offset ", off), got, want, 1e-5)
				}

				wg = make([]float64, C)
				RMSNormGradGainRef(wg, wide(dout), wide(x), N, C, eps)
				gg = nans[float32](C)
				RMSNormGradGain(gg, dout, x, N, C, eps)
				cpuCheck(t, "rmsnorm dgain", gg, wg, 1e-5)
			})
		}
	}
}

func TestCPURoPE(t *testing.T) {
	rng := newRand()
	for _, N := range cpuSizes {
		for _, HS := range []int{2, 8, 64} {
			for _, sc := range ropeScalings {
				const NH = 3
				t.Run(fmt.Sprintf("N%d_HS%d_%d", N, HS, sc.kind), func(t *testing.T) {
					x := cpuRandn(rng, N*NH*HS)
					pos := randIDs(rng, N, 4096)
					want := make([]float64, len(x))
					RoPERef(want, wide(x), pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.low, sc.high, sc.orig)
					got := nans[float32](len(x))
					f32 := func(x float64) float32 { return float32(x) }
					RoPE(got, x, pos, N, NH, HS, 10000, sc.kind, f32(sc.factor), f32(sc.low), f32(sc.high), sc.orig)
					cpuCheck(t, "rope", got, want, 1e-5)

					RoPEGradRef(want, wide(x), pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.low, sc.high, sc.orig)
					got = slices.Clone(x)
					RoPEGrad(got, got, pos, N, NH, HS, 10000, sc.kind, f32(sc.factor), f32(sc.low), f32(sc.high), sc.orig) // in place
					cpuCheck(t, "rope grad", got, want, 1e-5)
				})
			}
		}
	}
}

func TestCPUElementwise(t *testing.T) { forEachISA(t, testCPUElementwise) }

func testCPUElementwise(t *testing.T) {
	rng := newRand()
	for _, N := range []int{1, 7, 33, 5000, 40000} {
		t.Run(fmt.Sprint(N), func(t *testing.T) {
			x := cpuRandn(rng, N)
			for i := range x {
				x[i] *= 4 // reach the saturated tails of the activations
			}
			y, d := cpuRandn(rng, N), cpuRandn(rng, N)
			type unary struct {
				name string
				ref  func(out, inp []float64, n int)
				fast func(out, inp []float32, n int)
			}
			for _, u := range []unary{
				{"gelu", GELURef[float64], GELU},
				{"silu", SiLURef[float64], SiLU},
			} {
				want := make([]float64, N)
				u.ref(want, wide(x), N)
				got := nans[float32](N)
				u.fast(got, x, N)
				cpuCheck(t, u.name, got, want, 1e-6)
			}
			type grad struct {
				name string
				ref  func(dinp, dout, inp []float64, n int)
				fast func(dinp, dout, inp []float32, n int)
			}
			for _, g := range []grad{
				{"gelu grad", GELUGradRef[float64], GELUGrad},
				{"silu grad", SiLUGradRef[float64], SiLUGrad},
			} {
				want := make([]float64, N)
				g.ref(want, wide(d), wide(x), N)
				got := nans[float32](N)
				g.fast(got, d, x, N)
				cpuCheck(t, g.name, got, want, 1e-5)
			}
			want := make([]float64, N)
			AddRef(want, wide(x), wide(y), N)
			got := nans[float32](N)
			Add(got, x, y, N)
			cpuCheck(t, "add", got, want, 1e-7)
			MulRef(want, wide(x), wide(y), N)
			got = nans[float32](N)
			Mul(got, x, y, N)
			cpuCheck(t, "mul", got, want, 1e-7)
		})
	}
}

func TestCPUExp32(t *testing.T) {
	for x := float32(-110); x < 90; x += 0.0137 {
		got, want := float64(exp32(x)), math.Exp(float64(x))
		if want < 0x1p-126 { // subnormal results: absolute error of one float32 step
			if math.Abs(got-want) > 0x1p-149 {
				t.Fatalf("exp32(%g) = %g, want %g", x, got, want)
			}
			continue
		}
		if math.IsInf(got, 1) && want > math.MaxFloat32 {
			continue
		}
		if math.Abs(got-want) > 1.2e-7*want {
			t.Fatalf("exp32(%g) = %g, want %g", x, got, want)
		}
	}
	if v := exp32(float32(math.Inf(-1))); v != 0 {
		t.Errorf("exp32(-Inf) = %g", v)
	}
	if v := exp32(float32(math.Inf(1))); !math.IsInf(float64(v), 1) {
		t.Errorf("exp32(+Inf) = %g", v)
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Errorf("exp32(NaN) = %g", v)
	}
}

func TestCPUSoftmaxCrossEntropy(t *testing.T) { forEachISA(t, testCPUSoftmaxCrossEntropy) }

func testCPUSoftmaxCrossEntropy(t *testing.T) {
	rng := newRand()
	for _, N := range cpuSizes {
		for _, C := range []int{1, 7, 33, 1000} {
			t.Run(fmt.Sprintf("N%d_C%d", N, C), func(t *testing.T) {
				x := cpuRandn(rng, N*C)
				for i := range x {
					x[i] *= 5
				}
				d := cpuRandn(rng, N*C)
				targets := randIDs(rng, N, C)

				want := make([]float64, N*C)
				SoftmaxRef(want, wide(x), N, C)
				got := nans[float32](N * C)
				Softmax(got, x, N, C)
				cpuCheck(t, "softmax", got, want, 1e-6)

				y := got
				want = make([]float64, N*C)
				SoftmaxGradRef(want, wide(d), wide(y), N, C)
				got = nans[float32](N * C)
				SoftmaxGrad(got, d, y, N, C)
				cpuCheck(t, "softmax grad", got, want, 1e-6)

				wl := CrossEntropyRef(wide(x), targets, N, C)
				gl := CrossEntropy(x, targets, N, C)
				cpuCheck(t, "cross-entropy", []float32{gl}, []float64{wl}, 1e-6)

				want = make([]float64, N*C)
				CrossEntropyGradRef(want, 0.7, wide(x), targets, N, C)
				got = nans[float32](N * C)
				CrossEntropyGrad(got, 0.7, x, targets, N, C)
				cpuCheck(t, "cross-entropy grad", got, want, 1e-6)
			})
		}
	}
}

func TestCPUEmbedding(t *testing.T) {
	rng := newRand()
	for _, N := range cpuSizes {
		for _, C := range []int{1, 7, 100} {
			const V = 11 // few ids, so tokens repeat
			t.Run(fmt.Sprintf("N%d_C%d", N, C), func(t *testing.T) {
				table, dout := cpuRandn(rng, V*C), cpuRandn(rng, N*C)
				ids := randIDs(rng, N, V)
				want := make([]float32, N*C)
				EmbeddingRef(want, ids, table, N, C)
				got := nans[float32](N * C)
				Embedding(got, ids, table, N, C)
				cpuCheck32(t, "embedding", got, want, 0)

				// Same float32 sums in the same order as the reference: exact.
				want = nans[float32](V * C)
				EmbeddingGradRef(want, dout, ids, N, V, C)
				got = nans[float32](V * C)
				EmbeddingGrad(got, dout, ids, N, V, C)
				cpuCheck32(t, "embedding grad", got, want, 0)
			})
		}
	}
}

func TestCPUCopyCols(t *testing.T) {
	rng := newRand()
	const rows, srcStride, dstStride = 9, 12, 7
	src := cpuRandn(rng, rows*srcStride)
	dst := nans[float32](rows * dstStride)
	CopyCols(dst, dstStride, 2, src, srcStride, 4, rows, 5)
	for r := range rows {
		for c := range dstStride {
			v := dst[r*dstStride+c]
			if c < 2 || c >= 7 {
				if v == v {
					t.Fatalf("dst[%d,%d] = %g written outside the block", r, c, v)
				}
				continue
			}
			if want := src[r*srcStride+4+c-2]; v != want {
				t.Fatalf("dst[%d,%d] = %g, want %g", r, c, v, want)
			}
		}
	}
}

func TestCPUScratchClasses(t *testing.T) {
	prev := -1
	for n := 1; n < 1<<20; n += 1 + n/7 {
		class, size := f32Class(n)
		if size < n || (n > 8 && float64(size) > 1.25*float64(n)+1) {
			t.Fatalf("n %d: capacity %d", n, size)
		}
		if c2, s2 := f32Class(size); c2 != class || s2 != size {
			t.Fatalf("n %d: capacity %d maps to class %d size %d, want %d", n, size, c2, s2, class)
		}
		if class < prev || class >= f32Classes {
			t.Fatalf("n %d: class %d after %d", n, class, prev)
		}
		prev = class
	}
}

// TestCPUGemmLayouts drives the GEMM engine directly with every operand
// layout (transposed or not, masked or not, for A and B), two segments, and
// each output mode, against a float64 triple loop.
func TestCPUGemmLayouts(t *testing.T) { forEachISA(t, testCPUGemmLayouts) }

func testCPUGemmLayouts(t *testing.T) {
	rng := newRand()
	// operand builds an r×c matrix in the layout given and returns it with
	// its float64 values, element (i, j) at vals[i*c+j].
	operand := func(r, c int, trans, masked bool) (gemmMat, []float64) {
		x := gemmMat{data: cpuRandn(rng, r*c), ld: c, trans: trans}
		if trans {
			x.ld = r
		}
		if masked {
			x.mask = cpuMask(rng, r*c)
		}
		vals := make([]float64, r*c)
		for i := range r {
			for j := range c {
				idx := i*x.ld + j
				if trans {
					idx = j*x.ld + i
				}
				v := float64(x.data[idx])
				if masked {
					v *= float64(x.mask[idx])
				}
				vals[i*c+j] = v
			}
		}
		return x, vals
	}
	// Sizes straddle the SIMD engine's tiles (mr 6, 12, 24; nr 8, 16, 32),
	// its row blocks (144), column blocks (256) and k chunks (256).
	for _, n := range []int{1, 3, 9, 13, 25, 70, 150} {
		for _, m := range []int{1, 13, 33, 70, 260} {
			for layout := range 16 {
				aT, aM, bT, bM := layout&1 != 0, layout&2 != 0, layout&4 != 0, layout&8 != 0
				for mode := range 3 { // 0: set with bias, 1: add, 2: last segment masked
					name := fmt.Sprintf("n%d_m%d_layout%d_mode%d", n, m, layout, mode)
					k1, k2 := 11, 3
					if (n+m+layout)%3 == 0 {
						k1 = 270
					}
					a1, va1 := operand(n, k1, aT, aM)
					b1, vb1 := operand(k1, m, bT, bM)
					a2, va2 := operand(n, k2, !aT, false)
					b2, vb2 := operand(k2, m, !bT, bM)
					// alpha 1 lets full tiles accumulate in C itself.
					alpha := float32(0.5)
					if (n+m+layout)%2 == 0 {
						alpha = 1
					}
					out := gemmOut{ld: m, alpha: alpha}
					c := nans[float32](n * m)
					var mask []float32
					switch mode {
					case 0:
						out.bias = cpuRandn(rng, m)
					case 1:
						c = cpuRandn(rng, n*m)
						out.add = true
					case 2:
						mask = cpuMask(rng, n*m)
						out.lastMask = mask
					}
					want := make([]float64, n*m)
					for i := range n {
						for j := range m {
							var s1, s2 float64
							for p := range k1 {
								s1 += va1[i*k1+p] * vb1[p*m+j]
							}
							for p := range k2 {
								s2 += va2[i*k2+p] * vb2[p*m+j]
							}
							if mask != nil {
								s2 *= float64(mask[i*m+j])
							}
							v := float64(alpha) * (s1 + s2)
							switch mode {
							case 0:
								v += float64(out.bias[j])
							case 1:
								v += float64(c[i*m+j])
							}
							want[i*m+j] = v
						}
					}
					out.c = c
					gemm(n, m, []gemmSeg{{a: a1, b: b1, k: k1}, {a: a2, b: b2, k: k2}}, out)
					// Sums of 270 unit-normal products carry float32 rounding
					// near 1e-5 absolute.
					tol := 1e-5
					if k1 > 100 {
						tol = cpuMatmulTol
					}
					cpuCheck(t, name, c, want, tol)
				}
			}
		}
	}
}

func TestCPUSoftcap(t *testing.T) {
	rng := newRand()
	const N, cap = 1000, 30
	x := cpuRandn(rng, N)
	for i := range x {
		x[i] *= 40 // well into tanh's saturation
	}
	dout := cpuRandn(rng, N)
	want := make([]float64, N)
	SoftcapRef(want, wide(x), N, cap)
	got := nans[float32](N)
	Softcap(got, x, N, cap)
	cpuCheck(t, "softcap", got, want, 1e-6)
	for i, v := range got {
		if math.Abs(float64(v)) > cap {
			t.Fatalf("element %d: softcap(%g) = %g, over the cap", i, x[i], v)
		}
	}
	SoftcapGradRef(want, wide(dout), wide(x), N, cap)
	got = nans[float32](N)
	SoftcapGrad(got, dout, x, N, cap)
	cpuCheck(t, "softcap grad", got, want, 1e-5)
}
