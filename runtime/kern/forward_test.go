package kern

import (
	"fmt"
	"math"
	"testing"
)

// Forward kernels against independent naive formulas and invariants.

func TestEmbeddingForward(t *testing.T) {
	rng := newRand()
	const N, V, C = 17, 7, 5
	ids := randIDs(rng, N, V)
	ids[3], ids[11] = -1, -1 // padding rows
	table := randn(rng, V*C)
	out := nans[float64](N * C)
	EmbeddingRef(out, ids, table, N, C)
	out32 := nans[float32](N * C)
	Embedding(out32, ids, f32s(table), N, C)
	for n := 0; n < N; n++ {
		for c := 0; c < C; c++ {
			want := 0.0
			if ids[n] >= 0 {
				want = table[int(ids[n])*C+c]
			}
			if out[n*C+c] != want || float64(out32[n*C+c]) != float64(float32(want)) {
				t.Fatalf("out[%d,%d] = %v and %v, want %v (id %d)", n, c, out[n*C+c], out32[n*C+c], want, ids[n])
			}
		}
	}
}

// naiveLinear computes out[n,m] = Σₖ inp[n,k]·W[m,k] + bias[m] with W given as
// a function, so the two weight layouts are read by index, not by kernel code.
func naiveLinear(inp []float64, wAt func(m, k int) float64, bias []float64, N, K, M int) []float64 {
	out := make([]float64, N*M)
	for n := 0; n < N; n++ {
		for m := 0; m < M; m++ {
			s := 0.0
			if bias != nil {
				s = bias[m]
			}
			for k := 0; k < K; k++ {
				s += inp[n*K+k] * wAt(m, k)
			}
			out[n*M+m] = s
		}
	}
	return out
}

func TestLinearForward(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ N, K, M int }{{1, 1, 1}, {7, 17, 33}, {33, 7, 1}} {
		N, K, M := sz.N, sz.K, sz.M
		inp, w, bias := randn(rng, N*K), randn(rng, M*K), randn(rng, M)
		hf := func(m, k int) float64 { return w[m*K+k] }
		gpt2 := func(m, k int) float64 { return w[k*M+m] }
		for _, tc := range []struct {
			conv1d bool
			wAt    func(m, k int) float64
			bias   []float64
		}{{false, hf, bias}, {false, hf, nil}, {true, gpt2, bias}, {true, gpt2, nil}} {
			out := nans[float64](N * M)
			LinearRef(out, inp, w, tc.bias, N, K, M, tc.conv1d)
			name := fmt.Sprint(sz, " conv1d ", tc.conv1d, " bias ", tc.bias != nil)
			checkClose(t, name, out, naiveLinear(inp, tc.wAt, tc.bias, N, K, M), 1e-13)
		}
	}
}

func TestLayerNormForward(t *testing.T) {
	rng := newRand()
	const N, C, eps = 7, 33, 1e-5
	inp := randn(rng, N*C)
	for i := range inp {
		inp[i] = 3*inp[i] + 2
	}
	ones, zeros := make([]float64, C), make([]float64, C)
	for i := range ones {
		ones[i] = 1
	}
	out := nans[float64](N * C)
	LayerNormRef(out, inp, ones, zeros, N, C, eps)
	for n := 0; n < N; n++ {
		var mean, sq float64
		for _, v := range out[n*C : (n+1)*C] {
			mean += v
			sq += v * v
		}
		mean /= C
		variance := sq/C - mean*mean
		if math.Abs(mean) > 1e-12 || math.Abs(variance-1) > 1e-4 {
			t.Errorf("row %d: mean %g, variance %g; want 0 and 1", n, mean, variance)
		}
	}

	// gain and bias apply per channel; a nil bias is a zero bias.
	gain, bias := randn(rng, C), randn(rng, C)
	withParams, noBias := nans[float64](N*C), nans[float64](N*C)
	LayerNormRef(withParams, inp, gain, bias, N, C, eps)
	LayerNormRef(noBias, inp, gain, nil, N, C, eps)
	want := make([]float64, N*C)
	for i := range want {
		want[i] = out[i]*gain[i%C] + bias[i%C]
		noBias[i] += bias[i%C]
	}
	checkClose(t, "gain, bias", withParams, want, 1e-13)
	checkClose(t, "nil bias", noBias, want, 1e-13)
}

