package engine

import (
	"math"
	"testing"
)

// TestAdamWFirstStep checks constants worked out by hand: on step 1 the
// bias-corrected moments are g and g², so Adam moves each weight by lr
// against the sign of its gradient (less eps), after decay shrinks it by
// lr·wd.
func TestAdamWFirstStep(t *testing.T) {
	o := AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	p := []float32{1, -2, 0.5}
	g := []float32{0.5, -4, 0}
	m, v := make([]float32, 3), make([]float32, 3)
	o.Step(p, g, m, v, 1, 0.1)
	// p·(1 − 0.1·0.1) − 0.1·g/(|g| + 1e-8)
	want := []float64{1*0.99 - 0.1*0.5/(0.5+1e-8), -2*0.99 + 0.1*4/(4+1e-8), 0.5 * 0.99}
	wantM := []float64{0.05, -0.4, 0}
	wantV := []float64{0.00025, 0.016, 0}
	for i := range p {
		if math.Abs(float64(p[i])-want[i]) > 1e-6 {
			t.Errorf("p[%d] = %v, want %v", i, p[i], want[i])
		}
		if math.Abs(float64(m[i])-wantM[i]) > 1e-7 || math.Abs(float64(v[i])-wantV[i]) > 1e-9 {
			t.Errorf("m[%d], v[%d] = %v, %v; want %v, %v", i, i, m[i], v[i], wantM[i], wantV[i])
		}
	}
}

// adamRef is the textbook form of AdamW (explicit m̂ and v̂), in float64,
// deliberately written differently from Step's folded constants.
func adamRef(p, g []float64, steps int, lr, b1, b2, eps, wd float64) []float64 {
	p = append([]float64(nil), p...)
	m, v := make([]float64, len(p)), make([]float64, len(p))
	for t := 1; t <= steps; t++ {
		for i := range p {
			gi := g[i] * float64(t) // a gradient that changes each step
			p[i] -= lr * wd * p[i]
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			mHat := m[i] / (1 - math.Pow(b1, float64(t)))
			vHat := v[i] / (1 - math.Pow(b2, float64(t)))
			p[i] -= lr * mHat / (math.Sqrt(vHat) + eps)
		}
	}
	return p
}

func TestAdamWThreeSteps(t *testing.T) {
	o := AdamW{Beta1: 0.8, Beta2: 0.95, Eps: 1e-6, WeightDecay: 0.05}
	p0 := []float64{0.3, -1.2, 2.5, 0, 1e-3}
	g := []float64{0.1, 2, -0.7, 0.05, -3}
	p := to32(p0)
	m, v := make([]float32, len(p)), make([]float32, len(p))
	for step := 1; step <= 3; step++ {
		gs := make([]float32, len(g))
		for i := range g {
			gs[i] = float32(g[i] * float64(step))
		}
		o.Step(p, gs, m, v, step, 0.01)
	}
	want := adamRef(p0, g, 3, 0.01, 0.8, 0.95, 1e-6, 0.05)
	for i := range p {
		if math.Abs(float64(p[i])-want[i]) > 2e-6 {
			t.Errorf("after 3 steps p[%d] = %v, want %v", i, p[i], want[i])
		}
	}
}

func TestAdamWParallelMatchesSerial(t *testing.T) {
	n := adamParallelMin + 17
	r := NewRNG(3)
	p1, g := make([]float32, n), make([]float32, n)
	InitNormal(p1, 1, r)
	InitNormal(g, 1, r)
	p2 := append([]float32(nil), p1...)
	m1, v1 := make([]float32, n), make([]float32, n)
	m2, v2 := make([]float32, n), make([]float32, n)
	o := DefaultAdamW()
	o.WeightDecay = 0.01
	o.Step(p1, g, m1, v1, 1, 1e-3)
	for lo := 0; lo < n; lo += 1000 {
		hi := min(lo+1000, n)
		o.Step(p2[lo:hi], g[lo:hi], m2[lo:hi], v2[lo:hi], 1, 1e-3)
	}
	for i := range p1 {
		if p1[i] != p2[i] || m1[i] != m2[i] || v1[i] != v2[i] {
			t.Fatalf("element %d differs between the parallel and chunked updates", i)
		}
	}
}

func TestDefaultAdamW(t *testing.T) {
	if got := DefaultAdamW(); got != (AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}) {
		t.Errorf("DefaultAdamW() = %+v", got)
	}
}

