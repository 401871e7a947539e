package cuda

// The GPU tests: every kernel against the CPU reference on random inputs.
// Each skips, saying why, where no GPU answers; bench/gpu_check.sh runs
// them (and TestGPUTiming) on a machine with one.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
)

var (
	gpuOnce sync.Once
	gpuLib  *Lorac
	gpuErr  error
)

// gpu returns the kernels on GPU 0, or skips the test.
func gpu(t testing.TB) *Lorac {
	t.Helper()
	gpuOnce.Do(func() {
		d, err := Open(0)
		if err != nil {
			gpuErr = err
			return
		}
		gpuLib, gpuErr = d.Lorac()
		if gpuErr == nil {
			fmt.Fprintf(os.Stderr, "cuda: GPU 0 is %s, compute capability %d.%d\n", d.Name, d.Major, d.Minor)
		}
	})
	if gpuErr != nil {
		t.Skipf("no GPU to run on: %v", gpuErr)
	}
	return gpuLib
}

func upload[T float32 | int32 | uint16](t testing.TB, l *Lorac, s []T) Ptr {
	t.Helper()
	b, err := l.D.Alloc(max(len(s), 1) * 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.D.Free(b) })
	if err := Upload(l.D, b, s); err != nil {
		t.Fatal(err)
	}
	return b.Ptr
}

func alloc(t testing.TB, l *Lorac, n int) Ptr {
	t.Helper()
	b, err := l.D.Alloc(max(n, 1) * 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.D.Free(b) })
	if err := l.D.Zero(b); err != nil {
		t.Fatal(err)
	}
	return b.Ptr
}

func download[T float32 | uint16](t testing.TB, l *Lorac, p Ptr, n int) []T {
	t.Helper()
	if err := l.D.Sync(); err != nil {
		t.Fatal(err)
	}
	out := make([]T, n)
	var z T
	if err := Download(l.D, out, Buffer{p, n * int(sizeOf(z))}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sizeOf[T float32 | uint16](T) uintptr {
	var z T
	switch any(z).(type) {
	case uint16:
		return 2
	}
	return 4
}

func random(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((rng.Float64()*2 - 1) * scale)
	}
	return s
}

// near fails when |got−want| > atol + rtol·|want| anywhere, naming the
// worst element.
func near(t testing.TB, name string, got, want []float32, rtol, atol float64) {
	t.Helper()
	worst, wi := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		lim := atol + rtol*math.Abs(float64(want[i]))
		if math.IsNaN(d) || d > lim {
			if r := d / lim; math.IsNaN(r) || r > worst || wi < 0 {
				worst, wi = r, i
			}
		}
	}
	if wi >= 0 {
		t.Errorf("%s: element %d is %v, want %v (%.3g× the tolerance)", name, wi, got[wi], want[wi], worst)
	}
}

func TestGPUElementwise(t *testing.T) { checkElementwise(t, gpu(t), false) }

func checkElementwise(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1<<20 + 3 // past one grid's worth: the grid-stride loop runs twice
	if small {
		n = 1000 + 3
	}
	a, b := random(rng, n, 6), random(rng, n, 3)
	pa, pb, out := upload(t, l, a), upload(t, l, b), alloc(t, l, n)
	want := make([]float32, n)
	for _, c := range []struct {
		entry      string
		binary     bool
		ref        func()
		rtol, atol float64
	}{
		{"lorac_add", true, func() { kern.AddRef(want, a, b, n) }, 0, 0},
		{"lorac_mul", true, func() { kern.MulRef(want, a, b, n) }, 0, 0},
		{"lorac_gelu", false, func() { kern.GELURef(want, a, n) }, 1e-5, 2e-6},
		{"lorac_silu", false, func() { kern.SiLURef(want, a, n) }, 1e-5, 2e-6},
		{"lorac_gelu_grad", true, func() { kern.GELUGradRef(want, b, a, n) }, 1e-5, 2e-6},
		{"lorac_silu_grad", true, func() { kern.SiLUGradRef(want, b, a, n) }, 1e-5, 2e-6},
	} {
		var err error
		switch {
		case c.entry == "lorac_gelu_grad" || c.entry == "lorac_silu_grad":
			err = l.Binary(c.entry, out, pb, pa, n) // dout = b, x = a
		case c.binary:
			err = l.Binary(c.entry, out, pa, pb, n)
		default:
			err = l.Unary(c.entry, out, pa, n)
		}
		if err != nil {
			t.Fatal(err)
		}
		c.ref()
		near(t, c.entry, download[float32](t, l, out, n), want, c.rtol, c.atol)
	}

	// The attribute ops: x·s, and soft-capping at caps that put x/cap
	// in both of tanh's regimes (|x/cap| up to 2.4, and under 0.12). tanh
	// comes from ex2.approx through e^{−2|y|}, whose absolute error
	// (about 2⁻²¹) the atol allows, scaled by the cap.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Scale(out, pa, n, 0.37))
	kern.ScaleRef(want, a, n, 0.37)
	near(t, "Scale", download[float32](t, l, out, n), want, 0, 0)
	for _, cp := range []float32{2.5, 50} {
		must(l.Softcap(out, pa, n, cp))
		kern.SoftcapRef(want, a, n, float64(cp))
		near(t, fmt.Sprintf("Softcap %g", cp), download[float32](t, l, out, n), want, 1e-5, 1e-6*float64(cp))
		must(l.SoftcapGrad(out, pb, pa, n, cp))
		kern.SoftcapGradRef(want, b, a, n, float64(cp))
		near(t, fmt.Sprintf("SoftcapGrad %g", cp), download[float32](t, l, out, n), want, 1e-5, 1e-6)
	}
	// In place, as the kernels allow.
	pc := upload(t, l, a)
	must(l.Softcap(pc, pc, n, 2.5))
	kern.SoftcapRef(want, a, n, 2.5)
	near(t, "Softcap in place", download[float32](t, l, pc, n), want, 1e-5, 2.5e-6)
	for _, bad := range []float32{0, -1, float32(math.Inf(1)), float32(math.NaN())} {
		if err := l.Softcap(out, pa, n, bad); err == nil {
			t.Errorf("soft-cap %g accepted", bad)
		}
		if err := l.SoftcapGrad(out, pb, pa, n, bad); err == nil {
			t.Errorf("soft-cap gradient with cap %g accepted", bad)
		}
	}
}