func TestRMSNormForward(t *testing.T) {
	rng := newRand()
	const N, C, eps = 7, 17, 1e-6
	inp, gain := randn(rng, N*C), randn(rng, C)
	out := nans[float64](N * C)
	RMSNormRef(out, inp, gain, N, C, eps, 0)
	want := make([]float64, N*C)
	for n := 0; n < N; n++ {
		var ms float64
		for c := 0; c < C; c++ {
			ms += inp[n*C+c] * inp[n*C+c] / C
		}
		for c := 0; c < C; c++ {
			want[n*C+c] = inp[n*C+c] / math.Sqrt(ms+eps) * gain[c]
		}
	}
	checkClose(t, "out", out, want, 1e-13)
}

func TestRoPEForward(t *testing.T) {
	rng := newRand()
	const N, NH, HS, theta = 7, 3, 8, 10000.0
	inp := randn(rng, N*NH*HS)
	pos := randIDs(rng, N, 4096)
	pos[0] = 0
	out := nans[float64](N * NH * HS)
	RoPERef(out, inp, pos, N, NH, HS, theta, RoPEDefault, 0, 0, 0, 0)

	// Position 0 is the identity.
	checkClose(t, "pos 0", out[:NH*HS], inp[:NH*HS], 0)

	// A rotation keeps the norm of each (i, i+HS/2) pair.
	for n := 0; n < N; n++ {
		for h := 0; h < NH; h++ {
			for i := 0; i < HS/2; i++ {
				o := n*NH*HS + h*HS + i
				before := math.Hypot(inp[o], inp[o+HS/2])
				after := math.Hypot(out[o], out[o+HS/2])
				if math.Abs(before-after) > 1e-12*before {
					t.Errorf("row %d head %d pair %d: norm %g became %g", n, h, i, before, after)
				}
			}
		}
	}

	// The pairing is rotate_half's (i with i+HS/2) and the frequency of pair i
	// is theta^(−2i/HS): a unit vector on pair i turns by pos·theta^(−2i/HS).
	for i := 0; i < HS/2; i++ {
		x := make([]float64, HS)
		x[i] = 1
		y := nans[float64](HS)
		RoPERef(y, x, []int32{3}, 1, 1, HS, theta, RoPEDefault, 0, 0, 0, 0)
		angle := 3 * math.Pow(theta, -2*float64(i)/HS)
		want := make([]float64, HS)
		want[i], want[i+HS/2] = math.Cos(angle), math.Sin(angle)
		checkClose(t, fmt.Sprint("unit pair ", i), y, want, 1e-15)
	}

	// Scores depend only on relative position: ⟨rope(q, p+d), rope(k, p)⟩ is
	// the same for every p.
	q, k := randn(rng, HS), randn(rng, HS)
	score := func(pq, pk int32) float64 {
		rq, rk := nans[float64](HS), nans[float64](HS)
		RoPERef(rq, q, []int32{pq}, 1, 1, HS, theta, RoPEDefault, 0, 0, 0, 0)
		RoPERef(rk, k, []int32{pk}, 1, 1, HS, theta, RoPEDefault, 0, 0, 0, 0)
		return dot(rq, rk)
	}
	if a, b := score(5, 2), score(105, 102); math.Abs(a-b) > 1e-10 {
		t.Errorf("score at (5, 2) = %g, at (105, 102) = %g; want equal", a, b)
	}

	// In place gives the same result.
	inPlace := append([]float64(nil), inp...)
	RoPERef(inPlace, inPlace, pos, N, NH, HS, theta, RoPEDefault, 0, 0, 0, 0)
	checkClose(t, "in place", inPlace, out, 0)
}

// naiveAttention expands k and v to NH heads (repeat_kv) and computes the
// masked softmax over a full T×T score matrix; W > 0 masks keys s with
// t − s ≥ W, as transformers' sliding_window_overlay does.
func naiveAttention(q, k, v []float64, B, T, NH, KVH, HS, W int, scale, cap float64) []float64 {
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(HS))
	}
	out := make([]float64, B*T*NH*HS)
	at := func(x []float64, heads, b, t, h, i int) float64 { return x[((b*T+t)*heads+h)*HS+i] }
	for b := 0; b < B; b++ {
		for h := 0; h < NH; h++ {
			g := h * KVH / NH
			for t := 0; t < T; t++ {
				scores := make([]float64, T)
				for s := range scores {
					scores[s] = math.Inf(-1)
					if s <= t && (W == 0 || t-s < W) {
						scores[s] = 0
						for i := 0; i < HS; i++ {
							scores[s] += at(q, NH, b, t, h, i) * at(k, KVH, b, s, g, i)
						}
						scores[s] *= scale
						if cap > 0 {
							scores[s] = cap * math.Tanh(scores[s]/cap)
						}
					}
				}
				var sum float64
				for s := range scores {
					scores[s] = math.Exp(scores[s])
					sum += scores[s]
				}
				for i := 0; i < HS; i++ {
					var o float64
					for s := range scores {
						o += scores[s] / sum * at(v, KVH, b, s, g, i)
					}
					out[((b*T+t)*NH+h)*HS+i] = o
				}
			}
		}
	}
	return out
}

