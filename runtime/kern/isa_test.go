package kern

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// forEachISA runs test once per kernel variant — avx512, avx2 and go — with
// that variant forced. A variant this CPU cannot run is skipped, saying so:
// AVX-512 tests run only where the CPU has AVX-512.
func forEachISA(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	have := ISAVariants()
	defer SetISA("")
	for _, name := range []string{"avx512", "avx2", "go"} {
		t.Run(name, func(t *testing.T) {
			if !slices.Contains(have, name) {
				t.Skipf("this CPU cannot run the %s kernels (it has %s)", name, strings.Join(have, ", "))
			}
			if err := SetISA(name); err != nil {
				t.Fatal(err)
			}
			if got := ISA(); got != name {
				t.Fatalf("SetISA(%q) selected %q", name, got)
			}
			test(t)
		})
	}
}

func TestSetISA(t *testing.T) {
	defer SetISA("")
	if err := SetISA("sse9"); err == nil || !strings.Contains(err.Error(), "avx512, avx2 or go") {
		t.Fatalf("SetISA(sse9) = %v, want an error naming the variants", err)
	}
	if err := SetISA("go"); err != nil || ISA() != "go" {
		t.Fatalf("SetISA(go): %v, ISA %s", err, ISA())
	}
	if err := SetISA(""); err != nil || ISA() != ISAVariants()[0] {
		t.Fatalf("SetISA(\"\") picked %s, want the widest of %v", ISA(), ISAVariants())
	}
	// Asking for a wider variant than the CPU has falls back to one it has.
	if err := SetISA("avx512"); err != nil || !slices.Contains(ISAVariants(), ISA()) {
		t.Fatalf("SetISA(avx512): %v, ISA %s not among %v", err, ISA(), ISAVariants())
	}
}

func TestTileFor(t *testing.T) {
	l := isaLevel{tiles: []gemmTile{{mr: 12, nr: 32}, {mr: 12, nr: 16}}}
	for _, c := range []struct{ m, nr int }{{768, 32}, {8, 16}, {16, 16}, {48, 16}, {64, 32}, {33, 16}, {3072, 32}} {
		if got := l.tileFor(c.m).nr; got != c.nr {
			t.Errorf("tileFor(%d).nr = %d, want %d", c.m, got, c.nr)
		}
	}
}

// TestExpInPlace checks the vector exponential of every variant against
// math.Exp on random inputs across the clamp range, at lengths that leave
// every tail, and the edge cases: NaN stays NaN, out-of-range inputs clamp.
func TestExpInPlace(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := newRand()
		for _, n := range []int{1, 7, 8, 15, 16, 17, 33, 100} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.Float64()*170 - 85)
			}
			got := slices.Clone(x)
			expInPlace(got)
			for i, v := range x {
				want := math.Exp(float64(v))
				if d := math.Abs(float64(got[i])-want) / want; !(d <= 3e-7) {
					t.Fatalf("n=%d: exp(%g) = %g, want %g (relative error %.2g)", n, v, got[i], want, d)
				}
			}
		}
		if l := activeLevel.Load(); l != nil {
			x := make([]float32, l.lanes)
			x[0], x[1], x[2], x[3] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1000
			l.exp(&x[0], &x[0], len(x))
			if !math.IsNaN(float64(x[0])) {
				t.Errorf("exp(NaN) = %g, want NaN", x[0])
			}
			if hi := float32(math.Exp(88)); math.Abs(float64(x[1]-hi)/float64(hi)) > 3e-7 || x[3] != x[1] {
				t.Errorf("exp(+Inf), exp(1000) = %g, %g, want the clamp exp(88) = %g", x[1], x[3], hi)
			}
			if lo := math.Exp(-87); math.Abs(float64(x[2])-lo)/lo > 3e-7 {
				t.Errorf("exp(-Inf) = %g, want the clamp exp(-87) = %g", x[2], lo)
			}
		}
	})
}

// TestGemmStretches runs products wide enough that B is packed in several
// stretches of columns (fastPackFloats), with a bias accumulated in C itself
// and with a scaled output through scratch tiles, against a float64 loop.
func TestGemmStretches(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := newRand()
		const n, k = 13, 300
		m := fastPackFloats/k + 300 // past the first stretch on every tile width
		a, b, bias := cpuRandn(rng, n*k), cpuScaled(rng, k*m, k), cpuRandn(rng, m)
		want := make([]float64, n*m)
		for i := range n {
			for j := range m {
				var s float64
				for p := range k {
					s += float64(a[i*k+p]) * float64(b[p*m+j])
				}
				want[i*m+j] = s
			}
		}
		for _, alpha := range []float32{1, 0.5} {
			c := nans[float32](n * m)
			gemm(n, m, []gemmSeg{{a: gemmMat{data: a, ld: k}, b: gemmMat{data: b, ld: m}, k: k}},
				gemmOut{c: c, ld: m, alpha: alpha, bias: bias})
			w := make([]float64, len(want))
			for i, v := range want {
				w[i] = float64(alpha)*v + float64(bias[i%m])
			}
			cpuCheck(t, "c", c, w, cpuMatmulTol)
		}
	})
}

func TestScratchBytes(t *testing.T) {
	dims := func(d map[string]int) func(string) int { return func(s string) int { return d[s] } }
	small := ScratchBytes("Linear", dims(map[string]int{"N": 64, "K": 256, "M": 256}), 2)
	large := ScratchBytes("Linear", dims(map[string]int{"N": 2048, "K": 256, "M": 768}), 2)
	if small <= 0 || large < small {
		t.Errorf("Linear scratch: %d for 64 rows, %d for 2048; want positive and growing", small, large)
	}
	// A whole packed B of 768×256 floats at least, for the wide product.
	if large < 4*256*768 {
		t.Errorf("Linear 2048×256×768 scratch %d is below its packed weight (%d)", large, 4*256*768)
	}
	if got := ScratchBytes("GELU", dims(map[string]int{"N": 1 << 20}), 2); got != 0 {
		t.Errorf("GELU scratch = %d, want 0", got)
	}
	one := ScratchBytes("AttentionGrad", dims(map[string]int{"B": 4, "T": 256, "NH": 8, "KVH": 8, "HS": 64}), 1)
	two := ScratchBytes("AttentionGrad", dims(map[string]int{"B": 4, "T": 256, "NH": 8, "KVH": 8, "HS": 64}), 2)
	if one <= 0 || two != 2*one {
		t.Errorf("attention backward scratch: %d on one worker, %d on two; want twice", one, two)
	}
}
