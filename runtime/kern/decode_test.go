package kern

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttentionDecodeMatchesFullAttention: decoding T tokens one at a time
// against the cache gives causal attention's output for every position,
// with a sliding window too (past the window, keys drop out of both).
func TestAttentionDecodeMatchesFullAttention(t *testing.T) {
	for _, c := range []struct {
		B, T, Ctx, NH, KVH, HS, W int
		scale, cap                float64
	}{
		{1, 1, 1, 1, 1, 1, 0, 0, 0}, {2, 7, 9, 4, 2, 3, 0, 0, 0}, {1, 17, 17, 4, 1, 8, 0, 0, 0}, {3, 5, 8, 2, 2, 4, 0, 0, 0},
		{2, 7, 9, 4, 2, 3, 3, 0, 0}, {1, 17, 17, 4, 1, 8, 5, 0, 0}, {2, 7, 9, 4, 2, 3, 3, 0.5, 1.5},
	} {
		rng := rand.New(rand.NewPCG(uint64(c.T), 1))
		qw, kvw := c.NH*c.HS, c.KVH*c.HS
		rnd := func(n int) []float64 {
			x := make([]float64, n)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			return x
		}
		q, k, v := rnd(c.B*c.T*qw), rnd(c.B*c.T*kvw), rnd(c.B*c.T*kvw)
		want := make([]float64, len(q))
		AttentionRef(want, q, k, v, c.B, c.T, c.NH, c.KVH, c.HS, c.W, c.scale, c.cap)

		kc, vc := make([]float64, c.B*c.Ctx*kvw), make([]float64, c.B*c.Ctx*kvw)
		kc32, vc32 := make([]float32, len(kc)), make([]float32, len(vc))
		for step := range c.T {
			gather := func(x []float64, w int) []float64 {
				y := make([]float64, c.B*w)
				for b := range c.B {
					copy(y[b*w:(b+1)*w], x[(b*c.T+step)*w:(b*c.T+step+1)*w])
				}
				return y
			}
			qs, ks, vs := gather(q, qw), gather(k, kvw), gather(v, kvw)
			pos := make([]int32, c.B)
			for b := range pos {
				pos[b] = int32(step)
			}
			got := make([]float64, c.B*qw)
			AttentionDecodeRef(got, qs, ks, vs, kc, vc, pos, c.B, c.Ctx, c.NH, c.KVH, c.HS, c.W, c.scale, c.cap)
			got32 := make([]float32, c.B*qw)
			for i := range got32 {
				got32[i] = float32(math.NaN())
			}
			AttentionDecode(got32, f32s(qs), f32s(ks), f32s(vs), kc32, vc32, pos, c.B, c.Ctx, c.NH, c.KVH, c.HS, c.W, float32(c.scale), float32(c.cap))
			for b := range c.B {
				for j := range qw {
					w := want[(b*c.T+step)*qw+j]
					if d := math.Abs(got[b*qw+j] - w); d > 1e-12 {
						t.Fatalf("%+v step %d: reference decode differs by %g", c, step, d)
					}
					if d := math.Abs(float64(got32[b*qw+j]) - w); d > 1e-5*(1+math.Abs(w)) {
						t.Fatalf("%+v step %d: float32 decode differs by %g", c, step, d)
					}
				}
			}
		}
	}
}

func f32s(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