func TestAttentionForward(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct {
		B, T, NH, KVH, HS, W int
		scale, cap           float64
	}{
		{1, 1, 1, 1, 1, 0, 0, 0}, {2, 7, 4, 4, 3, 0, 0, 0}, {2, 7, 4, 2, 3, 0, 0, 0}, {1, 17, 4, 1, 5, 0, 0, 0},
		{2, 7, 4, 2, 3, 1, 0, 0}, {1, 17, 4, 1, 5, 4, 0, 0}, {1, 17, 4, 2, 5, 17, 0, 0},
		{2, 7, 4, 2, 3, 0, 0.25, 0}, {2, 7, 4, 2, 3, 3, 0.5, 1.5}, // Gemma 2: own scale, soft-capped scores
	} {
		B, T, NH, KVH, HS, W := sz.B, sz.T, sz.NH, sz.KVH, sz.HS, sz.W
		q, k, v := randn(rng, B*T*NH*HS), randn(rng, B*T*KVH*HS), randn(rng, B*T*KVH*HS)
		out := nans[float64](B * T * NH * HS)
		AttentionRef(out, q, k, v, B, T, NH, KVH, HS, W, sz.scale, sz.cap)
		checkClose(t, fmt.Sprint(sz), out, naiveAttention(q, k, v, B, T, NH, KVH, HS, W, sz.scale, sz.cap), 1e-13)
	}

	// At T = 1 a token attends only to itself: query head h returns v of its
	// key/value head h/(NH/KVH), whatever q and k are.
	for _, KVH := range []int{4, 2, 1} {
		const B, NH, HS = 3, 4, 5
		q, k, v := randn(rng, B*NH*HS), randn(rng, B*KVH*HS), randn(rng, B*KVH*HS)
		out := nans[float64](B * NH * HS)
		AttentionRef(out, q, k, v, B, 1, NH, KVH, HS, 0, 0, 0)
		want := make([]float64, B*NH*HS)
		for b := 0; b < B; b++ {
			for h := 0; h < NH; h++ {
				g := h / (NH / KVH)
				copy(want[(b*NH+h)*HS:][:HS], v[(b*KVH+g)*HS:][:HS])
			}
		}
		checkClose(t, fmt.Sprint("T=1 KVH=", KVH), out, want, 1e-15)
	}
}

func TestActivationsForward(t *testing.T) {
	// Reference values of gelu_new (tanh approximation), from the formula in
	// exact arithmetic; the approximation is odd around x/2: g(−x) = g(x) − x.
	cases := []struct{ x, gelu, silu float64 }{
		{0, 0, 0},
		{1, 0.8411919906082768, 1 / (1 + math.Exp(-1))},
		{-1, 0.8411919906082768 - 1, -1 / (1 + math.Exp(1))},
		{-40, 0, -40 / (1 + math.Exp(40))},
		{40, 40, 40},
	}
	inp := make([]float64, len(cases))
	for i, c := range cases {
		inp[i] = c.x
	}
	gelu, silu := nans[float64](len(cases)), nans[float64](len(cases))
	GELURef(gelu, inp, len(cases))
	SiLURef(silu, inp, len(cases))
	for i, c := range cases {
		if !closeRel(gelu[i], c.gelu, 1e-14, 1e-15) {
			t.Errorf("GELU(%g) = %.17g, want %.17g", c.x, gelu[i], c.gelu)
		}
		if !closeRel(silu[i], c.silu, 1e-14, 1e-300) {
			t.Errorf("SiLU(%g) = %.17g, want %.17g", c.x, silu[i], c.silu)
		}
	}
}

