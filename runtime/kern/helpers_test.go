package kern

import (
	"math"
	"math/rand/v2"
	"testing"
)

// newRand returns a generator with a fixed seed, so failures reproduce.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(0x10a4c, 0x5eed)) }

// randn returns n standard normal values.
func randn(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// randIDs returns n ids in [0, v).
func randIDs(rng *rand.Rand, n, v int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(v))
	}
	return ids
}

// nans returns n NaNs: outputs start poisoned, so a kernel that reads or
// accumulates into its output instead of overwriting it fails.
func nans[F Float](n int) []F {
	x := make([]F, n)
	for i := range x {
		x[i] = F(math.NaN())
	}
	return x
}

// to32 rounds x to float32.
func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// to64 widens x to float64.
func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// proj returns Σ r⊙y, the scalar loss whose gradient with respect to y is r.
func proj(r, y []float64) float64 {
	var s float64
	for i := range y {
		s += r[i] * y[i]
	}
	return s
}

// checkGrad compares grad, the analytic gradient of loss with respect to x,
// with central differences, element by element. loss must read x.
func checkGrad(t *testing.T, name string, x, grad []float64, loss func() float64) {
	t.Helper()
	const h = 1e-6
	if len(grad) != len(x) {
		t.Fatalf("%s: %d gradient elements for %d inputs", name, len(grad), len(x))
	}
	bad := 0
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		plus := loss()
		x[i] = orig - h
		minus := loss()
		x[i] = orig
		num := (plus - minus) / (2 * h)
		if !closeRel(grad[i], num, 1e-5, 1e-8) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d]: analytic %.12g, numerical %.12g", name, i, grad[i], num)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d elements differ", name, bad, len(x))
	}
}

// closeRel reports whether a and b agree within rel relative or abs absolute
// difference; NaNs never agree.
func closeRel(a, b, rel, abs float64) bool {
	d := math.Abs(a - b)
	return d <= abs || d <= rel*max(math.Abs(a), math.Abs(b))
}

// checkClose fails when got and want differ anywhere by more than rel relative
// to the largest |want| (or when got has a NaN).
func checkClose(t *testing.T, name string, got, want []float64, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, len(got), len(want))
	}
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	tol := rel * max(scale, 1e-300)
	for i := range got {
		if !(math.Abs(got[i]-want[i]) <= tol) {
			t.Errorf("%s[%d] = %.12g, want %.12g (tolerance %.3g)", name, i, got[i], want[i], tol)
			return
		}
	}
}
