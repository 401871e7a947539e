package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// RNG is xoshiro256** (Blackman and Vigna, 2018): 256 bits of state, period
// 2²⁵⁶−1, four xors, two shifts, a rotate and two multiplies per 64-bit
// output. It is chosen over math/rand/v2 because its whole state is four
// words that State writes out and SetState reads back, so a run resumed from
// a checkpoint draws exactly the numbers the uninterrupted run would have.
//
// The state is the only thing a draw reads or writes: there is no cached
// second normal deviate and no global source. An RNG is not safe for
// concurrent use; give each goroutine its own.
type RNG struct {
	s [4]uint64
}

// rngStateSize is the length of State's encoding: four little-endian words.
const rngStateSize = 32

// NewRNG returns a generator seeded from seed. The four state words are
// successive splitmix64 outputs, as the xoshiro authors recommend, so nearby
// seeds (0, 1, 2, …) start far apart. The splitmix64 finaliser is a
// bijection, so of four distinct inputs at most one maps to zero: no seed
// yields the all-zero state that xoshiro cannot leave.
func NewRNG(seed uint64) *RNG {
	r := &RNG{}
	x := seed
	for i := range r.s {
		x += rngGamma
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		r.s[i] = z ^ z>>31
	}
	return r
}

// rngGamma is 2⁶⁴/φ, the splitmix64 increment.
const rngGamma = 0x9e3779b97f4a7c15

// Uint64 returns 64 uniformly distributed random bits.
func (r *RNG) Uint64() uint64 {
	s := &r.s
	out := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return out
}

// Float64 returns a uniform value in [0, 1): the top 53 bits of a draw, the
// precision of a float64 mantissa, so every result is exact and 1 is never
// returned.
func (r *RNG) Float64() float64 {
	return float64(r.Uint64()>>11) * (1.0 / (1 << 53))
}

// NormFloat64 returns a standard normal deviate by the Box–Muller transform.
// It consumes exactly two draws and discards the second deviate Box–Muller
// could give, so the generator's state stays the four words State saves.
func (r *RNG) NormFloat64() float64 {
	// 1−u lies in (0, 1], keeping the logarithm finite.
	u1 := 1 - r.Float64()
	u2 := r.Float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// IntN returns a uniform value in [0, n). It panics if n ≤ 0, which is a
// caller's bug, not a property of the data.
//
// Lemire's multiply-and-reject method (2019) keeps it unbiased: the high
// word of draw·n is the result, and the few draws whose low word falls in the
// 2⁶⁴ mod n values that would over-represent small results are redrawn.
func (r *RNG) IntN(n int) int {
	if n <= 0 {
		panic(fmt.Sprintf("engine: RNG.IntN(%d): n must be positive", n))
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		// -un % un is 2⁶⁴ mod n; computed only on this rare path.
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// State returns the generator's state as 32 bytes (four little-endian
// words). The encoding is fixed, so checkpoints are portable across machines.
func (r *RNG) State() []byte {
	b := make([]byte, 0, rngStateSize)
	for _, w := range r.s {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

// SetState restores a state written by State; the generator then continues
// the sequence the saved one would have produced. It fails, leaving r
// unchanged, if b is not 32 bytes or is all zeros (a state xoshiro never
// reaches and cannot leave).
func (r *RNG) SetState(b []byte) error {
	if len(b) != rngStateSize {
		return fmt.Errorf("engine: RNG state is %d bytes; want %d", len(b), rngStateSize)
	}
	var s [4]uint64
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if s == [4]uint64{} {
		return fmt.Errorf("engine: RNG state is all zeros; it must come from RNG.State")
	}
	r.s = s
	return nil
}