func TestGPURowKernels(t *testing.T) { checkRowKernels(t, gpu(t), false) }

func checkRowKernels(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][2]int{{3, 1}, {37, 1000}, {5, 4099}}
	if small {
		shapes = [][2]int{{3, 1}, {2, 300}, {1, 517}}
	}
	for _, sh := range shapes {
		N, C := sh[0], sh[1]
		x, gain, bias := random(rng, N*C, 4), random(rng, C, 1), random(rng, C, 1)
		px, pg, pbias, out := upload(t, l, x), upload(t, l, gain), upload(t, l, bias), alloc(t, l, N*C)
		want := make([]float32, N*C)
		name := fmt.Sprintf("%d×%d", N, C)
		for _, withBias := range []bool{true, false} {
			pb, bref := pbias, bias
			if !withBias {
				pb, bref = 0, nil
			}
			if err := l.LayerNorm(out, px, pg, pb, N, C, 1e-5); err != nil {
				t.Fatal(err)
			}
			kern.LayerNormRef(want, x, gain, bref, N, C, 1e-5)
			near(t, "layernorm "+name, download[float32](t, l, out, N*C), want, 1e-5, 1e-5)
		}
		for _, offset := range []float32{0, 1} { // 1: Gemma's (1 + w)
			if err := l.RMSNorm(out, px, pg, N, C, 1e-6, offset); err != nil {
				t.Fatal(err)
			}
			kern.RMSNormRef(want, x, gain, N, C, 1e-6, float64(offset))
			near(t, fmt.Sprintf("rmsnorm offset %g %s", offset, name), download[float32](t, l, out, N*C), want, 1e-5, 1e-5)
		}
		if err := l.Softmax(out, px, N, C); err != nil {
			t.Fatal(err)
		}
		kern.SoftmaxRef(want, x, N, C)
		near(t, "softmax "+name, download[float32](t, l, out, N*C), want, 1e-5, 1e-7)
	}
}

func TestGPUCrossEntropy(t *testing.T) { checkCrossEntropy(t, gpu(t), false) }

func checkCrossEntropy(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := [][2]int{{33, 517}, {4, 50257}}
	if small {
		shapes = [][2]int{{5, 300}, {4, 33}}
	}
	for _, sh := range shapes {
		N, V := sh[0], sh[1]
		logits := random(rng, N*V, 8)
		targets := make([]int32, N)
		for i := range targets {
			targets[i] = int32(rng.IntN(V))
			if i%5 == 3 {
				targets[i] = kern.IgnoreTarget
			}
		}
		pl, pt := upload(t, l, logits), upload(t, l, targets)
		loss, dl := alloc(t, l, N), alloc(t, l, N*V)
		if err := l.CrossEntropyRows(loss, pl, pt, N, V); err != nil {
			t.Fatal(err)
		}
		rows := download[float32](t, l, loss, N)
		count := kern.CountTargets(targets)
		var sum float64
		for i, r := range rows {
			if targets[i] == kern.IgnoreTarget && r != 0 {
				t.Errorf("ignored row %d has loss %v", i, r)
			}
			sum += float64(r)
		}
		want := kern.CrossEntropyRef(logits, targets, N, V)
		near(t, fmt.Sprintf("cross-entropy %d×%d", N, V), []float32{float32(sum / float64(count))}, []float32{want}, 1e-5, 0)
		const dloss = 1.3
		if err := l.CrossEntropyGradScaled(dl, pl, pt, N, V, float32(dloss/float64(count))); err != nil {
			t.Fatal(err)
		}
		wantG := make([]float32, N*V)
		kern.CrossEntropyGradRef(wantG, dloss, logits, targets, N, V)
		near(t, fmt.Sprintf("cross-entropy grad %d×%d", N, V), download[float32](t, l, dl, N*V), wantG, 1e-5, 1e-9)
	}
}

// TestGPUAdamW: the device update is bit-identical to engine.AdamW.Step.
func TestGPUAdamW(t *testing.T) { checkAdamW(t, gpu(t), false) }

func checkAdamW(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 100003
	if small {
		n = 2003
	}
	p, m, v := random(rng, n, 1), make([]float32, n), make([]float32, n)
	pp, pm, pv := upload(t, l, p), upload(t, l, m), upload(t, l, v)
	opt := engine.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	for step := 1; step <= 3; step++ {
		g := random(rng, n, 0.1)
		pg := upload(t, l, g)
		lr := opt.LR * float64(step) / 3
		if err := l.AdamW(pp, pg, pm, pv, n, opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay, lr, step); err != nil {
			t.Fatal(err)
		}
		opt.Step(p, g, m, v, step, lr)
	}
	for name, c := range map[string][2][]float32{"p": {download[float32](t, l, pp, n), p}, "m": {download[float32](t, l, pm, n), m}, "v": {download[float32](t, l, pv, n), v}} {
		diff := 0
		for i := range c[1] {
			if math.Float32bits(c[0][i]) != math.Float32bits(c[1][i]) {
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("AdamW %s: %d of %d elements differ from engine.AdamW.Step", name, diff, n)
		}
	}
}

// gemmRef is C = α₁·op(A₁)·op(B₁) + α₂·A₂·B₂ᵀ + bias in float64, and the
// magnitude Σ|terms| each element's rounding error scales with.
func gemmRef(layout string, a1, b1, bias, mask, a2, b2 []float32, N, M, K1, K2 int, alpha1, alpha2 float32) (c, mag []float32) {
	c, mag = make([]float32, N*M), make([]float32, N*M)
	for i := range N {
		for j := range M {
			var s, s2, g float64
			for k := range K1 {
				ai := i*K1 + k
				if layout[0] == 't' {
					ai = k*N + i
				}
				bi := k*M + j
				if layout[1] == 't' {
					bi = j*K1 + k
				}
				x := float64(a1[ai])
				if mask != nil {
					x *= float64(mask[ai])
				}
				s += x * float64(b1[bi])
				g += math.Abs(x * float64(b1[bi]) * float64(alpha1))
			}
			for k := range K2 {
				p := float64(a2[i*K2+k]) * float64(b2[j*K2+k])
				s2 += p
				g += math.Abs(p * float64(alpha2))
			}
			v := float64(alpha1)*s + float64(alpha2)*s2
			if bias != nil {
				v += float64(bias[j])
				g += math.Abs(float64(bias[j]))
			}
			c[i*M+j], mag[i*M+j] = float32(v), float32(g)
		}
	}
	return c, mag
}

// nearMag checks |got−want| ≤ tol·mag + 1e-6.
func nearMag(t testing.TB, name string, got, want, mag []float32, tol float64) {
	t.Helper()
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= tol*float64(mag[i])+1e-6) {
			t.Errorf("%s: element %d is %v, want %v (error %.3g, magnitude %.3g)", name, i, got[i], want[i], d, mag[i])
			return
		}
	}
}

