package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"lorac.dev/lorac/runtime/kern"
)

// TestDropoutThreshold: the integer test lorac_dropout_mask makes,
// u>>11 < threshold, decides exactly as kern.DropoutMask's float64 test
// float64(u>>11) < p·2⁵³, at the threshold and on either side of it, for
// rates whose p·2⁵³ is an integer (0.5, 0.25) and rates whose is not.
func TestDropoutThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rates := []float64{0, 0.05, 0.1, 1.0 / 3, 0.25, 0.5, 0.9, 0.999999, math.Nextafter(1, 0), 0x1p-60, -0.2, 1, 1.5}
	for range 200 {
		rates = append(rates, rng.Float64())
	}
	for _, p := range rates {
		th, keep := DropoutThreshold(p)
		if th > 1<<53 {
			t.Fatalf("p=%v: threshold %d beyond 2^53", p, th)
		}
		wantKeep := float32(1 / (1 - p))
		if p >= 1 {
			wantKeep = 0
		}
		if math.Float32bits(keep) != math.Float32bits(wantKeep) {
			t.Errorf("p=%v: keep %v, want %v", p, keep, wantKeep)
		}
		xs := []uint64{0, 1, 1<<53 - 1, th, th + 1}
		if th > 0 {
			xs = append(xs, th-1)
		}
		for range 50 {
			xs = append(xs, rng.Uint64()>>11)
		}
		for _, x := range xs {
			if x >= 1<<53 {
				continue // u>>11 has 53 bits
			}
			host := p >= 1 || float64(x) < p*(1<<53)
			if dev := x < th; dev != host {
				t.Errorf("p=%v x=%d: device drops %v, host %v (threshold %d)", p, x, dev, host, th)
			}
		}
	}
}

// checkDropoutMask: lorac_dropout_mask equals kern.DropoutMask bit for bit
// for several modules (seeds), steps (streams), sizes (one element, odd
// sizes, block tails) and rates, the grid-stride loop included (a grid of
// two blocks over more than two blocks' elements).
func checkDropoutMask(t *testing.T, l *Lorac, small bool) {
	sizes := []int{1, 7, 255, 256, 257, 1031, 100003}
	if small {
		sizes = []int{1, 7, 255, 257, 1031}
	}
	rates := []float64{0.05, 0.1, 1.0 / 3, 0.5, 0.999, 0, 1}
	seeds := []uint64{0xf9bee42692e43d38, 0x63e69c9d14e1eef4, 1, 0}
	steps := []uint64{0, 1, 3, 1 << 40}
	rng := rand.New(rand.NewPCG(9, 10))
	maxN := sizes[len(sizes)-1]
	dev := alloc(t, l, maxN)
	want := make([]float32, maxN)
	// check poisons the buffer (every element must be written), runs
	// launch and compares.
	check := func(name string, n int, p float64, seed, step uint64, launch func() error) {
		t.Helper()
		if err := l.Fill(dev, n, float32(math.NaN())); err != nil {
			t.Fatal(err)
		}
		if err := launch(); err != nil {
			t.Fatal(err)
		}
		kern.DropoutMask(want[:n], p, seed, step)
		got := download[float32](t, l, dev, n)
		diff, first := 0, -1
		for i := range n {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				if first < 0 {
					first = i
				}
				diff++
			}
		}
		if diff > 0 {
			t.Errorf("%s n=%d p=%v seed=%#x step=%d: %d elements differ from kern.DropoutMask, first %d: %v, want %v",
				name, n, p, seed, step, diff, first, got[first], want[first])
		}
	}
	cases := 0
	for si, n := range sizes {
		for ri, p := range rates {
			// Every size meets every rate; seeds and steps rotate.
			seed, step := seeds[(si+ri)%len(seeds)], steps[(si+2*ri)%len(steps)]
			check("DropoutMask", n, p, seed, step, func() error { return l.DropoutMask(dev, n, p, seed, step) })
			cases++
		}
	}
	for range 4 {
		n, p := 300+rng.IntN(700), rng.Float64()
		seed, step := rng.Uint64(), uint64(rng.IntN(1000))
		check("DropoutMask", n, p, seed, step, func() error { return l.DropoutMask(dev, n, p, seed, step) })
	}
	// The grid-stride loop: two blocks of 256 threads over 1031 elements.
	th, keep := DropoutThreshold(0.1)
	check("grid-stride launch", 1031, 0.1, 77, 5, func() error {
		return l.launch("lorac_dropout_mask", Shape{Dim3{2, 1, 1}, Dim3{256, 1, 1}}, nil, dev, 1031, uint64(77), uint64(5), th, keep)
	})
	// Different streams give different masks (the test would pass a
	// kernel that ignored them otherwise).
	a, b := make([]float32, 257), make([]float32, 257)
	kern.DropoutMask(a, 0.5, 1, 1)
	kern.DropoutMask(b, 0.5, 1, 2)
	same := true
	for i := range a {
		same = same && a[i] == b[i]
	}
	if same || cases < 30 {
		t.Fatalf("the reference masks do not vary (%d cases)", cases)
	}
	if err := l.DropoutMask(dev, 0, 0.5, 1, 1); err != nil {
		t.Errorf("an empty mask: %v", err)
	}
}

// TestGPUDropoutMask: the device mask is kern.DropoutMask's, bit for bit.
func TestGPUDropoutMask(t *testing.T) { checkDropoutMask(t, gpu(t), false) }
