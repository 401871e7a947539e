package format

import (
	"math"
	"math/rand/v2"
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

// nans returns n NaNs: outputs start poisoned, so code that reads its
// output instead of overwriting it fails.
func nans[F ~float32 | ~float64](n int) []F {
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
