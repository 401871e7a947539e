package kern

import (
	"math"
	"testing"
)

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// TestLoRALinearRows: each row gets the base product plus its own
// adapter's branch, as LoRALinear gives that row with that adapter alone
// (and the plain linear for a row without one), for both weight layouts;
// the reference agrees.
func TestLoRALinearRows(t *testing.T) {
	rng := newRand()
	const N, K, M, R = 5, 37, 29, 3
	const scale = float32(1.7)
	for _, conv1d := range []bool{false, true} {
		inp, w, bias := f32(randn(rng, N*K)), f32(randn(rng, K*M)), f32(randn(rng, M))
		a, b := make([][]float32, N), make([][]float32, N)
		for r := range N {
			if r%3 == 1 {
				continue // row on the base alone
			}
			a[r], b[r] = f32(randn(rng, R*K)), f32(randn(rng, M*R))
		}
		out := make([]float32, N*M)
		for i := range out {
			out[i] = float32(math.NaN())
		}
		LoRALinearRows(out, inp, w, bias, a, b, N, K, M, R, scale, conv1d)
		ref := make([]float32, N*M)
		LoRALinearRowsRef(ref, inp, w, bias, a, b, N, K, M, R, scale, conv1d)
		for r := range N {
			want := make([]float32, M)
			x := inp[r*K : (r+1)*K]
			if a[r] == nil {
				Linear(want, x, w, bias, 1, K, M, conv1d)
			} else {
				LoRALinear(want, nil, x, w, bias, a[r], b[r], nil, 1, K, M, R, scale, conv1d)
			}
			for m := range M {
				got := out[r*M+m]
				if d := math.Abs(float64(got - want[m])); !(d <= 1e-4*(1+math.Abs(float64(want[m])))) {
					t.Fatalf("conv1d %v row %d col %d: %g, LoRALinear alone %g", conv1d, r, m, got, want[m])
				}
				if d := math.Abs(float64(got - ref[r*M+m])); !(d <= 1e-4*(1+math.Abs(float64(ref[r*M+m])))) {
					t.Fatalf("conv1d %v row %d col %d: %g, reference %g", conv1d, r, m, got, ref[r*M+m])
				}
			}
		}
	}
}
