package kern

import "math"

// AttentionDecodeRef is one step of causal attention with a KV cache:
// for each sequence b it stores the new key and value at position pos[b] of
// the caches, then attends the query over positions 0..pos[b] (with a
// sliding window W > 0, pos[b]−W+1..pos[b]). scale and cap are
// AttentionRef's.
//
// Shapes: out, q (B, NH*HS); k, v (B, KVH*HS); kcache, vcache
// (B, Ctx, KVH*HS); pos (B) with 0 ≤ pos[b] < Ctx. Query head h uses kv head
// h/(NH/KVH), as AttentionRef does.
func AttentionDecodeRef[F Float](out, q, k, v, kcache, vcache []F, pos []int32, B, Ctx, NH, KVH, HS, W int, scale, cap float64) {
	kvw := KVH * HS
	rep := NH / KVH
	scale = attnScale(scale, HS)
	scores := make([]float64, Ctx)
	acc := make([]float64, HS)
	for b := range B {
		p := int(pos[b])
		lo := windowStart(p, W)
		kc := kcache[b*Ctx*kvw : (b+1)*Ctx*kvw]
		vc := vcache[b*Ctx*kvw : (b+1)*Ctx*kvw]
		copy(kc[p*kvw:(p+1)*kvw], k[b*kvw:(b+1)*kvw])
		copy(vc[p*kvw:(p+1)*kvw], v[b*kvw:(b+1)*kvw])
		for h := range NH {
			g := h / rep
			qh := q[b*NH*HS+h*HS : b*NH*HS+(h+1)*HS]
			maxS := math.Inf(-1)
			for t := lo; t <= p; t++ {
				s, _ := softcap(dot(qh, kc[t*kvw+g*HS:t*kvw+(g+1)*HS])*scale, cap)
				scores[t] = s
				maxS = math.Max(maxS, s)
			}
			var sum float64
			for t := lo; t <= p; t++ {
				scores[t] = math.Exp(scores[t] - maxS)
				sum += scores[t]
			}
			clear(acc)
			for t := lo; t <= p; t++ {
				axpy(acc, scores[t]/sum, vc[t*kvw+g*HS:t*kvw+(g+1)*HS])
			}
			store(out[b*NH*HS+h*HS:b*NH*HS+(h+1)*HS], acc)
		}
	}
}

// AttentionDecode is the float32 entry point generated code calls for
// AttentionDecodeRef; one token per sequence is little work, so it runs
// the reference loop, split over sequences and heads.
func AttentionDecode(out, q, k, v, kcache, vcache []float32, pos []int32, B, Ctx, NH, KVH, HS, W int, scale, cap float32) {
	kvw := KVH * HS
	for b := range B {
		p := int(pos[b])
		copy(kcache[(b*Ctx+p)*kvw:(b*Ctx+p+1)*kvw], k[b*kvw:(b+1)*kvw])
		copy(vcache[(b*Ctx+p)*kvw:(b*Ctx+p+1)*kvw], v[b*kvw:(b+1)*kvw])
	}
	rep := NH / KVH
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(HS)))
	}
	// One token attends over at most Ctx keys per head: split over heads only
	// when that is enough work to pay for starting a goroutine.
	work := 0
	for b := range B {
		work += (int(pos[b]) + 1 - windowStart(int(pos[b]), W)) * NH * HS
	}
	parallel := ParallelFor
	if work < 1<<16 {
		parallel = func(n int, body func(lo, hi int)) { body(0, n) }
	}
	parallel(B*NH, func(lo, hi int) {
		scores := make([]float32, Ctx)
		for i := lo; i < hi; i++ {
			b, h := i/NH, i%NH
			p := int(pos[b])
			lo := windowStart(p, W)
			g := h / rep
			base := b * Ctx * kvw
			qh := q[b*NH*HS+h*HS : b*NH*HS+(h+1)*HS]
			maxS := float32(math.Inf(-1))
			for t := lo; t <= p; t++ {
				kt := kcache[base+t*kvw+g*HS : base+t*kvw+(g+1)*HS]
				var s float32
				for j, x := range qh {
					s += x * kt[j]
				}
				s *= scale
				if cap != 0 {
					s = cap * float32(math.Tanh(float64(s/cap)))
				}
				scores[t] = s
				maxS = max(maxS, s)
			}
			var sum float32
			for t := lo; t <= p; t++ {
				e := float32(math.Exp(float64(scores[t] - maxS)))
				scores[t] = e
				sum += e
			}
			o := out[b*NH*HS+h*HS : b*NH*HS+(h+1)*HS]
			clear(o)
			inv := 1 / sum
			for t := lo; t <= p; t++ {
				w := scores[t] * inv
				vt := vcache[base+t*kvw+g*HS : base+t*kvw+(g+1)*HS]
				for j, x := range vt {
					o[j] += w * x
				}
			}
		}
	})
}
