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
			AttentionDecodeRef(got, qs, ks, vs, kc, vc, pos, c.B, 1, c.Ctx, c.NH, c.KVH, c.HS, c.W, c.scale, c.cap)
			got32 := make([]float32, c.B*qw)
			for i := range got32 {
				got32[i] = float32(math.NaN())
			}
			AttentionDecode(got32, f32s(qs), f32s(ks), f32s(vs), kc32, vc32, pos, c.B, 1, c.Ctx, c.NH, c.KVH, c.HS, c.W, float32(c.scale), float32(c.cap))
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

// TestAttentionDecodeChunks: prefilling T tokens in chunks of S new tokens
// a sequence (the last chunk padded with position −1) gives causal
// attention's output for every position, with windows, scales and
// soft-caps; the float32 kernel's chunked output is its output decoding
// one token at a time (bit for bit on the pure-Go path, within float
// rounding on the row kernels); padding writes no cache entry and outputs
// zeros. On every kernel variant, with head sizes that use the row kernels
// (multiples of 16) and ones that cannot.
func TestAttentionDecodeChunks(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		for _, c := range []struct {
			B, T, S, Ctx, NH, KVH, HS, W int
			scale, cap                   float64
		}{
			{1, 5, 5, 5, 1, 1, 2, 0, 0, 0}, {2, 7, 3, 9, 4, 2, 3, 0, 0, 0}, {1, 17, 4, 20, 4, 1, 8, 0, 0, 0},
			{3, 11, 8, 12, 2, 2, 4, 0, 0, 0}, {2, 9, 4, 9, 4, 2, 3, 3, 0, 0}, {1, 17, 5, 17, 4, 1, 8, 5, 0.5, 1.5},
			{2, 6, 16, 8, 2, 1, 4, 0, 0, 2},
			{2, 21, 8, 24, 4, 2, 16, 0, 0, 0}, {1, 19, 6, 20, 2, 1, 32, 7, 0.3, 2}, {2, 13, 5, 16, 3, 3, 64, 0, 0, 0},
		} {
			rng := rand.New(rand.NewPCG(uint64(c.T*c.S), 2))
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

			// One token at a time, float32: what chunks must reproduce.
			one := make([]float32, len(q))
			kc1, vc1 := make([]float32, c.B*c.Ctx*kvw), make([]float32, c.B*c.Ctx*kvw)
			for step := range c.T {
				qs, ks, vs := make([]float32, c.B*qw), make([]float32, c.B*kvw), make([]float32, c.B*kvw)
				pos := make([]int32, c.B)
				for b := range c.B {
					copy(qs[b*qw:], f32s(q[(b*c.T+step)*qw:(b*c.T+step+1)*qw]))
					copy(ks[b*kvw:], f32s(k[(b*c.T+step)*kvw:(b*c.T+step+1)*kvw]))
					copy(vs[b*kvw:], f32s(v[(b*c.T+step)*kvw:(b*c.T+step+1)*kvw]))
					pos[b] = int32(step)
				}
				o := make([]float32, c.B*qw)
				AttentionDecode(o, qs, ks, vs, kc1, vc1, pos, c.B, 1, c.Ctx, c.NH, c.KVH, c.HS, c.W, float32(c.scale), float32(c.cap))
				for b := range c.B {
					copy(one[(b*c.T+step)*qw:], o[b*qw:(b+1)*qw])
				}
			}

			const sentinel = 7
			kc, vc := make([]float64, c.B*c.Ctx*kvw), make([]float64, c.B*c.Ctx*kvw)
			kc32, vc32 := make([]float32, len(kc)), make([]float32, len(vc))
			for i := range kc {
				kc[i], vc[i], kc32[i], vc32[i] = sentinel, sentinel, sentinel, sentinel
			}
			for start := 0; start < c.T; start += c.S {
				// Chunk rows [start, start+S) of every sequence; rows
				// past T are padding with garbage inputs.
				qs, ks, vs := rnd(c.B*c.S*qw), rnd(c.B*c.S*kvw), rnd(c.B*c.S*kvw)
				pos := make([]int32, c.B*c.S)
				for b := range c.B {
					for j := range c.S {
						r, src := b*c.S+j, b*c.T+start+j
						pos[r] = -1
						if start+j < c.T {
							pos[r] = int32(start + j)
							copy(qs[r*qw:(r+1)*qw], q[src*qw:(src+1)*qw])
							copy(ks[r*kvw:(r+1)*kvw], k[src*kvw:(src+1)*kvw])
							copy(vs[r*kvw:(r+1)*kvw], v[src*kvw:(src+1)*kvw])
						}
					}
				}
				got := make([]float64, c.B*c.S*qw)
				AttentionDecodeRef(got, qs, ks, vs, kc, vc, pos, c.B, c.S, c.Ctx, c.NH, c.KVH, c.HS, c.W, c.scale, c.cap)
				got32 := make([]float32, c.B*c.S*qw)
				for i := range got32 {
					got32[i] = float32(math.NaN())
				}
				AttentionDecode(got32, f32s(qs), f32s(ks), f32s(vs), kc32, vc32, pos, c.B, c.S, c.Ctx, c.NH, c.KVH, c.HS, c.W, float32(c.scale), float32(c.cap))
				for b := range c.B {
					for j := range c.S {
						r := b*c.S + j
						for d := range qw {
							g, g32 := got[r*qw+d], got32[r*qw+d]
							if pos[r] < 0 {
								if g != 0 || g32 != 0 {
									t.Fatalf("%+v: padding row %d outputs %g and %g, want 0", c, r, g, g32)
								}
								continue
							}
							src := b*c.T + start + j
							w := want[src*qw+d]
							if e := math.Abs(g - w); e > 1e-12 {
								t.Fatalf("%+v chunk at %d row %d: reference differs by %g", c, start, j, e)
							}
							o := one[src*qw+d]
							if ISA() == "go" && g32 != o || math.Abs(float64(g32-o)) > 1e-5*(1+math.Abs(w)) {
								t.Fatalf("%+v chunk at %d row %d: float32 %g, one token at a time %g", c, start, j, g32, o)
							}
						}
					}
				}
			}
			// Positions ≥ T were never written: padding wrote nothing.
			for b := range c.B {
				for p := c.T; p < c.Ctx; p++ {
					for d := range kvw {
						i := (b*c.Ctx+p)*kvw + d
						if kc[i] != sentinel || vc[i] != sentinel || kc32[i] != sentinel || vc32[i] != sentinel {
							t.Fatalf("%+v: cache position %d of sequence %d was written", c, p, b)
						}
					}
				}
			}
		}
	})
}

func f32s(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}
