package kern

// The weight w of a linear layer is (M, K), Hugging Face nn.Linear, or, when
// conv1d is set, (K, M), GPT-2's Conv1D. Both compute out = inp·Wᵀ + bias
// with W the (M, K) matrix; only the memory layout differs.

// LinearRef computes out = inp·Wᵀ + bias.
//
// Shapes: out (N, M), inp (N, K), w (M, K) or (K, M) when conv1d, bias (M) or
// nil for no bias.
func LinearRef[F Float](out, inp, w, bias []F, N, K, M int, conv1d bool) {
	acc := make([]float64, M)
	for n := 0; n < N; n++ {
		x := inp[n*K : (n+1)*K]
		if conv1d {
			clear(acc)
			for k, xk := range x {
				axpy(acc, float64(xk), w[k*M:(k+1)*M])
			}
		} else {
			for m := range acc {
				acc[m] = dot(x, w[m*K:(m+1)*K])
			}
		}
		if bias != nil {
			for m := range acc {
				acc[m] += float64(bias[m])
			}
		}
		store(out[n*M:(n+1)*M], acc)
	}
}

// LinearGradInputRef computes dinp = dout·W.
//
// Shapes: dinp (N, K), dout (N, M), w (M, K) or (K, M) when conv1d.
func LinearGradInputRef[F Float](dinp, dout, w []F, N, K, M int, conv1d bool) {
	acc := make([]float64, K)
	for n := 0; n < N; n++ {
		g := dout[n*M : (n+1)*M]
		if conv1d {
			for k := range acc {
				acc[k] = dot(g, w[k*M:(k+1)*M])
			}
		} else {
			clear(acc)
			for m, gm := range g {
				axpy(acc, float64(gm), w[m*K:(m+1)*K])
			}
		}
		store(dinp[n*K:(n+1)*K], acc)
	}
}

// LinearGradWeightRef computes dW = doutᵀ·inp and stores it in the layout of
// w: dw (M, K), or (K, M) when conv1d.
//
// Shapes: dout (N, M), inp (N, K).
func LinearGradWeightRef[F Float](dw, dout, inp []F, N, K, M int, conv1d bool) {
	if conv1d {
		acc := make([]float64, M)
		for k := 0; k < K; k++ {
			clear(acc)
			for n := 0; n < N; n++ {
				axpy(acc, float64(inp[n*K+k]), dout[n*M:(n+1)*M])
			}
			store(dw[k*M:(k+1)*M], acc)
		}
		return
	}
	acc := make([]float64, K)
	for m := 0; m < M; m++ {
		clear(acc)
		for n := 0; n < N; n++ {
			axpy(acc, float64(dout[n*M+m]), inp[n*K:(n+1)*K])
		}
		store(dw[m*K:(m+1)*K], acc)
	}
}

// LinearGradBiasRef computes dbias[m] = Σₙ dout[n,m].
//
// Shapes: dbias (M), dout (N, M).
func LinearGradBiasRef[F Float](dbias, dout []F, N, M int) {
	acc := make([]float64, M)
	for n := 0; n < N; n++ {
		axpy(acc, 1, dout[n*M:(n+1)*M])
	}
	store(dbias[:M], acc)
}
