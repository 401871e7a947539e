package gguf

import "math/rand/v2"

// newRand returns a generator with a fixed seed, so failures reproduce.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(0x10a4c, 0x5eed)) }

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
