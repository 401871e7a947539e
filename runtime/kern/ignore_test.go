package kern

import (
	"fmt"
	"math"
	"testing"
)

func TestCrossEntropyIgnoredTargets(t *testing.T) { forEachISA(t, testCrossEntropyIgnoredTargets) }

// testCrossEntropyIgnoredTargets checks the fast kernels against the
// references with some rows ignored, and both against the definition: the
// loss of the counted rows alone, their mean, and zero gradient rows.
func testCrossEntropyIgnoredTargets(t *testing.T) {
	rng := newRand()
	for _, N := range cpuSizes {
		for _, V := range []int{1, 7, 33, 1000} {
			t.Run(fmt.Sprintf("N%d_V%d", N, V), func(t *testing.T) {
				x := cpuRandn(rng, N*V)
				for i := range x {
					x[i] *= 5
				}
				targets := randIDs(rng, N, V)
				var kept []int
				for n := range targets {
					if rng.IntN(3) == 0 {
						targets[n] = IgnoreTarget
					} else {
						kept = append(kept, n)
					}
				}
				if CountTargets(targets) != len(kept) {
					t.Fatalf("CountTargets = %d, want %d", CountTargets(targets), len(kept))
				}

				// The definition: the plain loss over the kept rows.
				var want float64
				if len(kept) > 0 {
					sub := make([]float64, 0, len(kept)*V)
					subT := make([]int32, 0, len(kept))
					for _, n := range kept {
						sub = append(sub, wide(x[n*V:(n+1)*V])...)
						subT = append(subT, targets[n])
					}
					want = CrossEntropyRef(sub, subT, len(kept), V)
				}
				ref := CrossEntropyRef(wide(x), targets, N, V)
				if math.Abs(ref-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("reference loss %g, the kept rows' mean %g", ref, want)
				}
				cpuCheck(t, "cross-entropy", []float32{CrossEntropy(x, targets, N, V)}, []float64{ref}, 1e-6)

				gw := make([]float64, N*V)
				CrossEntropyGradRef(gw, 0.7, wide(x), targets, N, V)
				got := nans[float32](N * V)
				CrossEntropyGrad(got, 0.7, x, targets, N, V)
				cpuCheck(t, "cross-entropy grad", got, gw, 1e-6)
				for n, tg := range targets {
					if tg != IgnoreTarget {
						continue
					}
					for i := range V {
						if got[n*V+i] != 0 || gw[n*V+i] != 0 {
							t.Fatalf("row %d is ignored but its gradient is %g (reference %g)", n, got[n*V+i], gw[n*V+i])
						}
					}
				}
				// A counted row's gradient sums to 0 and scales with 1/count.
				if len(kept) > 0 {
					n := kept[0]
					var s float64
					for i := range V {
						s += gw[n*V+i]
					}
					if math.Abs(s) > 1e-9 {
						t.Errorf("row %d's gradient sums to %g, want 0", n, s)
					}
					p := math.Exp(float64(x[n*V+int(targets[n])]) - logSumExp(wide(x[n*V:(n+1)*V])))
					if w := 0.7 * (p - 1) / float64(len(kept)); math.Abs(gw[n*V+int(targets[n])]-w) > 1e-9 {
						t.Errorf("target gradient %g, want 0.7·(p−1)/count = %g", gw[n*V+int(targets[n])], w)
					}
				}
			})
		}
	}
}

func TestCrossEntropyAllIgnored(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		const N, V = 5, 9
		x := cpuRandn(newRand(), N*V)
		targets := make([]int32, N)
		for i := range targets {
			targets[i] = IgnoreTarget
		}
		if l := CrossEntropy(x, targets, N, V); l != 0 {
			t.Errorf("loss with every target ignored is %g, want 0", l)
		}
		if l := CrossEntropyRef(wide(x), targets, N, V); l != 0 {
			t.Errorf("reference loss with every target ignored is %g, want 0", l)
		}
		got := nans[float32](N * V)
		CrossEntropyGrad(got, 1, x, targets, N, V)
		ref := nans[float64](N * V)
		CrossEntropyGradRef(ref, 1, wide(x), targets, N, V)
		for i := range got {
			if got[i] != 0 || ref[i] != 0 {
				t.Fatalf("gradient element %d is %g (reference %g), want 0", i, got[i], ref[i])
			}
		}
	})
}

// TestCrossEntropyNoneIgnoredUnchanged pins the plain mean over all N rows
// when nothing is ignored: the sum of row losses in row order over N.
func TestCrossEntropyNoneIgnoredUnchanged(t *testing.T) {
	rng := newRand()
	const N, V = 33, 50
	x := cpuRandn(rng, N*V)
	targets := randIDs(rng, N, V)
	var total float64
	for n := range N {
		lse, _ := logSumExp32(x[n*V : (n+1)*V])
		total += float64(lse) - float64(x[n*V+int(targets[n])])
	}
	if got, want := CrossEntropy(x, targets, N, V), float32(total/N); got != want {
		t.Errorf("loss %g, want the plain mean %g bit for bit", got, want)
	}
}
