package kern

import "math"

// Elementwise kernels. Each rounds its result to F once (the transcendental
// ones compute in float64); every output may be one of its inputs (in place).

// sqrt2OverPi is √(2/π), the constant of the tanh approximation of GELU.
var sqrt2OverPi = math.Sqrt(2 / math.Pi)

// GELURef computes the tanh approximation of GELU used by GPT-2 (Hugging
// Face gelu_new): out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
//
// Shapes: out, inp (N).
func GELURef[F Float](out, inp []F, N int) {
	out = out[:N]
	for i, v := range inp[:N] {
		x := float64(v)
		out[i] = F(0.5 * x * (1 + math.Tanh(sqrt2OverPi*(x+0.044715*x*x*x))))
	}
}

// GELUGradRef computes dinp = dout·GELU′(inp) for the tanh approximation.
//
// Shapes: dinp, dout, inp (N).
func GELUGradRef[F Float](dinp, dout, inp []F, N int) {
	dinp, dout = dinp[:N], dout[:N]
	for i, v := range inp[:N] {
		x := float64(v)
		th := math.Tanh(sqrt2OverPi * (x + 0.044715*x*x*x))
		du := sqrt2OverPi * (1 + 3*0.044715*x*x)
		dinp[i] = F(float64(dout[i]) * (0.5*(1+th) + 0.5*x*(1-th*th)*du))
	}
}

// sigmoid returns 1/(1+e^−x); for very negative x, e^−x overflows to +Inf and
// the result is the correct limit 0.
func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// SiLURef computes out = x·sigmoid(x).
//
// Shapes: out, inp (N).
func SiLURef[F Float](out, inp []F, N int) {
	out = out[:N]
	for i, v := range inp[:N] {
		x := float64(v)
		out[i] = F(x * sigmoid(x))
	}
}

// SiLUGradRef computes dinp = dout·σ(x)·(1 + x·(1−σ(x))).
//
// Shapes: dinp, dout, inp (N).
func SiLUGradRef[F Float](dinp, dout, inp []F, N int) {
	dinp, dout = dinp[:N], dout[:N]
	for i, v := range inp[:N] {
		x := float64(v)
		s := sigmoid(x)
		dinp[i] = F(float64(dout[i]) * s * (1 + x*(1-s)))
	}
}

// AddRef computes out = a + b.
//
// Shapes: out, a, b (N).
func AddRef[F Float](out, a, b []F, N int) {
	out, b = out[:N], b[:N]
	for i, x := range a[:N] {
		out[i] = x + b[i]
	}
}

// MulRef computes out = a⊙b.
//
// Shapes: out, a, b (N).
// ScaleRef computes out = inp·scale.
//
// Shapes: out, inp (N). out may be inp.
func ScaleRef[F Float](out, inp []F, N int, scale F) {
	out = out[:N]
	for i, x := range inp[:N] {
		out[i] = x * scale
	}
}

// SoftcapRef computes out = cap·tanh(inp/cap) (Gemma 2's logit cap).
//
// Shapes: out, inp (N).
func SoftcapRef[F Float](out, inp []F, N int, cap float64) {
	for i, x := range inp[:N] {
		out[i] = F(cap * math.Tanh(float64(x)/cap))
	}
}

// SoftcapGradRef computes dinp = dout·(1 − tanh²(inp/cap)).
//
// Shapes: dinp, dout, inp (N).
func SoftcapGradRef[F Float](dinp, dout, inp []F, N int, cap float64) {
	for i, x := range inp[:N] {
		t := math.Tanh(float64(x) / cap)
		dinp[i] = F(float64(dout[i]) * (1 - t*t))
	}
}

func MulRef[F Float](out, a, b []F, N int) {
	out, b = out[:N], b[:N]
	for i, x := range a[:N] {
		out[i] = x * b[i]
	}
}
