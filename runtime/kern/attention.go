package kern

import "math"

// Causal self-attention with grouped-query heads. q and out are (B, T, NH·HS);
// k and v are (B, T, KVH·HS). Query head h reads key/value head h/(NH/KVH),
// like Hugging Face repeat_kv, so KVH must divide NH (KVH = NH is plain
// multi-head attention). Scores are scaled by 1/sqrt(HS) and token t attends to
// tokens 0..t of its own sequence; with a sliding window W > 0 (Mistral's
// sliding_window) only to the last W of them, t−W+1..t (W = 0: no window).
// Masked keys get probability exactly 0.
//
// scale multiplies the scores (0: 1/sqrt(HS); Gemma 2 uses
// query_pre_attn_scalar^−½); softcap > 0 caps them as Gemma 2 does,
// score ← softcap·tanh(score/softcap), before the mask and the softmax.

// attnScale is the score scale: 1/√HS unless set.
func attnScale(scale float64, HS int) float64 {
	if scale == 0 {
		return 1 / math.Sqrt(float64(HS))
	}
	return scale
}

// softcap returns cap·tanh(x/cap) and its derivative 1 − tanh², or x and 1
// when cap is 0.
func softcap(x, cap float64) (float64, float64) {
	if cap == 0 {
		return x, 1
	}
	t := math.Tanh(x / cap)
	return cap * t, 1 - t*t
}

// windowStart is the first key query t attends to under window W.
func windowStart(t, W int) int {
	if W > 0 && t-W+1 > 0 {
		return t - W + 1
	}
	return 0
}

// AttentionRef computes out = softmax(q·kᵀ/sqrt(HS) + causal mask)·v.
//
// Shapes: out, q (B, T, NH·HS); k, v (B, T, KVH·HS). Scratch: O(T + HS).
func AttentionRef[F Float](out, q, k, v []F, B, T, NH, KVH, HS, W int, scale, cap float64) {
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	scale = attnScale(scale, HS)
	p := make([]float64, T)
	acc := make([]float64, HS)
	for b := 0; b < B; b++ {
		for h := 0; h < NH; h++ {
			kv := b*T*KC + h/group*HS // key/value head of h, at time 0
			for t := 0; t < T; t++ {
				qo := (b*T+t)*C + h*HS
				causalProbs(p[:t+1], windowStart(t, W), q[qo:qo+HS], k[kv:], KC, scale, cap)
				clear(acc)
				for s, ps := range p[:t+1] {
					axpy(acc, ps, v[kv+s*KC:])
				}
				store(out[qo:qo+HS], acc)
			}
		}
	}
}

// AttentionGradRef computes dq, dk and dv from dout, recomputing the softmax.
// It overwrites dq, dk and dv.
//
// Shapes: dq, dout, q (B, T, NH·HS); dk, dv, k, v (B, T, KVH·HS).
// Scratch: O(T·NH/KVH + HS).
//
// With P the attention probabilities, dP = dout·vᵀ and D[t] = Σₛ P[t,s]·dP[t,s],
// the score gradient is dS = P⊙(dP − D). A first sweep over queries writes dq
// and keeps each row's softmax max, sum and D; a second sweep over keys
// rebuilds P and dS column by column, so that every dk and dv row is summed in
// float64 (over queries and over the query heads sharing it) without a
// (T, KVH·HS) float64 buffer.
func AttentionGradRef[F Float](dq, dk, dv, dout, q, k, v []F, B, T, NH, KVH, HS, W int, scale, cap float64) {
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	scale = attnScale(scale, HS)
	p := make([]float64, T)
	dp := make([]float64, T)
	accK := make([]float64, HS)
	accV := make([]float64, HS)
	// Per query head of the group and query time: softmax max, softmax sum, D.
	rowMax := make([]float64, group*T)
	rowSum := make([]float64, group*T)
	rowD := make([]float64, group*T)
	for b := 0; b < B; b++ {
		for g := 0; g < KVH; g++ {
			kv := b*T*KC + g*HS // key/value head g, at time 0
			for j := 0; j < group; j++ {
				h := g*group + j
				for t := 0; t < T; t++ {
					qo := (b*T+t)*C + h*HS
					mx, sum := causalProbs(p[:t+1], windowStart(t, W), q[qo:qo+HS], k[kv:], KC, scale, cap)
					do := dout[qo : qo+HS]
					var d float64
					for s, ps := range p[:t+1] {
						dp[s] = dot(do, v[kv+s*KC:])
						d += ps * dp[s]
					}
					clear(accK)
					for s, ps := range p[:t+1] {
						_, dc := softcap(scale*dot(q[qo:qo+HS], k[kv+s*KC:]), cap)
						axpy(accK, scale*ps*(dp[s]-d)*dc, k[kv+s*KC:])
					}
					store(dq[qo:qo+HS], accK)
					rowMax[j*T+t], rowSum[j*T+t], rowD[j*T+t] = mx, sum, d
				}
			}
			for s := 0; s < T; s++ {
				ko := kv + s*KC
				ks, vs := k[ko:ko+HS], v[ko:ko+HS]
				clear(accK)
				clear(accV)
				for j := 0; j < group; j++ {
					h := g*group + j
					end := T
					if W > 0 {
						end = min(T, s+W) // queries whose window holds key s
					}
					for t := s; t < end; t++ {
						qo := (b*T+t)*C + h*HS
						qt, do := q[qo:qo+HS], dout[qo:qo+HS]
						i := j*T + t
						c, dc := softcap(scale*dot(qt, ks), cap)
						ps := math.Exp(c-rowMax[i]) / rowSum[i]
						ds := ps * (dot(do, vs) - rowD[i]) * dc
						axpy(accK, scale*ds, qt)
						axpy(accV, ps, do)
					}
				}
				store(dk[ko:ko+HS], accK)
				store(dv[ko:ko+HS], accV)
			}
		}
	}
}

// causalProbs sets p[s] = softmax over lo ≤ s < len(p) of the score
// softcap(scale·qt·k_s), where k_s starts at k[s*stride], and p[s] = 0 for
// s < lo; it returns the max score and the sum of exp(score−max), so that
// p[s] = exp(score_s−max)/sum.
func causalProbs[F Float](p []float64, lo int, qt, k []F, stride int, scale, cap float64) (mx, sum float64) {
	clear(p[:lo])
	p = p[lo:]
	k = k[lo*stride:]
	mx = math.Inf(-1)
	for s := range p {
		p[s], _ = softcap(scale*dot(qt, k[s*stride:]), cap)
		mx = max(mx, p[s])
	}
	for s := range p {
		p[s] = math.Exp(p[s] - mx)
		sum += p[s]
	}
	for s := range p {
		p[s] /= sum
	}
	return mx, sum
}
