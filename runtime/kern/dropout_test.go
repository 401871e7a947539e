package kern

import (
	"math"
	"testing"
)

func TestDropoutMaskDeterministic(t *testing.T) {
	a, b := nans[float32](1000), nans[float32](1000)
	DropoutMask(a, 0.5, 42, 7)
	DropoutMask(b, 0.5, 42, 7)
	checkClose(t, "same arguments", to64(a), to64(b), 0)

	// A prefix of a longer mask is the shorter mask: element i depends on i only.
	DropoutMask(b[:10], 0.5, 42, 7)
	checkClose(t, "prefix", to64(b[:10]), to64(a[:10]), 0)

	// float64 and float32 masks drop the same elements.
	c := nans[float64](1000)
	DropoutMask(c, 0.5, 42, 7)
	checkClose(t, "float64", c, to64(a), 0)
}

// TestDropoutMaskGolden pins the generator: a change here changes every
// training run's masks, so it must be deliberate.
func TestDropoutMaskGolden(t *testing.T) {
	mask := nans[float64](64)
	DropoutMask(mask, 0.5, 42, 7)
	var kept uint64
	for i, v := range mask {
		if v != 0 {
			kept |= 1 << i
		}
	}
	const want = 0xf87d6da92174f6d7
	if kept != want {
		t.Errorf("kept elements %#x, want %#x", kept, uint64(want))
	}
}

func TestDropoutMaskFraction(t *testing.T) {
	const n = 100_000
	for _, p := range []float64{0, 0.1, 0.5, 0.9} {
		mask := nans[float32](n)
		DropoutMask(mask, p, 1234, 0)
		keep := float32(1 / (1 - p))
		zeros := 0
		for i, v := range mask {
			switch v {
			case 0:
				zeros++
			case keep:
			default:
				t.Fatalf("p=%g: mask[%d] = %g, want 0 or %g", p, i, v, keep)
			}
		}
		// Five standard deviations of a binomial fraction.
		if frac := float64(zeros) / n; math.Abs(frac-p) > 5*math.Sqrt(p*(1-p)/n)+1e-12 {
			t.Errorf("p=%g: %g of the mask is zero", p, frac)
		}
	}

	ones := nans[float32](10)
	DropoutMask(ones, 1, 1, 1)
	for _, v := range ones {
		if v != 0 {
			t.Fatalf("p=1 mask = %v, want zeros", ones)
		}
	}
}

func TestDropoutMaskStreams(t *testing.T) {
	const n = 1000
	base := nans[float64](n)
	DropoutMask(base, 0.5, 9, 0)
	for _, tc := range []struct{ seed, stream uint64 }{{9, 1}, {9, 2}, {10, 0}, {0, 9}} {
		other := nans[float64](n)
		DropoutMask(other, 0.5, tc.seed, tc.stream)
		same := 0
		for i := range base {
			if base[i] == other[i] {
				same++
			}
		}
		// Independent masks agree on about half the elements.
		if same < n/2-150 || same > n/2+150 {
			t.Errorf("seed %d stream %d agrees with seed 9 stream 0 on %d of %d elements", tc.seed, tc.stream, same, n)
		}
	}
}
