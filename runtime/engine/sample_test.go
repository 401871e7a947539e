package engine

import (
	"math"
	"slices"
	"testing"
)

func TestSamplerGreedy(t *testing.T) {
	logits := []float32{0.5, 3, -1, 3, 2}
	r := NewRNG(1)
	before := r.State()
	for _, s := range []Sampler{{}, {Temperature: 0, TopK: 3, TopP: 0.5}, {Temperature: -1}, {Temperature: math.NaN()}} {
		if got := s.Sample(logits, r); got != 1 {
			t.Errorf("%+v: Sample = %d, want 1 (argmax, lowest index on ties)", s, got)
		}
	}
	if string(r.State()) != string(before) {
		t.Error("greedy sampling consumed random numbers")
	}
}

func TestSamplerForcedArgmax(t *testing.T) {
	logits := []float32{0.1, 0.2, 1.5, 0.3, 1.4}
	r := NewRNG(2)
	for _, s := range []Sampler{
		{Temperature: 1, TopK: 1},
		{Temperature: 100, TopK: 1},
		{Temperature: 1, TopP: 1e-9},
		{Temperature: 100, TopP: 1e-9},
		{Temperature: 1e-320}, // 1/T overflows
	} {
		for range 200 {
			if got := s.Sample(logits, r); got != 2 {
				t.Fatalf("%+v: Sample = %d, want the argmax 2", s, got)
			}
		}
	}
}

// sampleFreqs draws n samples and returns the frequency of each id.
func sampleFreqs(s Sampler, logits []float32, n int, seed uint64) []float64 {
	r := NewRNG(seed)
	f := make([]float64, len(logits))
	for range n {
		f[s.Sample(logits, r)]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

// softmaxRef returns softmax(logits/T) in float64.
func softmaxRef(logits []float32, T float64) []float64 {
	p := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp(float64(l) / T)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// checkFreqs compares empirical frequencies to probabilities. With 20000
// draws the standard error is at most 0.0035, so 0.015 is over 4σ.
func checkFreqs(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.015 {
			t.Errorf("%s: id %d frequency %.4f, want %.4f", name, i, got[i], want[i])
		}
	}
}

func TestSamplerSoftmaxFrequencies(t *testing.T) {
	logits := []float32{1, 2, 0.5, -1, 3}
	const n = 20000
	checkFreqs(t, "T=1", sampleFreqs(Sampler{Temperature: 1}, logits, n, 3), softmaxRef(logits, 1))
	checkFreqs(t, "T=0.5", sampleFreqs(Sampler{Temperature: 0.5}, logits, n, 4), softmaxRef(logits, 0.5))
	checkFreqs(t, "T=2, TopP=1", sampleFreqs(Sampler{Temperature: 2, TopP: 1}, logits, n, 5), softmaxRef(logits, 2))
}

func TestSamplerTopK(t *testing.T) {
	logits := []float32{1, 2, 0.5, -1, 3}
	got := sampleFreqs(Sampler{Temperature: 1, TopK: 2}, logits, 20000, 6)
	e := math.Exp(-1.0) // weight of logit 2 relative to logit 3
	checkFreqs(t, "TopK=2", got, []float64{0, e / (1 + e), 0, 0, 1 / (1 + e)})
}

func TestSamplerTopP(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.2: TopP 0.7 keeps the first two (0.8).
	logits := []float32{float32(math.Log(0.2)), float32(math.Log(0.5)), float32(math.Log(0.3))}
	got := sampleFreqs(Sampler{Temperature: 1, TopP: 0.7}, logits, 20000, 7)
	checkFreqs(t, "TopP=0.7", got, []float64{0, 0.625, 0.375})
	got = sampleFreqs(Sampler{Temperature: 1, TopK: 2, TopP: 0.5}, logits, 2000, 8)
	if got[1] != 1 {
		t.Errorf("TopK=2 TopP=0.5 frequencies %v, want only id 1", got)
	}
}

func TestSamplerDeterministic(t *testing.T) {
	logits := []float32{0.3, 0.1, 0.9, 0.4, 0.2, 0.8}
	s := Sampler{Temperature: 0.8, TopK: 4, TopP: 0.9}
	a, b := NewRNG(9), NewRNG(9)
	for i := range 1000 {
		if x, y := s.Sample(logits, a), s.Sample(logits, b); x != y {
			t.Fatalf("draw %d: %d != %d from the same state", i, x, y)
		}
	}
}

func TestSamplerNonFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name   string
		logits []float32
		want   int32
	}{
		{"NaN around one finite", []float32{nan, 1, nan}, 1},
		{"NaN and -inf around one finite", []float32{-inf, nan, 2, -inf}, 2},
		{"all NaN", []float32{nan, nan, nan}, 0},
		{"all -inf", []float32{-inf, -inf}, 0},
		{"+inf wins", []float32{1, inf, 2, inf}, 1},
		{"empty", nil, 0},
	} {
		for _, s := range []Sampler{{}, {Temperature: 1}, {Temperature: 1, TopK: 2}, {Temperature: 0.7, TopP: 0.9}} {
			r := NewRNG(10)
			for range 50 {
				if got := s.Sample(c.logits, r); got != c.want {
					t.Fatalf("%s, %+v: Sample = %d, want %d", c.name, s, got, c.want)
				}
			}
		}
	}
	// NaN must count as −∞, never as a candidate, while sampling.
	got := sampleFreqs(Sampler{Temperature: 1}, []float32{nan, 0, nan, 0}, 4000, 11)
	if got[0] != 0 || got[2] != 0 || math.Abs(got[1]-0.5) > 0.05 {
		t.Errorf("frequencies with NaN logits %v, want half on ids 1 and 3", got)
	}
}

// TestGenerateStops: generation ends right after a Stop token, which is
// kept, and runs its full length without one.
func TestGenerateStops(t *testing.T) {
	// A model that always predicts the token after the last one (mod 8).
	decode := func(token int32, pos int) ([]float32, error) {
		l := make([]float32, 8)
		l[(token+1)%8] = 1
		return l, nil
	}
	out, err := Generate(decode, []int32{1}, 10, 64, Sampler{Stop: []int32{4}}, NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 2, 3, 4}; !slices.Equal(out, want) {
		t.Errorf("with stop 4: %v, want %v", out, want)
	}
	out, err = Generate(decode, []int32{1}, 10, 64, Sampler{}, NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 11 {
		t.Errorf("without a stop token: %d tokens, want 11", len(out))
	}
}