var gemmShapes = [][4]int{{1, 1, 1, 0}, {130, 77, 200, 8}, {64, 64, 16, 0}, {257, 129, 33, 16}}

func TestGPUGemmF32(t *testing.T) { checkGemmF32(t, gpu(t), false) }

func checkGemmF32(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(9, 10))
	shapes := gemmShapes
	if small {
		shapes = [][4]int{{1, 1, 1, 0}, {70, 66, 20, 8}, {17, 9, 33, 3}}
	}
	for _, sh := range shapes {
		N, M, K1, K2 := sh[0], sh[1], sh[2], sh[3]
		a1, b1, bias := random(rng, N*K1, 1), random(rng, K1*M, 1), random(rng, M, 1)
		a2, b2 := random(rng, N*K2, 1), random(rng, M*K2, 1)
		mask := make([]float32, N*K1)
		for i := range mask {
			if rng.IntN(10) > 0 {
				mask[i] = 1 / 0.9
			}
		}
		pa1, pb1, pbias, pmask := upload(t, l, a1), upload(t, l, b1), upload(t, l, bias), upload(t, l, mask)
		pa2, pb2, c := upload(t, l, a2), upload(t, l, b2), alloc(t, l, N*M)
		for _, layout := range []string{"nt", "nn", "tn", "tt"} {
			for _, extras := range []bool{false, true} {
				bp, mp, bref, mref := Ptr(0), Ptr(0), []float32(nil), []float32(nil)
				if extras {
					bp, mp, bref, mref = pbias, pmask, bias, mask
				}
				if err := l.GemmF32(layout, c, pa1, pb1, bp, mp, pa2, pb2, N, M, K1, K2, 0.75, 2); err != nil {
					t.Fatal(err)
				}
				want, mag := gemmRef(layout, a1, b1, bref, mref, a2, b2, N, M, K1, K2, 0.75, 2)
				nearMag(t, fmt.Sprintf("gemm_f32_%s %v bias+mask=%v", layout, sh, extras), download[float32](t, l, c, N*M), want, mag, 1e-6*math.Sqrt(float64(K1+K2))+1e-6)
			}
		}
	}
}

// bf16 rounds to the nearest bfloat16, ties to even (NaN is not produced
// by the test inputs).
func bf16(x float32) uint16 {
	b := math.Float32bits(x)
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func TestGPUGemmBF16(t *testing.T) { checkGemmBF16(t, gpu(t), false) }

// bf16Case is one GEMM of checkGemmBF16: shape, whether there is a bias,
// and a byte shift of A1 that breaks 16-byte alignment (the pipelined
// kernel then cannot take it).
type bf16Case struct {
	N, M, K1, K2 int
	bias         bool
	shift        Ptr
}

// async says which kernel GemmBF16 picks for the case.
func (c bf16Case) async() bool { return c.K1%8 == 0 && c.K2%8 == 0 && c.shift%16 == 0 }

func checkGemmBF16(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(11, 12))
	toDevice := func(x []float32, shift Ptr) (Ptr, []float32) {
		px, out := upload(t, l, x), alloc(t, l, (len(x)+1)/2+int(shift))
		out += shift
		if err := l.ToBF16(out, px, len(x)); err != nil {
			t.Fatal(err)
		}
		got := download[uint16](t, l, out, len(x))
		r := make([]float32, len(x))
		for i, v := range x {
			if got[i] != bf16(v) {
				t.Fatalf("ToBF16(%v) = %#04x, want %#04x", v, got[i], bf16(v))
			}
			r[i] = fromBF16(got[i])
		}
		return out, r
	}
	// Both kernels: lorac_gemm_bf16_nt (K not a multiple of 8, or A1 off
	// 16-byte alignment) and lorac_gemm_bf16_nt_async (tiles of 128 with
	// ragged edges, K1 not a multiple of the 32-wide k-tile, LoRA ranks of
	// 8 to 40 — one k16 half or several tiles — K1 = 0, no bias).
	cases := []bf16Case{{130, 77, 200, 8, true, 0}, {64, 32, 16, 0, true, 0}, {1, 8, 2, 2, true, 0}, {257, 129, 34, 16, true, 0},
		{300, 260, 1000, 24, true, 0}, {129, 255, 512, 16, false, 0}, {200, 130, 96, 64, true, 4}, {33, 17, 8, 40, true, 0}}
	if small {
		cases = []bf16Case{{70, 40, 34, 8, true, 0}, {64, 32, 16, 0, true, 0}, {1, 8, 2, 2, true, 0}, {17, 9, 20, 6, true, 0},
			{130, 70, 66, 10, true, 0}, {40, 24, 40, 16, true, 4},
			{136, 130, 40, 8, true, 0}, {20, 140, 72, 24, false, 0}, {3, 5, 0, 40, true, 0}, {129, 9, 16, 32, true, 0},
			{33, 20, 264, 40, true, 0}} // 9 + 2 k-tiles: the 3 stages wrap around several times
	}
	for _, cs := range cases {
		N, M, K1, K2 := cs.N, cs.M, cs.K1, cs.K2
		pa1, a1 := toDevice(random(rng, max(N*K1, 1), 1), cs.shift)
		pb1, b1 := toDevice(random(rng, max(M*K1, 1), 1), 0) // (M, K1): nn.Linear's layout, "t"
		pa2, a2 := toDevice(random(rng, max(N*K2, 1), 1), 0)
		pb2, b2 := toDevice(random(rng, max(M*K2, 1), 1), 0)
		var bias []float32
		var pbias Ptr
		if cs.bias {
			bias = random(rng, M, 1)
			pbias = upload(t, l, bias)
		}
		if gemmBF16Async(pa1, pb1, pa2, pb2, K1, K2) != cs.async() {
			t.Fatalf("%+v: GemmBF16 would pick the other kernel", cs)
		}
		c := alloc(t, l, N*M)
		if err := l.GemmBF16(c, pa1, pb1, pbias, pa2, pb2, N, M, K1, K2, 0.5, 2); err != nil {
			t.Fatal(err)
		}
		want, mag := gemmRef("nt", a1, b1, bias, nil, a2, b2, N, M, K1, K2, 0.5, 2)
		nearMag(t, fmt.Sprintf("gemm_bf16 %+v (async %v)", cs, cs.async()), download[float32](t, l, c, N*M), want, mag, 1e-5)
	}
}

