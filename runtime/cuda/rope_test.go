package cuda

import (
	"math"
	"testing"

	"lorac.dev/lorac/runtime/kern"
)

// TestRoPEInvFreq: the host's table is kern.RoPEInvFreq's, bit for bit,
// for every scaling kind over head sizes, bases and llama3 bands.
func TestRoPEInvFreq(t *testing.T) {
	n := 0
	for _, HS := range []int{2, 8, 24, 64, 128, 256} {
		for _, theta := range []float64{10000, 500000, 1e6} {
			for _, k := range []ropeKey{
				{scaling: kern.RoPEDefault},
				{scaling: kern.RoPELinear, factor: 2},
				{scaling: kern.RoPELinear, factor: 8},
				{scaling: kern.RoPELlama3, factor: 8, lowFreq: 1, highFreq: 4, origCtx: 8192},
				{scaling: kern.RoPELlama3, factor: 32, lowFreq: 1, highFreq: 4, origCtx: 64},
			} {
				k.HS, k.theta = HS, theta
				got := ropeInvFreq(k)
				want := kern.RoPEInvFreq(HS, theta, k.scaling, k.factor, k.lowFreq, k.highFreq, k.origCtx)
				if len(got) != len(want) {
					t.Fatalf("%+v: %d frequencies, want %d", k, len(got), len(want))
				}
				for i := range want {
					if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
						t.Errorf("%+v: frequency %d is %v, kern has %v", k, i, got[i], want[i])
					}
				}
				n++
			}
		}
	}
	if ropeDefault != kern.RoPEDefault || ropeLinear != kern.RoPELinear || ropeLlama3 != kern.RoPELlama3 {
		t.Error("the scaling kinds are numbered differently from kern's")
	}
	if n != 90 {
		t.Errorf("%d tables compared", n)
	}
}