func TestLearningRate(t *testing.T) {
	const warmup, total, peak = 10, 110, 2.0
	for _, c := range []struct {
		step     int
		schedule string
		want     float64
	}{
		{0, "cosine", 0.2},
		{4, "cosine", 1.0},
		{9, "cosine", 2.0},
		{10, "cosine", 2.0},
		{60, "cosine", 0.2 + 1.8*0.5},
		{35, "cosine", 0.2 + 1.8*0.5*(1+math.Cos(math.Pi/4))},
		{110, "cosine", 0.2},
		{500, "cosine", 0.2},
		{0, "linear", 0.2},
		{10, "linear", 2.0},
		{60, "linear", 1.0},
		{110, "linear", 0},
		{200, "linear", 0},
		{60, "constant", 2.0},
		{110, "constant", 2.0},
		{5, "constant", 1.2},
		{60, "warmup-stable-decay", 2.0},
		{60, "", 2.0},
	} {
		if got := LearningRate(c.step, warmup, total, peak, c.schedule); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("LearningRate(%d, %q) = %v, want %v", c.step, c.schedule, got, c.want)
		}
	}
	if got := LearningRate(0, 0, 100, 1, "cosine"); got != 1 {
		t.Errorf("no warmup: step 0 = %v, want the peak", got)
	}
	if got := LearningRate(7, 5, 5, 1, "linear"); got != 0 {
		t.Errorf("total = warmup: step 7 = %v, want the end value 0", got)
	}
}

// TestScheduleForRun: --steps 10 on a train block of 200 steps with warmup
// 20 leaves warmup (reaching the peak at the last step) instead of ending at
// half the peak; a longer run decays over its own length.
func TestScheduleForRun(t *testing.T) {
	spec := TrainSpec{Steps: 200, Warmup: 20, LR: 1, Schedule: "linear"}
	short := spec.ForRun(10)
	if short.Steps != 10 || short.Warmup != 10 {
		t.Fatalf("ForRun(10) = steps %d, warmup %d; want 10, 10", short.Steps, short.Warmup)
	}
	if got := LearningRate(9, short.Warmup, short.Steps, short.LR, short.Schedule); got != 1 {
		t.Errorf("last step of a 10-step run: lr %v, want the peak 1", got)
	}
	long := spec.ForRun(1000)
	if long.Steps != 1000 || long.Warmup != 20 {
		t.Fatalf("ForRun(1000) = steps %d, warmup %d; want 1000, 20", long.Steps, long.Warmup)
	}
	if got, want := LearningRate(510, long.Warmup, long.Steps, long.LR, long.Schedule), 0.5; math.Abs(got-want) > 1e-12 {
		t.Errorf("mid-run of a 1000-step run: lr %v, want %v", got, want)
	}
	if spec.ForRun(200) != spec {
		t.Errorf("ForRun of the block's own steps changed the schedule")
	}
}

func TestGradNormAndClip(t *testing.T) {
	a, b := []float32{3, 4}, []float32{12}
	if n := GradNorm(a, b); n != 13 {
		t.Fatalf("GradNorm = %v, want 13", n)
	}
	if n := ClipGradients(1, a, b); n != 13 {
		t.Fatalf("ClipGradients returned %v, want the pre-clip norm 13", n)
	}
	if n := GradNorm(a, b); math.Abs(n-1) > 1e-6 {
		t.Errorf("norm after clipping = %v, want 1", n)
	}
	if math.Abs(float64(a[0])-3.0/13) > 1e-7 || math.Abs(float64(b[0])-12.0/13) > 1e-7 {
		t.Errorf("clipped to %v %v, want direction kept", a, b)
	}

	// Below the limit, or with clipping off, nothing changes.
	c := []float32{0.3, 0.4}
	for _, maxNorm := range []float64{1, 0, -1} {
		if n := ClipGradients(maxNorm, c); math.Abs(n-0.5) > 1e-7 || c[0] != 0.3 || c[1] != 0.4 {
			t.Errorf("ClipGradients(%v) changed %v (norm %v)", maxNorm, c, n)
		}
	}
	big := []float32{3e4, 4e4}
	ClipGradients(0, big)
	if big[0] != 3e4 {
		t.Error("maxNorm 0 clipped")
	}

	// Non-finite gradients are reported, not smeared over the others.
	d := []float32{float32(math.NaN()), 1}
	if n := ClipGradients(1, d); !math.IsNaN(n) || d[1] != 1 {
		t.Errorf("NaN gradient: norm %v, grads %v", n, d)
	}
	e := []float32{float32(math.Inf(1)), 1}
	if n := ClipGradients(1, e); !math.IsInf(n, 1) || d[1] != 1 {
		t.Errorf("Inf gradient: norm %v, grads %v", n, e)
	}
}
