package kern

import "math"

// Rotary position embedding in the Hugging Face llama convention
// (rotate_half): inside each head of size HS, element i pairs with i+HS/2 for
// i < HS/2 and the pair turns by the angle pos·theta^(−2i/HS):
//
//	out[i]      = x[i]·cos − x[i+HS/2]·sin
//	out[i+HS/2] = x[i+HS/2]·cos + x[i]·sin
//
// Angles, cosines and sines are computed in float64. Hugging Face computes the
// angles in float32, so at large positions it differs from this oracle by the
// rounding of pos·inv_freq.
//
// RoPE scaling (transformers' rope_type) changes only the inverse
// frequencies (RoPEInvFreq); the scaling argument of the kernels is one of
// the RoPE… constants, with factor, lowFreq, highFreq and origCtx its
// parameters (unused ones are zero).

// RoPE scaling kinds: the scaling argument of RoPE, RoPEGrad and their
// references. lower passes the same numbers (lower.RoPEScalingCode).
const (
	RoPEDefault = 0 // theta^(−2i/HS)
	RoPELinear  = 1 // divided by factor ("linear")
	RoPELlama3  = 2 // Llama 3.1's smooth interpolation ("llama3")
)

// RoPEInvFreq returns the HS/2 inverse frequencies of a head of size HS.
//
// RoPEDefault computes theta^(−2i/HS) in float64. The scaled kinds follow
// transformers' _compute_linear_scaling_rope_parameters and
// _compute_llama3_parameters step by step in float32, as transformers does:
// inv_freq = 1 / base^(float32(2i)/HS); linear divides it by factor;
// llama3 keeps wavelengths 2π/inv_freq under origCtx/highFreq, divides
// those over origCtx/lowFreq by factor, and between the two blends
// (1 − s)·inv_freq/factor + s·inv_freq with
// s = (origCtx/wavelen − lowFreq) / (highFreq − lowFreq).
func RoPEInvFreq(HS int, theta float64, scaling int, factor, lowFreq, highFreq float64, origCtx int) []float64 {
	half := HS / 2
	inv := make([]float64, half)
	if scaling == RoPEDefault {
		for i := range inv {
			inv[i] = math.Pow(theta, -2*float64(i)/float64(HS))
		}
		return inv
	}
	base := float64(float32(theta))
	f := float32(factor)
	lowWave := float64(origCtx) / lowFreq
	highWave := float64(origCtx) / highFreq
	for i := range inv {
		e := float32(2*i) / float32(HS)
		x := 1 / float32(math.Pow(base, float64(e)))
		switch scaling {
		case RoPELinear:
			x /= f
		case RoPELlama3:
			wave := (1 / x) * float32(2*math.Pi)
			if float64(wave) > lowWave {
				x /= f
			} else if float64(wave) >= highWave {
				s := ((1/wave)*float32(origCtx) - float32(lowFreq)) / float32(highFreq-lowFreq)
				x = (1-s)*x/f + s*x
			}
		}
		inv[i] = float64(x)
	}
	return inv
}

// RoPERef rotates every head of every row by its position.
//
// Shapes: out, inp (N, NH·HS); pos (N), the position of each row. HS must be
// even. out may be inp (in place).
func RoPERef[F Float](out, inp []F, pos []int32, N, NH, HS int, theta float64, scaling int, factor, lowFreq, highFreq float64, origCtx int) {
	rope(out, inp, pos, N, NH, HS, RoPEInvFreq(HS, theta, scaling, factor, lowFreq, highFreq, origCtx), 1)
}

// RoPEGradRef computes dinp from dout. A rotation's transpose is the rotation
// by the opposite angle, so this is RoPERef with −sin.
//
// Shapes: dinp, dout (N, NH·HS); pos (N). dinp may be dout (in place).
func RoPEGradRef[F Float](dinp, dout []F, pos []int32, N, NH, HS int, theta float64, scaling int, factor, lowFreq, highFreq float64, origCtx int) {
	rope(dinp, dout, pos, N, NH, HS, RoPEInvFreq(HS, theta, scaling, factor, lowFreq, highFreq, origCtx), -1)
}

// rope rotates by sign·angle.
func rope[F Float](out, inp []F, pos []int32, N, NH, HS int, invFreq []float64, sign float64) {
	half := HS / 2
	cos := make([]float64, half)
	sin := make([]float64, half)
	C := NH * HS
	for n := 0; n < N; n++ {
		p := float64(pos[n])
		for i, f := range invFreq {
			s, c := math.Sincos(p * f)
			cos[i], sin[i] = c, sign*s
		}
		for h := 0; h < NH; h++ {
			o := n*C + h*HS
			x := inp[o : o+HS]
			y := out[o : o+HS]
			for i := 0; i < half; i++ {
				a, b := float64(x[i]), float64(x[i+half])
				y[i] = F(a*cos[i] - b*sin[i])
				y[i+half] = F(b*cos[i] + a*sin[i])
			}
		}
	}
}