// TestGPULoRALinear runs the fused LoRA linear as the device does it — t =
// s·(x⊙mask)·Aᵀ, then y = x·Wᵀ + bias + t·Bᵀ in one GEMM — against
// kern.LinearRef + kern.LoRARef, in both weight layouts.
func TestGPULoRALinear(t *testing.T) { checkLoRALinear(t, gpu(t), false) }

func checkLoRALinear(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(13, 14))
	N, K, M, R := 96, 200, 150, 8
	if small {
		N, K, M, R = 20, 40, 70, 4
	}
	const scale = 2.0
	x, w, bias := random(rng, N*K, 1), random(rng, M*K, 0.1), random(rng, M, 1)
	a, b := random(rng, R*K, 0.1), random(rng, M*R, 0.1)
	mask := make([]float32, N*K)
	for i := range mask {
		if rng.IntN(10) > 0 {
			mask[i] = 1 / 0.9
		}
	}
	px, pw, pbias, pa, pb, pm := upload(t, l, x), upload(t, l, w), upload(t, l, bias), upload(t, l, a), upload(t, l, b), upload(t, l, mask)
	tt, y := alloc(t, l, N*R), alloc(t, l, N*M)
	for _, conv1d := range []bool{false, true} {
		wl := w
		layout := "nt"
		if conv1d {
			// The same W stored (K, M).
			wl = make([]float32, K*M)
			for m := range M {
				for k := range K {
					wl[k*M+m] = w[m*K+k]
				}
			}
			layout = "nn"
			pw = upload(t, l, wl)
		}
		if err := l.GemmF32("nt", tt, px, pa, 0, pm, 0, 0, N, R, K, 0, scale, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.GemmF32(layout, y, px, pw, pbias, 0, tt, pb, N, M, K, R, 1, 1); err != nil {
			t.Fatal(err)
		}
		base, branch := make([]float32, N*M), make([]float32, N*M)
		kern.LinearRef(base, x, wl, bias, N, K, M, conv1d)
		kern.LoRARef(branch, x, a, b, mask, N, K, M, R, float32(scale))
		for i := range base {
			base[i] += branch[i]
		}
		near(t, fmt.Sprintf("LoRA linear conv1d=%v", conv1d), download[float32](t, l, y, N*M), base, 1e-4, 1e-5)
	}
}

func TestGPUGEMV(t *testing.T) { checkGEMV(t, gpu(t), false) }

func checkGEMV(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(15, 16))
	M, K := 1001, 777
	if small {
		M, K = 21, 77
	}
	w, x, bias := random(rng, M*K, 1), random(rng, K, 1), random(rng, M, 1)
	y := alloc(t, l, M)
	if err := l.GEMV(y, upload(t, l, w), upload(t, l, x), upload(t, l, bias), M, K); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, M)
	kern.LinearRef(want, x, w, bias, 1, K, M, false)
	near(t, "gemv", download[float32](t, l, y, M), want, 1e-5, 1e-5)
}

// TestGPUTiming times the fused LoRA linear (t = s·x·Aᵀ, then
// y = x·Wᵀ + t·Bᵀ), and the base product alone, at docs/perf.md's kernel
// shapes on both paths, with
// events over 20 repeats after 3 warm-ups. It runs only with
// LORAC_GPU_TIMING=1 and appends JSON lines to $LORAC_GPU_REPORT if set.
func TestGPUAttention(t *testing.T) { checkAttention(t, gpu(t), false) }