func TestAddMul(t *testing.T) {
	rng := newRand()
	const N = 33
	a, b := randn(rng, N), randn(rng, N)
	sum, prod := nans[float64](N), nans[float64](N)
	AddRef(sum, a, b, N)
	MulRef(prod, a, b, N)
	for i := range a {
		if sum[i] != a[i]+b[i] || prod[i] != a[i]*b[i] {
			t.Fatalf("element %d: Add %g, Mul %g; want %g, %g", i, sum[i], prod[i], a[i]+b[i], a[i]*b[i])
		}
	}
	AddRef(a, a, b, N) // in place
	checkClose(t, "in-place Add", a, sum, 0)
}

func TestSoftmaxForward(t *testing.T) {
	rng := newRand()
	const N, C = 7, 33
	inp := randn(rng, N*C)
	for i := range inp {
		inp[i] *= 5
	}
	inp[0] = 1000 // would overflow exp without the max subtraction
	out := nans[float64](N * C)
	SoftmaxRef(out, inp, N, C)
	for n := 0; n < N; n++ {
		row := out[n*C : (n+1)*C]
		var sum float64
		for _, v := range row {
			sum += v
		}
		if math.Abs(sum-1) > 1e-14 {
			t.Errorf("row %d sums to %.17g", n, sum)
		}
		// Ratios are exp of differences.
		for c := 1; c < C; c++ {
			want := math.Exp(inp[n*C+c] - inp[n*C])
			if !closeRel(row[c]/row[0], want, 1e-12, 1e-300) {
				t.Errorf("row %d: p[%d]/p[0] = %g, want %g", n, c, row[c]/row[0], want)
			}
		}
	}
}

func TestCrossEntropyForward(t *testing.T) {
	rng := newRand()
	for _, V := range []int{1, 7, 33} {
		const N = 17
		uniform := make([]float64, N*V)
		for i := range uniform {
			uniform[i] = 3.5
		}
		targets := randIDs(rng, N, V)
		if got := CrossEntropyRef(uniform, targets, N, V); math.Abs(got-math.Log(float64(V))) > 1e-14 {
			t.Errorf("V=%d: uniform logits give %g, want log V = %g", V, got, math.Log(float64(V)))
		}
	}

	// Against −log of a naive softmax, with logits small enough not to overflow.
	const N, V = 7, 17
	logits := randn(rng, N*V)
	targets := randIDs(rng, N, V)
	var want float64
	for n := 0; n < N; n++ {
		var sum float64
		for _, v := range logits[n*V : (n+1)*V] {
			sum += math.Exp(v)
		}
		want -= math.Log(math.Exp(logits[n*V+int(targets[n])])/sum) / N
	}
	if got := CrossEntropyRef(logits, targets, N, V); !closeRel(got, want, 1e-13, 0) {
		t.Errorf("loss %.17g, want %.17g", got, want)
	}

	// Huge logits stay finite.
	logits[0], logits[1] = 1e4, -1e4
	if got := CrossEntropyRef(logits, targets, N, V); math.IsInf(got, 0) || math.IsNaN(got) {
		t.Errorf("loss with huge logits = %g", got)
	}
}

func TestLoRAForward(t *testing.T) {
	rng := newRand()
	const N, K, M, R, scale = 7, 17, 5, 3, 0.5
	inp, a, b := randn(rng, N*K), randn(rng, R*K), randn(rng, M*R)
	mask := make([]float64, N*K)
	DropoutMask(mask, 0.25, 1, 2)
	masked := make([]float64, N*K)
	for i := range masked {
		masked[i] = inp[i] * mask[i]
	}
	// BA[m,k] = Σᵣ B[m,r]·A[r,k], so out = scale·(inp⊙mask)·(BA)ᵀ.
	ba := func(m, k int) float64 {
		var s float64
		for r := 0; r < R; r++ {
			s += scale * b[m*R+r] * a[r*K+k]
		}
		return s
	}
	for _, tc := range []struct {
		mask, x []float64
	}{{nil, inp}, {mask, masked}} {
		out := nans[float64](N * M)
		LoRARef(out, inp, a, b, tc.mask, N, K, M, R, scale)
		checkClose(t, fmt.Sprint("mask ", tc.mask != nil), out, naiveLinear(tc.x, ba, nil, N, K, M), 1e-13)
	}
}

