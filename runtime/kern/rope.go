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

// RoPERef rotates every head of every row by its position.
//
// Shapes: out, inp (N, NH·HS); pos (N), the position of each row. HS must be
// even. out may be inp (in place).
func RoPERef[F Float](out, inp []F, pos []int32, N, NH, HS int, theta float64) {
	rope(out, inp, pos, N, NH, HS, theta, 1)
}

// RoPEGradRef computes dinp from dout. A rotation's transpose is the rotation
// by the opposite angle, so this is RoPERef with −sin.
//
// Shapes: dinp, dout (N, NH·HS); pos (N). dinp may be dout (in place).
func RoPEGradRef[F Float](dinp, dout []F, pos []int32, N, NH, HS int, theta float64) {
	rope(dinp, dout, pos, N, NH, HS, theta, -1)
}

// rope rotates by sign·angle.
func rope[F Float](out, inp []F, pos []int32, N, NH, HS int, theta, sign float64) {
	half := HS / 2
	invFreq := make([]float64, half)
	for i := range invFreq {
		invFreq[i] = math.Pow(theta, -2*float64(i)/float64(HS))
	}
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
