package kern

// DropoutMask fills mask with 0 (probability p) or 1/(1−p) (otherwise), the
// multipliers of inverted dropout, for p in [0, 1); p ≥ 1 fills zeros.
//
// The mask is a pure function of (p, seed, stream, len(mask)) and of nothing
// else: element i draws from a counter-based generator, splitmix64 of a key
// mixed from seed and stream plus i, so the same arguments give the same mask
// on every machine and in every order of evaluation, and no global random
// state is touched. Use stream to separate the masks of different layers and
// steps under one seed.
func DropoutMask[F Float](mask []F, p float64, seed, stream uint64) {
	if p >= 1 {
		clear(mask)
		return
	}
	keep := F(1 / (1 - p))
	// A uniform u in [0, 1) with 53 random bits is dropped when u < p, i.e.
	// when its top 53 bits are below p·2⁵³; both sides are exact in float64.
	threshold := p * (1 << 53)
	key := mix64(seed ^ mix64(stream+splitmixGamma))
	// Element i depends on i alone, so the work splits over cores with no
	// effect on the result.
	parallelRows(len(mask), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			u := mix64(key + uint64(i)*splitmixGamma)
			if float64(u>>11) < threshold {
				mask[i] = 0
			} else {
				mask[i] = keep
			}
		}
	})
}

// splitmixGamma is 2⁶⁴/φ, the increment of splitmix64.
const splitmixGamma = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection of
// uint64 whose outputs for consecutive inputs look independent.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
