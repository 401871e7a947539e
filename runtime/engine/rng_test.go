package engine

import (
	"bytes"
	"math"
	"testing"
)

func TestRNGDeterministic(t *testing.T) {
	a, b := NewRNG(42), NewRNG(42)
	for i := range 1000 {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("draw %d: %#x != %#x for the same seed", i, x, y)
		}
	}
}

// TestRNGGolden pins the stream: a change to the generator would silently
// change every seeded run and break resumption of old checkpoints.
func TestRNGGolden(t *testing.T) {
	// xoshiro256** reference outputs for the state {1, 2, 3, 4}, from the
	// authors' C code.
	r := &RNG{s: [4]uint64{1, 2, 3, 4}}
	want := []uint64{11520, 0, 1509978240, 1215971899390074240}
	for i, w := range want {
		if got := r.Uint64(); got != w {
			t.Fatalf("draw %d = %d, want %d", i, got, w)
		}
	}
}

func TestRNGSeedsDiffer(t *testing.T) {
	seen := map[uint64]uint64{}
	for seed := range uint64(100) {
		x := NewRNG(seed).Uint64()
		if s, dup := seen[x]; dup {
			t.Fatalf("seeds %d and %d start with the same draw %#x", s, seed, x)
		}
		seen[x] = seed
	}
}

func TestRNGStateRoundTrip(t *testing.T) {
	r := NewRNG(7)
	for range 123 {
		r.NormFloat64()
		r.IntN(17)
	}
	st := r.State()
	if len(st) != rngStateSize {
		t.Fatalf("State is %d bytes, want %d", len(st), rngStateSize)
	}
	var want []uint64
	for range 100 {
		want = append(want, r.Uint64())
	}
	fresh := NewRNG(999)
	if err := fresh.SetState(st); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh.State(), st) {
		t.Fatal("State after SetState differs from the saved state")
	}
	for i, w := range want {
		if got := fresh.Uint64(); got != w {
			t.Fatalf("draw %d after restore = %#x, want %#x", i, got, w)
		}
	}
}

func TestRNGSetStateErrors(t *testing.T) {
	r := NewRNG(1)
	before := r.State()
	for _, b := range [][]byte{nil, make([]byte, 31), make([]byte, 33), make([]byte, 32)} {
		if err := r.SetState(b); err == nil {
			t.Errorf("SetState(%d bytes, all zero) = nil, want an error", len(b))
		}
	}
	if !bytes.Equal(r.State(), before) {
		t.Error("a failed SetState changed the generator")
	}
}

func TestRNGFloat64Range(t *testing.T) {
	r := NewRNG(3)
	var sum float64
	const n = 100000
	for range n {
		x := r.Float64()
		if x < 0 || x >= 1 {
			t.Fatalf("Float64() = %v outside [0, 1)", x)
		}
		sum += x
	}
	if mean := sum / n; math.Abs(mean-0.5) > 0.005 {
		t.Errorf("mean of %d uniforms = %v, want 0.5±0.005", n, mean)
	}
}

func TestRNGIntN(t *testing.T) {
	r := NewRNG(5)
	for _, n := range []int{1, 2, 3, 7, 10, 1000, 1 << 40} {
		for range 1000 {
			if x := r.IntN(n); x < 0 || x >= n {
				t.Fatalf("IntN(%d) = %d out of range", n, x)
			}
		}
	}
	// Chi-square over 10 buckets, 9 degrees of freedom: 27.9 is the 0.1%
	// critical value, so a fair generator fails about once in a thousand
	// seeds, and this seed is fixed.
	const k, draws = 10, 100000
	var counts [k]int
	for range draws {
		counts[r.IntN(k)]++
	}
	var chi2 float64
	for _, c := range counts {
		d := float64(c) - draws/k
		chi2 += d * d / (draws / k)
	}
	if chi2 > 27.9 {
		t.Errorf("IntN(%d) counts %v: chi² = %.1f > 27.9", k, counts, chi2)
	}
}

func TestRNGIntNPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("IntN(0) did not panic")
		}
	}()
	NewRNG(1).IntN(0)
}

func TestRNGNormFloat64(t *testing.T) {
	r := NewRNG(11)
	const n = 100000
	var sum, sq float64
	for range n {
		x := r.NormFloat64()
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("NormFloat64() = %v", x)
		}
		sum += x
		sq += x * x
	}
	mean := sum / n
	variance := sq/n - mean*mean
	// Standard errors are 0.003 for the mean and 0.0045 for the variance.
	if math.Abs(mean) > 0.015 {
		t.Errorf("mean = %v, want 0±0.015", mean)
	}
	if math.Abs(variance-1) > 0.02 {
		t.Errorf("variance = %v, want 1±0.02", variance)
	}
}
