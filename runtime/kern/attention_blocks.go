package kern

import "math"

// Causal attention as GEMMs on the SIMD engine: for each (sequence, head)
// the queries are taken in blocks of attnBlock rows, and a block of rows
// t0..t1 meets only the keys s0..t1 it may attend to (s0 = 0, or with a
// sliding window the first key the block's first query sees), so the masked
// upper triangle costs at most one block's width, and so do the keys that
// fall out of the window. Scores, probabilities and their
// gradients live in a per-worker (attnBlock, T) buffer, never (T, T) per
// head. Each GEMM runs on the worker's goroutine (gemmSerial), so every
// element is summed in an order fixed by the shape.

const attnBlock = 64

// attnKeys is the first key s0 that queries t0.. of a block attend to.
func attnKeys(t0, W int) int { return windowStart(t0, W) }

// attnProbs sets p (rows t0..t1, row stride ldp; column j is key s0+j, for
// keys s0..t1) to the causal softmax of softcap(scale·q_t·k_s), zero past
// s = t and, with a window W > 0, before s = t−W+1. k is the head's keys
// from time 0. With cap > 0 and dc set, dc (same layout as p) gets the
// cap's derivative 1 − tanh² at each visible score.
func attnProbs(p []float32, ldp int, q []float32, ldq int, k []float32, ldk int, t0, t1, s0, HS, W int, scale, cap float32, dc []float32) {
	gemmSerial(t1-t0, t1-s0, []gemmSeg{{a: gemmMat{data: q[t0*ldq:], ld: ldq}, b: gemmMat{data: k[s0*ldk:], ld: ldk, trans: true}, k: HS}},
		gemmOut{c: p, ld: ldp, alpha: scale})
	for t := t0; t < t1; t++ {
		row := p[(t-t0)*ldp : (t-t0)*ldp+t1-s0]
		lo, hi := windowStart(t, W)-s0, t+1-s0
		if cap != 0 {
			var d []float32
			if dc != nil {
				d = dc[(t-t0)*ldp : (t-t0)*ldp+t1-s0]
			}
			softcap32(row[lo:hi], d, lo, cap)
		}
		clear(row[:lo])
		softmaxInPlace(row[lo:hi])
		clear(row[hi:])
	}
}

// softcap32 replaces each x of row by cap·tanh(x/cap); when d is set,
// d[off+i] gets 1 − tanh² of row element i.
func softcap32(row, d []float32, off int, cap float32) {
	for i, x := range row {
		t := float32(math.Tanh(float64(x / cap)))
		row[i] = cap * t
		if d != nil {
			d[off+i] = 1 - t*t
		}
	}
}

// attentionBlocks is Attention on the SIMD engine.
func attentionBlocks(out, q, k, v []float32, B, T, NH, KVH, HS, W int, scale, cap float32) {
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	ParallelFor(B*NH, func(lo, hi int) {
		pb := getF32(attnBlock * T)
		defer putF32(pb)
		p := *pb
		for bh := lo; bh < hi; bh++ {
			b, h := bh/NH, bh%NH
			kv := b*T*KC + h/group*HS
			qh := b*T*C + h*HS
			for t0 := 0; t0 < T; t0 += attnBlock {
				t1 := min(T, t0+attnBlock)
				s0 := attnKeys(t0, W)
				attnProbs(p, T, q[qh:], C, k[kv:], KC, t0, t1, s0, HS, W, scale, cap, nil)
				gemmSerial(t1-t0, HS, []gemmSeg{{a: gemmMat{data: p, ld: T}, b: gemmMat{data: v[kv+s0*KC:], ld: KC}, k: t1 - s0}},
					gemmOut{c: out[qh+t0*C:], ld: C, alpha: 1})
			}
		}
	})
}

// attentionGradBlocks is AttentionGrad on the SIMD engine. Per block of
// query rows: P again, dP = dout·vᵀ, dS = scale·P⊙(dP − D) with
// D[t] = Σₛ P[t,s]·dP[t,s], then dq = dS·k, dk += dSᵀ·q and dv += Pᵀ·dout.
// Work is split over (sequence, kv head), so each dk and dv row is summed
// by one goroutine: over the group's query heads in order, and within a head
// over the query blocks in order.
func attentionGradBlocks(dq, dk, dv, dout, q, k, v []float32, B, T, NH, KVH, HS, W int, scale, cap float32) {
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	ParallelFor(B*KVH, func(lo, hi int) {
		pb, dpb := getF32(attnBlock*T), getF32(attnBlock*T)
		defer putF32(pb)
		defer putF32(dpb)
		p, dp := *pb, *dpb
		var dc []float32 // the cap's derivative at each score
		if cap != 0 {
			dcb := getF32(attnBlock * T)
			defer putF32(dcb)
			dc = *dcb
		}
		for bg := lo; bg < hi; bg++ {
			b, g := bg/KVH, bg%KVH
			kv := b*T*KC + g*HS
			for s := range T {
				clear(dk[kv+s*KC : kv+s*KC+HS])
				clear(dv[kv+s*KC : kv+s*KC+HS])
			}
			for j := range group {
				qh := b*T*C + (g*group+j)*HS
				for t0 := 0; t0 < T; t0 += attnBlock {
					t1 := min(T, t0+attnBlock)
					rows := t1 - t0
					s0 := attnKeys(t0, W) // columns are keys s0..t1
					n := t1 - s0
					attnProbs(p, T, q[qh:], C, k[kv:], KC, t0, t1, s0, HS, W, scale, cap, dc)
					gemmSerial(rows, n, []gemmSeg{{a: gemmMat{data: dout[qh+t0*C:], ld: C}, b: gemmMat{data: v[kv+s0*KC:], ld: KC, trans: true}, k: HS}},
						gemmOut{c: dp, ld: T, alpha: 1})
					for t := t0; t < t1; t++ {
						hi := t + 1 - s0
						pr, dr := p[(t-t0)*T:(t-t0)*T+hi], dp[(t-t0)*T:(t-t0)*T+n]
						var d float64
						for s, w := range pr {
							d += float64(w * dr[s])
						}
						df := float32(d)
						for s, w := range pr {
							dr[s] = scale * w * (dr[s] - df)
						}
						if dc != nil {
							lo := windowStart(t, W) - s0
							for s, c := range dc[(t-t0)*T+lo : (t-t0)*T+hi] {
								dr[lo+s] *= c
							}
						}
						clear(dr[hi:])
					}
					gemmSerial(rows, HS, []gemmSeg{{a: gemmMat{data: dp, ld: T}, b: gemmMat{data: k[kv+s0*KC:], ld: KC}, k: n}},
						gemmOut{c: dq[qh+t0*C:], ld: C, alpha: 1})
					gemmSerial(n, HS, []gemmSeg{{a: gemmMat{data: dp, ld: T, trans: true}, b: gemmMat{data: q[qh+t0*C:], ld: C}, k: rows}},
						gemmOut{c: dk[kv+s0*KC:], ld: KC, alpha: 1, add: true})
					gemmSerial(n, HS, []gemmSeg{{a: gemmMat{data: p, ld: T, trans: true}, b: gemmMat{data: dout[qh+t0*C:], ld: C}, k: rows}},
						gemmOut{c: dv[kv+s0*KC:], ld: KC, alpha: 1, add: true})
				}
			}
		}
	})
}
