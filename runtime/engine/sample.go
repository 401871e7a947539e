package engine

import (
	"cmp"
	"math"
	"slices"
)

// Sampler chooses the next token from a row of logits.
//
// Temperature ≤ 0 is greedy decoding. Otherwise the logits are divided by
// Temperature, TopK > 0 keeps only the TopK largest, TopP in (0, 1) keeps
// the smallest set of most likely tokens whose probability reaches TopP
// (nucleus sampling, Holtzman et al. 2020), and one token is drawn from
// what remains, renormalised. TopK 0 and TopP 0 or ≥ 1 switch those filters
// off. The filters apply in the order Hugging Face applies them:
// temperature, then top-k, then top-p.
type Sampler struct {
	Temperature float64 // divides the logits; ≤ 0 means greedy
	TopK        int     // keep the TopK most likely tokens; 0 keeps all
	TopP        float64 // keep the nucleus of mass TopP; 0 or ≥ 1 keeps all
	// Stop ends generation after any of these tokens (it is kept in the
	// output), as an end-of-sequence or end-of-turn token does.
	Stop []int32
}

// Sample returns the chosen token id. It draws exactly one Float64 from r
// unless the choice is forced (greedy, TopK 1, or one candidate left after
// the filters), when it draws nothing; either way the result is a function
// of the logits and r's state alone.
//
// It never panics on the values: NaN counts as −∞, a +∞ logit wins outright
// (the lowest such index), and a row with no finite logit yields the argmax,
// which is 0 when all are −∞ or NaN. An empty row yields 0.
func (s Sampler) Sample(logits []float32, r *RNG) int32 {
	best, bestVal := sampleArgmax(logits)
	invT := 1 / s.Temperature
	// A temperature so small that 1/T overflows is greedy in the limit,
	// and would otherwise give the argmax the weight exp(0·∞) = NaN.
	if !(s.Temperature > 0) || math.IsInf(invT, 1) || s.TopK == 1 || math.IsInf(bestVal, 0) {
		return int32(best)
	}

	type cand struct {
		id int32
		w  float64 // unnormalised probability exp((logit−max)/T)
	}
	cands := make([]cand, 0, len(logits))
	for i, l := range logits {
		x := float64(l)
		if x != x || math.IsInf(x, -1) {
			continue
		}
		cands = append(cands, cand{int32(i), math.Exp((x - bestVal) * invT)})
	}
	filtering := (s.TopK > 0 && s.TopK < len(cands)) || (s.TopP > 0 && s.TopP < 1)
	if filtering {
		// Ties go to the lower id so the kept set does not depend on the
		// sort's whim.
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.w, a.w); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		if s.TopK > 0 && s.TopK < len(cands) {
			cands = cands[:s.TopK]
		}
		if s.TopP > 0 && s.TopP < 1 {
			var total float64
			for _, c := range cands {
				total += c.w
			}
			var cum float64
			for i, c := range cands {
				cum += c.w
				// Keep the token that crosses TopP, as Hugging Face does.
				if cum >= s.TopP*total {
					cands = cands[:i+1]
					break
				}
			}
		}
	}
	if len(cands) == 1 {
		return cands[0].id
	}
	var total float64
	for _, c := range cands {
		total += c.w
	}
	u := r.Float64() * total
	var cum float64
	last := cands[0].id
	for _, c := range cands {
		cum += c.w
		if u < cum {
			return c.id
		}
		if c.w > 0 {
			last = c.id
		}
	}
	// Float64()·total can round up to total itself; the draw then belongs
	// to the last token with positive weight (the argmax has weight 1).
	return last
}

// sampleArgmax returns the index and value of the largest logit, the lowest
// index on ties, with NaN ordered below −∞; (0, −∞) when no logit is above
// −∞ or the row is empty.
func sampleArgmax(logits []float32) (int, float64) {
	best, bestVal := 0, math.Inf(-1)
	for i, l := range logits {
		if x := float64(l); x > bestVal {
			best, bestVal = i, x
		}
	}
	return best, bestVal
}