// checkAttention: forward, backward and decode against the reference, in
// multi-head and grouped-query shapes.
func checkAttention(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(19, 20))
	shapes := [][5]int{{2, 100, 8, 2, 64}, {1, 300, 4, 4, 128}, {2, 37, 6, 3, 40}}
	if small {
		shapes = [][5]int{{2, 40, 4, 2, 8}, {1, 9, 2, 2, 40}}
	}
	// The model families' variants: a sliding window (shorter than T, so
	// early and late queries differ), a score scale of its own, soft-capped
	// scores, and all three at once.
	variants := []struct {
		W          int
		scale, cap float32
	}{{0, 0, 0}, {5, 0, 0}, {0, 0.3, 0}, {0, 0, 2}, {3, 0.05, 1.5}}
	for vi, sh := range shapes {
		B, T, NH, KVH, HS := sh[0], sh[1], sh[2], sh[3], sh[4]
		for _, va := range variants {
			if !small && vi > 0 && va != variants[0] {
				continue // at full size, the variants on the first shape only
			}
			W, scale, cp := va.W, va.scale, va.cap
			name := fmt.Sprintf("B%d T%d NH%d KVH%d HS%d W%d scale%g cap%g", B, T, NH, KVH, HS, W, scale, cp)
			C, KC := NH*HS, KVH*HS
			q, k, v := random(rng, B*T*C, 1), random(rng, B*T*KC, 1), random(rng, B*T*KC, 1)
			dout := random(rng, B*T*C, 1)
			pq, pk, pv, pd := upload(t, l, q), upload(t, l, k), upload(t, l, v), upload(t, l, dout)
			out := alloc(t, l, B*T*C)
			if err := l.Attention(out, pq, pk, pv, B, T, NH, KVH, HS, W, scale, cp); err != nil {
				t.Fatal(err)
			}
			want := make([]float32, B*T*C)
			kern.AttentionRef(want, q, k, v, B, T, NH, KVH, HS, W, float64(scale), float64(cp))
			near(t, "attention "+name, download[float32](t, l, out, B*T*C), want, 1e-4, 1e-5)

			dq, dk, dv, stats := alloc(t, l, B*T*C), alloc(t, l, B*T*KC), alloc(t, l, B*T*KC), alloc(t, l, AttentionStatsLen(B, T, NH))
			if err := l.AttentionGradStats(dq, dk, dv, pd, pq, pk, pv, stats, B, T, NH, KVH, HS, W, scale, cp); err != nil {
				t.Fatal(err)
			}
			wq, wk, wv := make([]float32, B*T*C), make([]float32, B*T*KC), make([]float32, B*T*KC)
			kern.AttentionGradRef(wq, wk, wv, dout, q, k, v, B, T, NH, KVH, HS, W, float64(scale), float64(cp))
			near(t, "attention dq "+name, download[float32](t, l, dq, B*T*C), wq, 1e-3, 1e-5)
			near(t, "attention dk "+name, download[float32](t, l, dk, B*T*KC), wk, 1e-3, 1e-5)
			near(t, "attention dv "+name, download[float32](t, l, dv, B*T*KC), wv, 1e-3, 1e-5)

			// Decode: caches hold the first positions; each sequence adds one.
			Ctx := T
			kc, vc := random(rng, B*Ctx*KC, 1), random(rng, B*Ctx*KC, 1)
			pos := make([]int32, B)
			for b := range pos {
				pos[b] = int32(rng.IntN(Ctx))
			}
			pos[0] = int32(Ctx - 1) // past any window

			qd, kd, vd := random(rng, B*C, 1), random(rng, B*KC, 1), random(rng, B*KC, 1)
			pkc, pvc := upload(t, l, kc), upload(t, l, vc)
			od := alloc(t, l, B*C)
			if err := l.AttentionDecode(od, upload(t, l, qd), upload(t, l, kd), upload(t, l, vd), pkc, pvc, upload(t, l, pos), B, 1, Ctx, NH, KVH, HS, W, scale, cp); err != nil {
				t.Fatal(err)
			}
			wd := make([]float32, B*C)
			kern.AttentionDecodeRef(wd, qd, kd, vd, kc, vc, pos, B, 1, Ctx, NH, KVH, HS, W, float64(scale), float64(cp))
			near(t, "attention decode "+name, download[float32](t, l, od, B*C), wd, 1e-4, 1e-5)
			near(t, "decode k cache "+name, download[float32](t, l, pkc, B*Ctx*KC), kc, 0, 0)
		}
	}
	if err := l.Attention(0, 0, 0, 0, 1, 4, 6, 4, 8, 0, 0, 0); err == nil {
		t.Error("4 kv heads for 6 heads accepted")
	}
	if err := l.Attention(0, 0, 0, 0, 1, 4, 2, 2, 512, 0, 0, 0); err == nil {
		t.Error("head size 512 accepted")
	}
}

func TestGPUComposites(t *testing.T) { checkComposites(t, gpu(t), false) }

