package kern

import "math"

// moments returns the mean of x and 1/sqrt(var+eps) with the biased variance
// (divided by C, like torch.nn.LayerNorm), computed in two passes for
// stability.
func moments[F Float](x []F, eps float64) (mean, rstd float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	var variance float64
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	variance /= float64(len(x))
	return mean, 1 / math.Sqrt(variance+eps)
}

// LayerNormRef computes out = (x−mean)/sqrt(var+eps)·gain + bias over
// each row, with the biased variance, like torch.nn.LayerNorm.
//
// Shapes: out, inp (N, C); gain (C); bias (C) or nil for no bias.
func LayerNormRef[F Float](out, inp, gain, bias []F, N, C int, eps float64) {
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		o := out[n*C : (n+1)*C]
		mean, rstd := moments(x, eps)
		for c, v := range x {
			y := (float64(v) - mean) * rstd * float64(gain[c])
			if bias != nil {
				y += float64(bias[c])
			}
			o[c] = F(y)
		}
	}
}

// LayerNormGradRef computes dinp from dout, recomputing each row's mean and
// rstd from inp. With x̂ = (x−mean)·rstd and g = dout⊙gain:
//
//	dinp = rstd·(g − mean(g) − x̂·mean(g⊙x̂))
//
// Shapes: dinp, dout, inp (N, C); gain (C).
func LayerNormGradRef[F Float](dinp, dout, inp, gain []F, N, C int, eps float64) {
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		d := dout[n*C : (n+1)*C]
		mean, rstd := moments(x, eps)
		var mg, mgx float64
		for c, v := range x {
			g := float64(d[c]) * float64(gain[c])
			mg += g
			mgx += g * (float64(v) - mean) * rstd
		}
		mg /= float64(C)
		mgx /= float64(C)
		di := dinp[n*C : (n+1)*C]
		for c, v := range x {
			g := float64(d[c]) * float64(gain[c])
			xhat := (float64(v) - mean) * rstd
			di[c] = F(rstd * (g - mg - xhat*mgx))
		}
	}
}

// LayerNormGradParamsRef computes dgain[c] = Σₙ dout[n,c]·x̂[n,c] and
// dbias[c] = Σₙ dout[n,c], recomputing x̂ from inp. dbias may be nil when the
// layer has no bias.
//
// Shapes: dgain, dbias (C); dout, inp (N, C).
func LayerNormGradParamsRef[F Float](dgain, dbias, dout, inp []F, N, C int, eps float64) {
	accG := make([]float64, C)
	accB := make([]float64, C)
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		d := dout[n*C : (n+1)*C]
		mean, rstd := moments(x, eps)
		for c, v := range x {
			accG[c] += float64(d[c]) * (float64(v) - mean) * rstd
			accB[c] += float64(d[c])
		}
	}
	store(dgain[:C], accG)
	if dbias != nil {
		store(dbias[:C], accB)
	}
}

// rmsScale returns 1/sqrt(mean(x²)+eps).
func rmsScale[F Float](x []F, eps float64) float64 {
	var ms float64
	for _, v := range x {
		ms += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ms/float64(len(x))+eps)
}

// RMSNormRef computes out = x·rsqrt(mean(x²)+eps)·(offset + gain) over each
// row, like Hugging Face LlamaRMSNorm (offset 0) and GemmaRMSNorm (offset 1).
//
// Shapes: out, inp (N, C); gain (C).
func RMSNormRef[F Float](out, inp, gain []F, N, C int, eps, offset float64) {
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		o := out[n*C : (n+1)*C]
		r := rmsScale(x, eps)
		for c, v := range x {
			o[c] = F(float64(v) * r * (offset + float64(gain[c])))
		}
	}
}

// RMSNormGradRef computes dinp from dout, recomputing r = rsqrt(mean(x²)+eps)
// from inp. With g = dout⊙gain:
//
//	dinp = r·g − r³·x·mean(g⊙x)
//
// Shapes: dinp, dout, inp (N, C); gain (C).
func RMSNormGradRef[F Float](dinp, dout, inp, gain []F, N, C int, eps, offset float64) {
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		d := dout[n*C : (n+1)*C]
		r := rmsScale(x, eps)
		var mgx float64
		for c, v := range x {
			mgx += float64(d[c]) * (offset + float64(gain[c])) * float64(v)
		}
		mgx /= float64(C)
		di := dinp[n*C : (n+1)*C]
		for c, v := range x {
			g := float64(d[c]) * (offset + float64(gain[c]))
			di[c] = F(r*g - r*r*r*float64(v)*mgx)
		}
	}
}

// RMSNormGradGainRef computes dgain[c] = Σₙ dout[n,c]·x[n,c]·r[n], recomputing
// r from inp.
//
// Shapes: dgain (C); dout, inp (N, C).
func RMSNormGradGainRef[F Float](dgain, dout, inp []F, N, C int, eps float64) {
	acc := make([]float64, C)
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		d := dout[n*C : (n+1)*C]
		r := rmsScale(x, eps)
		for c, v := range x {
			acc[c] += float64(d[c]) * float64(v) * r
		}
	}
	store(dgain[:C], acc)
}