func TestLoRAMerge(t *testing.T) {
	rng := newRand()
	for _, conv1d := range []bool{false, true} {
		for _, sz := range []struct{ N, K, M, R int }{{1, 1, 1, 1}, {7, 17, 33, 4}, {3, 33, 7, 8}} {
			name := fmt.Sprint(sz, " conv1d ", conv1d)
			N, K, M, R := sz.N, sz.K, sz.M, sz.R
			const scale = 2.0
			inp, w, bias := randn(rng, N*K), randn(rng, M*K), randn(rng, M)
			a, b := randn(rng, R*K), randn(rng, M*R)

			// Linear with the merged weight = base linear + LoRA branch.
			merged := nans[float64](M * K)
			LoRAMergeRef(merged, w, a, b, K, M, R, scale, conv1d)
			got := nans[float64](N * M)
			LinearRef(got, inp, merged, bias, N, K, M, conv1d)
			base, branch := nans[float64](N*M), nans[float64](N*M)
			LinearRef(base, inp, w, bias, N, K, M, conv1d)
			LoRARef(branch, inp, a, b, nil, N, K, M, R, scale)
			want := make([]float64, N*M)
			for i := range want {
				want[i] = base[i] + branch[i]
			}
			checkClose(t, name+" merged linear", got, want, 1e-12)

			// Merge then unmerge in place restores w.
			inPlace := append([]float64(nil), w...)
			LoRAMergeRef(inPlace, inPlace, a, b, K, M, R, scale, conv1d)
			checkClose(t, name+" in-place merge", inPlace, merged, 0)
			LoRAMergeRef(inPlace, inPlace, a, b, K, M, R, -scale, conv1d)
			for i := range w {
				if math.Abs(inPlace[i]-w[i]) > 1e-6 {
					t.Errorf("%s: unmerged w[%d] = %g, want %g", name, i, inPlace[i], w[i])
					break
				}
			}
		}
	}
}

// ropeScalings are one of each scaling kind, for the kernel tests.
var ropeScalings = []struct {
	kind              int
	factor, low, high float64
	orig              int
}{
	{RoPEDefault, 0, 0, 0, 0},
	{RoPELinear, 4, 0, 0, 0},
	{RoPELlama3, 8, 1, 4, 64},
}

// TestRoPEInvFreq checks the scaled frequencies against the rules written
// out in float64: linear divides every frequency by the factor; llama3
// keeps short wavelengths, divides long ones and blends in between.
func TestRoPEInvFreq(t *testing.T) {
	const HS, theta = 16, 10000.0
	base := RoPEInvFreq(HS, theta, RoPEDefault, 0, 0, 0, 0)
	for i, f := range base {
		if want := math.Pow(theta, -2*float64(i)/HS); f != want {
			t.Errorf("default %d: %g, want %g", i, f, want)
		}
	}
	lin := RoPEInvFreq(HS, theta, RoPELinear, 4, 0, 0, 0)
	for i := range base {
		if math.Abs(lin[i]-base[i]/4) > 1e-7*base[i] {
			t.Errorf("linear %d: %g, want %g", i, lin[i], base[i]/4)
		}
	}
	// Wavelengths 2π/f for HS 16: 6.3, 19.9, 62.8, 199, …; with origCtx 64,
	// lowFreq 1 and highFreq 4 the bounds are 16 and 64, so pair 0 is kept,
	// pairs 1 and 2 are blended and the rest divided by 8.
	l3 := RoPEInvFreq(HS, theta, RoPELlama3, 8, 1, 4, 64)
	kinds := map[string]int{}
	for i, f := range base {
		wave := 2 * math.Pi / f
		want := f
		kind := "kept"
		switch {
		case wave > 64:
			want, kind = f/8, "divided"
		case wave >= 16:
			s := (64/wave - 1) / (4 - 1)
			want, kind = (1-s)*f/8+s*f, "blended"
		}
		kinds[kind]++
		if math.Abs(l3[i]-want) > 1e-6*want {
			t.Errorf("llama3 %d (%s): %g, want %g", i, kind, l3[i], want)
		}
	}
	if kinds["kept"] != 1 || kinds["blended"] != 2 || kinds["divided"] != 5 {
		t.Errorf("llama3 pairs kept, blended, divided: %v; want 1, 2, 5", kinds)
	}
}

func TestScale(t *testing.T) {
	x := []float32{1, -2, 3.5, 0}
	got := nans[float32](4)
	Scale(got, x, 4, 0.5)
	want := make([]float64, 4)
	ScaleRef(want, []float64{1, -2, 3.5, 0}, 4, 0.5)
	for i := range got {
		if float64(got[i]) != want[i] || want[i] != float64(x[i])*0.5 {
			t.Errorf("element %d: %v, reference %v, want %v", i, got[i], want[i], x[i]*0.5)
		}
	}
}
