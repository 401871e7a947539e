package kern

import "math"

// AttentionDecodeRef is causal attention with a KV cache for T new tokens
// per sequence (T = 1 when decoding, a chunk of the prompt when
// prefilling). For each sequence b it first stores the key and value of
// every new token t at position pos[b,t] of the caches, then attends token
// t's query over positions 0..pos[b,t] (with a sliding window W > 0,
// pos[b,t]−W+1..pos[b,t]), so a token sees the earlier tokens of its own
// chunk as well as the cache. A token at position −1 is padding: it writes
// nothing to the caches and its output is zero. scale and cap are
// AttentionRef's.
//
// Shapes: out, q (B, T, NH*HS); k, v (B, T, KVH*HS); kcache, vcache
// (B, Ctx, KVH*HS); pos (B, T) with −1 ≤ pos[b,t] < Ctx. Query head h uses
// kv head h/(NH/KVH), as AttentionRef does.
func AttentionDecodeRef[F Float](out, q, k, v, kcache, vcache []F, pos []int32, B, T, Ctx, NH, KVH, HS, W int, scale, cap float64) {
	kvw := KVH * HS
	rep := NH / KVH
	scale = attnScale(scale, HS)
	scores := make([]float64, Ctx)
	acc := make([]float64, HS)
	for b := range B {
		kc := kcache[b*Ctx*kvw : (b+1)*Ctx*kvw]
		vc := vcache[b*Ctx*kvw : (b+1)*Ctx*kvw]
		for t := range T {
			if p := int(pos[b*T+t]); p >= 0 {
				r := b*T + t
				copy(kc[p*kvw:(p+1)*kvw], k[r*kvw:(r+1)*kvw])
				copy(vc[p*kvw:(p+1)*kvw], v[r*kvw:(r+1)*kvw])
			}
		}
		for t := range T {
			r := b*T + t
			p := int(pos[r])
			if p < 0 {
				clear(out[r*NH*HS : (r+1)*NH*HS])
				continue
			}
			lo := windowStart(p, W)
			for h := range NH {
				g := h / rep
				qh := q[r*NH*HS+h*HS : r*NH*HS+(h+1)*HS]
				maxS := math.Inf(-1)
				for j := lo; j <= p; j++ {
					s, _ := softcap(dot(qh, kc[j*kvw+g*HS:j*kvw+(g+1)*HS])*scale, cap)
					scores[j] = s
					maxS = math.Max(maxS, s)
				}
				var sum float64
				for j := lo; j <= p; j++ {
					scores[j] = math.Exp(scores[j] - maxS)
					sum += scores[j]
				}
				clear(acc)
				for j := lo; j <= p; j++ {
					axpy(acc, scores[j]/sum, vc[j*kvw+g*HS:j*kvw+(g+1)*HS])
				}
				store(out[r*NH*HS+h*HS:r*NH*HS+(h+1)*HS], acc)
			}
		}
	}
}

