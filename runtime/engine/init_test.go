package engine

import (
	"math"
	"testing"
)

func TestInitKaimingUniform(t *testing.T) {
	const fanIn = 64
	bound := 1 / math.Sqrt(fanIn)
	dst := make([]float32, 20000)
	InitKaimingUniform(dst, fanIn, NewRNG(1))
	lo, hi := math.Inf(1), math.Inf(-1)
	var sum float64
	for _, x := range dst {
		v := float64(x)
		if math.Abs(v) > bound*(1+1e-6) {
			t.Fatalf("value %v outside ±%v", v, bound)
		}
		lo, hi = min(lo, v), max(hi, v)
		sum += v
	}
	// With 20000 draws the extremes fall within bound/1000 of the ends.
	if lo > -0.995*bound || hi < 0.995*bound {
		t.Errorf("range [%v, %v] does not reach ±%v", lo, hi, bound)
	}
	if mean := sum / float64(len(dst)); math.Abs(mean) > 0.02*bound {
		t.Errorf("mean %v, want ≈0", mean)
	}
}

func TestInitNormal(t *testing.T) {
	const std = 0.02
	dst := make([]float32, 100000)
	InitNormal(dst, std, NewRNG(2))
	var sum, sq float64
	for _, x := range dst {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	n := float64(len(dst))
	mean := sum / n
	got := math.Sqrt(sq/n - mean*mean)
	if math.Abs(got-std) > 0.02*std {
		t.Errorf("std = %v, want %v within 2%%", got, std)
	}
	if math.Abs(mean) > 0.02*std {
		t.Errorf("mean = %v, want ≈0", mean)
	}
}

func TestInitDeterministic(t *testing.T) {
	a, b := make([]float32, 33), make([]float32, 33)
	InitNormal(a, 1, NewRNG(9))
	InitNormal(b, 1, NewRNG(9))
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("element %d: %v != %v for the same seed", i, a[i], b[i])
		}
	}
}