// checkComposites runs every kernel of the lowering table that Lorac
// composes, by kern's names, against kern.
func checkComposites(t *testing.T, l *Lorac, small bool) {
	rng := rand.New(rand.NewPCG(21, 22))
	N, K, M, R := 130, 200, 150, 8
	if small {
		N, K, M, R = 20, 24, 18, 4
	}
	const scale = 1.5
	x, w, bias := random(rng, N*K, 1), random(rng, M*K, 0.2), random(rng, M, 1)
	a, b, dout := random(rng, R*K, 0.2), random(rng, M*R, 0.2), random(rng, N*M, 1)
	mask := make([]float32, N*K)
	for i := range mask {
		if rng.IntN(10) > 0 {
			mask[i] = 1 / 0.9
		}
	}
	px, pw, pbias, pa, pb, pdout, pmask := upload(t, l, x), upload(t, l, w), upload(t, l, bias), upload(t, l, a), upload(t, l, b), upload(t, l, dout), upload(t, l, mask)
	get := func(p Ptr, n int) []float32 { return download[float32](t, l, p, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const rt, at = 1e-4, 1e-5
	for _, conv1d := range []bool{false, true} {
		name := fmt.Sprintf(" conv1d=%v", conv1d)
		y, want := alloc(t, l, N*M), make([]float32, N*M)
		must(l.Linear(y, px, pw, pbias, N, K, M, conv1d))
		kern.LinearRef(want, x, w, bias, N, K, M, conv1d)
		near(t, "Linear"+name, get(y, N*M), want, rt, at)
		// One row: the decode GEMV (nn.Linear layout) or the GEMM.
		must(l.Linear(y, px, pw, pbias, 1, K, M, conv1d))
		kern.LinearRef(want[:M], x[:K], w, bias, 1, K, M, conv1d)
		near(t, "Linear one row"+name, get(y, M), want[:M], rt, at)
		dx, wantX := alloc(t, l, N*K), make([]float32, N*K)
		must(l.LinearGradInput(dx, pdout, pw, N, K, M, conv1d))
		kern.LinearGradInputRef(wantX, dout, w, N, K, M, conv1d)
		near(t, "LinearGradInput"+name, get(dx, N*K), wantX, rt, at)
		dw, wantW := alloc(t, l, M*K), make([]float32, M*K)
		must(l.LinearGradWeight(dw, pdout, px, N, K, M, conv1d))
		kern.LinearGradWeightRef(wantW, dout, x, N, K, M, conv1d)
		near(t, "LinearGradWeight"+name, get(dw, M*K), wantW, rt, at)

		tt, wantT := alloc(t, l, N*R), make([]float32, N*R)
		must(l.LoRALinear(y, tt, px, pw, pbias, pa, pb, pmask, N, K, M, R, scale, conv1d))
		kern.LoRALinear(want, wantT, x, w, bias, a, b, mask, N, K, M, R, scale, conv1d)
		near(t, "LoRALinear"+name, get(y, N*M), want, rt, at)
		near(t, "LoRALinear t"+name, get(tt, N*R), wantT, rt, at)
		for _, withT := range []bool{false, true} {
			pt := Ptr(0)
			var ht []float32
			if withT {
				pt, ht = tt, wantT
			}
			da, db := alloc(t, l, R*K), alloc(t, l, M*R)
			wa, wb, wx := make([]float32, R*K), make([]float32, M*R), make([]float32, N*K)
			must(l.LoRALinearGrad(da, db, dx, pdout, px, pw, pa, pb, pt, pmask, N, K, M, R, scale, conv1d))
			kern.LoRALinearGrad(wa, wb, wx, dout, x, w, a, b, ht, mask, N, K, M, R, scale, conv1d)
			n := fmt.Sprintf("%s t=%v", name, withT)
			near(t, "LoRALinearGrad dA"+n, get(da, R*K), wa, rt, at)
			near(t, "LoRALinearGrad dB"+n, get(db, M*R), wb, rt, at)
			near(t, "LoRALinearGrad dinp"+n, get(dx, N*K), wx, rt, at)
		}
		// Per-row adapters (serving): two adapters, a weighted mix of both
		// and rows on the base alone, among N rows and among one (the GEMV).
		a2, b2 := random(rng, R*K, 0.2), random(rng, M*R, 0.2)
		pa2, pb2 := upload(t, l, a2), upload(t, l, b2)
		for _, rows := range []int{N, 1} {
			var ra, rb [][]float32
			var pra, prb []Ptr
			var brow []int32
			var bw []float32
			add := func(r int, a, b []float32, pa, pb Ptr, w float32) {
				ra, rb, pra, prb = append(ra, a), append(rb, b), append(pra, pa), append(prb, pb)
				brow, bw = append(brow, int32(r)), append(bw, w)
			}
			for r := range rows {
				switch r % 4 {
				case 0:
					add(r, a, b, pa, pb, 1)
				case 1:
					add(r, a2, b2, pa2, pb2, 1)
				case 2:
					add(r, a, b, pa, pb, 0.7)
					add(r, a2, b2, pa2, pb2, -0.4)
				}
			}
			must(l.LoRALinearRows(y, px, pw, pbias, pra, prb, brow, bw, rows, K, M, R, scale, conv1d))
			kern.LoRALinearRowsRef(want[:rows*M], x[:rows*K], w, bias, ra, rb, brow, bw, rows, K, M, R, scale, conv1d)
			near(t, fmt.Sprintf("LoRALinearRows %d rows%s", rows, name), get(y, rows*M), want[:rows*M], rt, at)
		}
		if err := l.LoRALinearRows(y, px, pw, pbias, []Ptr{pa}, []Ptr{0}, []int32{0}, []float32{1}, 1, K, M, R, scale, conv1d); err == nil {
			t.Error("LoRALinearRows accepted a branch with A and no B")
		}
		if err := l.LoRALinearRows(y, px, pw, pbias, []Ptr{pa}, []Ptr{pb}, []int32{1}, []float32{1}, 1, K, M, R, scale, conv1d); err == nil {
			t.Error("LoRALinearRows accepted a branch outside the rows")
		}
		if err := l.LoRALinearRows(y, px, pw, pbias, []Ptr{pa}, []Ptr{pb}, []int32{0, 1}, []float32{1}, 2, K, M, R, scale, conv1d); err == nil {
			t.Error("LoRALinearRows accepted 1 branch with 2 rows")
		}
		// Merge in place into a copy of W.
		wl := w
		if conv1d {
			wl = make([]float32, K*M)
			for m := range M {
				for k := range K {
					wl[k*M+m] = w[m*K+k]
				}
			}
		}
		pm := upload(t, l, wl)
		must(l.LoRAMerge(pm, pa, pb, K, M, R, scale, conv1d))
		wantM := make([]float32, K*M)
		kern.LoRAMergeRef(wantM, wl, a, b, K, M, R, scale, conv1d)
		near(t, "LoRAMerge"+name, get(pm, K*M), wantM, rt, at)
	}
	for _, withMask := range []bool{false, true} {
		pmk, hm := Ptr(0), []float32(nil)
		if withMask {
			pmk, hm = pmask, mask
		}
		name := fmt.Sprintf(" mask=%v", withMask)
		y, want := alloc(t, l, N*M), make([]float32, N*M)
		must(l.LoRA(y, px, pa, pb, pmk, N, K, M, R, scale))
		kern.LoRARef(want, x, a, b, hm, N, K, M, R, scale)
		near(t, "LoRA"+name, get(y, N*M), want, rt, at)
		da, db, dx := alloc(t, l, R*K), alloc(t, l, M*R), alloc(t, l, N*K)
		wa, wb, wx := make([]float32, R*K), make([]float32, M*R), make([]float32, N*K)
		must(l.LoRAGrad(da, db, dx, pdout, px, pa, pb, pmk, N, K, M, R, scale))
		kern.LoRAGradRef(wa, wb, wx, dout, x, a, b, hm, N, K, M, R, scale)
		near(t, "LoRAGrad dA"+name, get(da, R*K), wa, rt, at)
		near(t, "LoRAGrad dB"+name, get(db, M*R), wb, rt, at)
		near(t, "LoRAGrad dinp"+name, get(dx, N*K), wx, rt, at)
	}
	db, wantB := alloc(t, l, M), make([]float32, M)
	must(l.LinearGradBias(db, pdout, N, M))
	kern.LinearGradBiasRef(wantB, dout, N, M)
	near(t, "LinearGradBias", get(db, M), wantB, rt, at)

	// Norm and softmax backward, parameter gradients.
	C := K
	gain, dy := random(rng, C, 1), random(rng, N*C, 1)
	pg, pdy := upload(t, l, gain), upload(t, l, dy)
	dx, wantX := alloc(t, l, N*C), make([]float32, N*C)
	must(l.LayerNormGrad(dx, pdy, px, pg, N, C, 1e-5))
	kern.LayerNormGradRef(wantX, dy, x, gain, N, C, 1e-5)
	near(t, "LayerNormGrad", get(dx, N*C), wantX, rt, at)
	for _, offset := range []float32{0, 1} {
		must(l.RMSNormGrad(dx, pdy, px, pg, N, C, 1e-6, offset))
		kern.RMSNormGradRef(wantX, dy, x, gain, N, C, 1e-6, float64(offset))
		near(t, fmt.Sprintf("RMSNormGrad offset %g", offset), get(dx, N*C), wantX, rt, at)
	}
	dg, dbb := alloc(t, l, C), alloc(t, l, C)
	wg, wb := make([]float32, C), make([]float32, C)
	must(l.LayerNormGradParams(dg, dbb, pdy, px, N, C, 1e-5))
	kern.LayerNormGradParamsRef(wg, wb, dy, x, N, C, 1e-5)
	near(t, "LayerNormGradParams dgain", get(dg, C), wg, rt, at)
	near(t, "LayerNormGradParams dbias", get(dbb, C), wb, rt, at)
	must(l.RMSNormGradGain(dg, pdy, px, N, C, 1e-6))
	kern.RMSNormGradGainRef(wg, dy, x, N, C, 1e-6)
	near(t, "RMSNormGradGain", get(dg, C), wg, rt, at)
	sm := make([]float32, N*C)
	kern.SoftmaxRef(sm, x, N, C)
	must(l.SoftmaxGrad(dx, pdy, upload(t, l, sm), N, C))
	kern.SoftmaxGradRef(wantX, dy, sm, N, C)
	near(t, "SoftmaxGrad", get(dx, N*C), wantX, rt, 1e-7)

	// RoPE, forward and gradient, at positions up to 3000.
	NH, HS := 4, 32
	if small {
		NH, HS = 2, 8
	}
	rx := random(rng, N*NH*HS, 1)
	pos := make([]int32, N)
	for i := range pos {
		pos[i] = int32(rng.IntN(3000))
	}
	prx, ppos, ro := upload(t, l, rx), upload(t, l, pos), alloc(t, l, N*NH*HS)
	wantR := make([]float32, N*NH*HS)
	// Default, linear and llama3 scaling (kern.RoPEDefault, RoPELinear,
	// RoPELlama3), llama3 with an original context that puts the (small
	// shapes') frequencies in all three bands.
	for _, sc := range []struct {
		kind                      int
		factor, lowFreq, highFreq float64
		origCtx                   int
	}{{kern.RoPEDefault, 0, 0, 0, 0}, {kern.RoPELinear, 4, 0, 0, 0}, {kern.RoPELlama3, 8, 1, 4, 128}} {
		name := fmt.Sprintf(" scaling %d", sc.kind)
		must(l.RoPE(ro, prx, ppos, N, NH, HS, 10000, sc.kind, sc.factor, sc.lowFreq, sc.highFreq, sc.origCtx))
		kern.RoPERef(wantR, rx, pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.lowFreq, sc.highFreq, sc.origCtx)
		near(t, "RoPE"+name, get(ro, N*NH*HS), wantR, 1e-5, 2e-6)
		must(l.RoPEGrad(ro, prx, ppos, N, NH, HS, 10000, sc.kind, sc.factor, sc.lowFreq, sc.highFreq, sc.origCtx))
		kern.RoPEGradRef(wantR, rx, pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.lowFreq, sc.highFreq, sc.origCtx)
		near(t, "RoPEGrad"+name, get(ro, N*NH*HS), wantR, 1e-5, 2e-6)
	}
	for _, bad := range [][5]float64{{3, 0, 0, 0, 0}, {kern.RoPELinear, 0, 0, 0, 0}, {kern.RoPELlama3, 8, 4, 1, 256}, {kern.RoPELlama3, 8, 1, 4, 0}} {
		if err := l.RoPE(ro, prx, ppos, N, NH, HS, 10000, int(bad[0]), bad[1], bad[2], bad[3], int(bad[4])); err == nil {
			t.Errorf("RoPE scaling %v accepted", bad)
		}
	}

	// Embedding and its gradient, with repeated ids.
	V := 50
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32(rng.IntN(V / 5))
	}
	table := random(rng, V*C, 1)
	pids, eo := upload(t, l, ids), alloc(t, l, N*C)
	must(l.Embedding(eo, pids, upload(t, l, table), N, C))
	kern.EmbeddingRef(wantX, ids, table, N, C)
	near(t, "Embedding", get(eo, N*C), wantX, 0, 0)
	dt, wantE := upload(t, l, random(rng, V*C, 1)), make([]float32, V*C)
	must(l.EmbeddingGrad(dt, pdy, pids, N, V, C))
	kern.EmbeddingGradRef(wantE, dy, ids, N, V, C)
	near(t, "EmbeddingGrad", get(dt, V*C), wantE, 0, 0)

	// Column copies and fill.
	cc, wantC := alloc(t, l, N*(C+7)), make([]float32, N*(C+7))
	must(l.CopyCols(cc, C+7, 5, px, K, 3, N, C-3))
	kern.CopyCols(wantC, C+7, 5, x, K, 3, N, C-3)
	near(t, "CopyCols", get(cc, N*(C+7)), wantC, 0, 0)
	must(l.Fill(cc, 10, 2.5))
	kern.Fill(wantC[:10], 2.5)
	near(t, "Fill", get(cc, N*(C+7)), wantC, 0, 0)
}

// sim opens the PTX simulator as GPU 0 (sim_test.go).
func sim(t *testing.T) *Lorac {
	t.Helper()
	d, err := open(simAPI(&simDevice{}), 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSimKernels runs every GPU check on the PTX simulator at small
// shapes: the emitted kernels' semantics, checked on any machine.
func TestSimKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	for name, check := range map[string]func(*testing.T, *Lorac, bool){
		"Elementwise": checkElementwise, "RowKernels": checkRowKernels, "CrossEntropy": checkCrossEntropy,
		"AdamW": checkAdamW, "GemmF32": checkGemmF32, "LoRALinear": checkLoRALinear, "GEMV": checkGEMV,
		"Attention": checkAttention, "Composites": checkComposites, "DropoutMask": checkDropoutMask,
	} {
		t.Run(name, func(t *testing.T) {
			simLastError = nil
			t.Cleanup(func() {
				if simLastError != nil {
					t.Errorf("simulator: %v", simLastError)
				}
			})
			check(t, sim(t), true)
		})
	}
}

// timingShapes are docs/perf.md's kernel shapes (tokens, in, out, r) and
// the bf16 GEMM's target, 4096³ with r16; bench/gpu_torch.py times
// torch.matmul at the same ones.
var timingShapes = [][4]int{{2048, 768, 768, 8}, {2048, 768, 768, 64}, {2048, 768, 3072, 16}, {2048, 3072, 768, 16}, {1024, 4096, 4096, 16}, {4096, 4096, 4096, 16}}

// TestGPUTiming times, per shape: the fused LoRA linear as the device runs
// it (fp32 and bf16: t = s·x·Aᵀ, then one two-segment GEMM), the base
// product alone, the bf16 fused GEMM alone (the one launch) and the 64×64
// bf16 kernel on the base product.
func TestGPUTiming(t *testing.T) {
	if os.Getenv("LORAC_GPU_TIMING") != "1" {
		t.Skip("set LORAC_GPU_TIMING=1 to time the GEMMs (bench/gpu_check.sh does)")
	}
	l := gpu(t)
	var report io.Writer
	if p := os.Getenv("LORAC_GPU_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		report = f
	}
	timeGemms(t, l, timingShapes, report)
}

// timeGemms writes one JSON line per shape to report (if not nil) and the
// test log.
func timeGemms(t *testing.T, l *Lorac, shapes [][4]int, report io.Writer) {
	rng := rand.New(rand.NewPCG(17, 18))
	start, err := l.D.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	end, err := l.D.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	timeIt := func(run func() error) float64 {
		for range 3 {
			if err := run(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.D.Record(start, l.Stream); err != nil {
			t.Fatal(err)
		}
		const reps = 20
		for range reps {
			if err := run(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.D.Record(end, l.Stream); err != nil {
			t.Fatal(err)
		}
		ms, err := l.D.Elapsed(start, end)
		if err != nil {
			t.Fatal(err)
		}
		return float64(ms) / reps
	}
	for _, sh := range shapes {
		T, K, M, R := sh[0], sh[1], sh[2], sh[3]
		x, w, a, b := upload(t, l, random(rng, T*K, 1)), upload(t, l, random(rng, M*K, 0.05)), upload(t, l, random(rng, R*K, 0.05)), upload(t, l, random(rng, M*R, 0.05))
		tt, y := alloc(t, l, T*R), alloc(t, l, T*M)
		f32 := timeIt(func() error {
			if err := l.GemmF32("nt", tt, x, a, 0, 0, 0, 0, T, R, K, 0, 2, 0); err != nil {
				return err
			}
			return l.GemmF32("nt", y, x, w, 0, 0, tt, b, T, M, K, R, 1, 1)
		})
		bf := func(p Ptr, n int) Ptr {
			o := alloc(t, l, (n+1)/2)
			if err := l.ToBF16(o, p, n); err != nil {
				t.Fatal(err)
			}
			return o
		}
		xh, wh, ah, bh, th := bf(x, T*K), bf(w, M*K), bf(a, R*K), bf(b, M*R), alloc(t, l, (T*R+1)/2)
		bf16 := timeIt(func() error {
			if err := l.GemmBF16(tt, xh, ah, 0, 0, 0, T, R, K, 0, 2, 0); err != nil {
				return err
			}
			if err := l.ToBF16(th, tt, T*R); err != nil {
				return err
			}
			return l.GemmBF16(y, xh, wh, 0, th, bh, T, M, K, R, 1, 1)
		})
		// The base product alone, for the fused branch's overhead.
		f32Base := timeIt(func() error { return l.GemmF32("nt", y, x, w, 0, 0, 0, 0, T, M, K, 0, 1, 0) })
		bf16Base := timeIt(func() error { return l.GemmBF16(y, xh, wh, 0, 0, 0, T, M, K, 0, 1, 0) })
		// The fused GEMM alone (one launch: x·Wᵀ + t·Bᵀ, t given), the
		// figure to hold against cuBLAS; and the 64×64 kernel the pipelined
		// one replaces, on the base product.
		bf16Fused := timeIt(func() error { return l.GemmBF16(y, xh, wh, 0, th, bh, T, M, K, R, 1, 1) })
		simple, err := gemmShape(true, T, M, K, 0)
		if err != nil {
			t.Fatal(err)
		}
		bf16Simple := timeIt(func() error {
			return l.launch("lorac_gemm_bf16_nt", simple, nil, y, xh, wh, Ptr(0), Ptr(0), Ptr(0), T, M, K, 0, float32(1), float32(0))
		})
		flops := 2 * float64(T) * (float64(K)*float64(M) + float64(K)*float64(R) + float64(R)*float64(M))
		fusedFlops := 2 * float64(T) * float64(M) * float64(K+R)
		rec := map[string]any{"tokens": T, "in": K, "out": M, "r": R, "lorac_f32_ms": f32, "lorac_bf16_ms": bf16,
			"lorac_f32_tflops": flops / f32 / 1e9, "lorac_bf16_tflops": flops / bf16 / 1e9,
			"lorac_f32_base_ms": f32Base, "lorac_bf16_base_ms": bf16Base,
			"lorac_bf16_fused_ms": bf16Fused, "lorac_bf16_fused_tflops": fusedFlops / bf16Fused / 1e9,
			"lorac_bf16_simple_base_ms": bf16Simple, "bf16_kernel": map[bool]string{true: "lorac_gemm_bf16_nt_async", false: "lorac_gemm_bf16_nt"}[gemmBF16Async(xh, wh, th, bh, K, R)],
			"flop_ratio": flops / (2 * float64(T) * float64(K) * float64(M))}
		line, _ := json.Marshal(rec)
		t.Logf("%s", line)
		if report != nil {
			fmt.Fprintf(report, "%s\n", line)
		}
	}
}