// AttentionDecode is the float32 entry point generated code calls for
// AttentionDecodeRef. A token attends over at most Ctx keys per head; the
// (token, head) pairs are split over goroutines when there is enough work.
// One new token a sequence (T = 1, decoding) runs a plain loop. A chunk
// (T > 1, prefill: T times the keys) runs each (token, head)'s scores and
// weighted sum of values with the variant's row kernels (dots, gemv) when
// the head size is a multiple of its lanes, else the same plain loop; the
// two agree within float rounding. Either way a token's output depends
// only on its own query and the cache, not on the chunk's other tokens or
// on the thread count.
func AttentionDecode(out, q, k, v, kcache, vcache []float32, pos []int32, B, T, Ctx, NH, KVH, HS, W int, scale, cap float32) {
	kvw := KVH * HS
	work := 0
	for b := range B {
		for t := range T {
			p := int(pos[b*T+t])
			if p < 0 {
				continue
			}
			r := b*T + t
			copy(kcache[(b*Ctx+p)*kvw:(b*Ctx+p+1)*kvw], k[r*kvw:(r+1)*kvw])
			copy(vcache[(b*Ctx+p)*kvw:(b*Ctx+p+1)*kvw], v[r*kvw:(r+1)*kvw])
			work += (p + 1 - windowStart(p, W)) * NH * HS
		}
	}
	rep := NH / KVH
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(HS)))
	}
	// Split over tokens and heads only when that is enough work to pay
	// for starting goroutines.
	parallel := ParallelFor
	if work < 1<<16 {
		parallel = func(n int, body func(lo, hi int)) { body(0, n) }
	}
	var l *isaLevel
	if T > 1 {
		if l = activeLevel.Load(); l != nil && HS%l.lanes != 0 {
			l = nil
		}
	}
	parallel(B*T*NH, func(lo, hi int) {
		scores := make([]float32, Ctx)
		for i := lo; i < hi; i++ {
			if l != nil {
				attendRow(l, out, q, kcache, vcache, pos, scores, i, T, Ctx, NH, rep, HS, kvw, W, scale, cap)
				continue
			}
			r, h := i/NH, i%NH
			b := r / T
			o := out[r*NH*HS+h*HS : r*NH*HS+(h+1)*HS]
			p := int(pos[r])
			if p < 0 {
				clear(o)
				continue
			}
			lo := windowStart(p, W)
			g := h / rep
			base := b * Ctx * kvw
			qh := q[r*NH*HS+h*HS : r*NH*HS+(h+1)*HS]
			for j := lo; j <= p; j++ {
				kt := kcache[base+j*kvw+g*HS : base+j*kvw+(g+1)*HS]
				var s float32
				for d, x := range qh {
					s += x * kt[d]
				}
				scores[j] = s
			}
			inv := softmaxScores(scores[lo:p+1], scale, cap)
			clear(o)
			for j := lo; j <= p; j++ {
				w := scores[j] * inv
				vt := vcache[base+j*kvw+g*HS : base+j*kvw+(g+1)*HS]
				for d, x := range vt {
					o[d] += w * x
				}
			}
		}
	})
}

// attendRow is one (token, head) pair i of AttentionDecode on the
// variant's row kernels: the scores q·kⱼ by dots over the cache rows (kvw
// floats apart), scaled, capped and exponentiated in Go, then the
// probabilities times the values by gemv. HS is a multiple of l.lanes.
func attendRow(l *isaLevel, out, q, kcache, vcache []float32, pos []int32, scores []float32, i, T, Ctx, NH, rep, HS, kvw, W int, scale, cap float32) {
	r, h := i/NH, i%NH
	o := out[r*NH*HS+h*HS : r*NH*HS+(h+1)*HS]
	clear(o)
	p := int(pos[r])
	if p < 0 {
		return
	}
	lo := windowStart(p, W)
	n := p + 1 - lo
	g := h / rep
	first := (r/T)*Ctx*kvw + lo*kvw + g*HS // key lo's head g
	last := first + (n-1)*kvw + HS         // one past key p's head g
	qh := q[r*NH*HS+h*HS : r*NH*HS+(h+1)*HS]
	kc, vc := kcache[first:last], vcache[first:last]
	sc := scores[:n]
	clear(sc)
	l.dots(&sc[0], n, &qh[0], HS, &kc[0], kvw)
	inv := softmaxScores(sc, scale, cap)
	for j := range sc {
		sc[j] *= inv
	}
	l.gemv(&o[0], HS, &sc[0], n, &vc[0], kvw)
}

// softmaxScores turns the raw dot products q·kⱼ in sc into unnormalised
// probabilities in place — scaled, soft-capped when cap is not 0, and
// exponentiated against their maximum — and returns 1 over their sum.
func softmaxScores(sc []float32, scale, cap float32) float32 {
	maxS := float32(math.Inf(-1))
	for j, s := range sc {
		s *= scale
		if cap != 0 {
			s = cap * float32(math.Tanh(float64(s/cap)))
		}
		sc[j] = s
		maxS = max(maxS, s)
	}
	var sum float32
	for j, s := range sc {
		e := float32(math.Exp(float64(s - maxS)))
		sc[j] = e
		sum += e
	}
	return 1 / sum
}
