package kern

// The LoRA branch of a linear layer with frozen weight W (M, K):
//
//	out = scale·((inp⊙mask)·Aᵀ)·Bᵀ      A (R, K), B (M, R)
//
// scale is alpha/R (alpha/√R for rsLoRA). mask is the dropout mask, nil for no
// dropout, else N·K multipliers from DropoutMask. The branch is returned on its
// own: callers add it to the base layer's output.

// LoRARef computes out = scale·((inp⊙mask)·Aᵀ)·Bᵀ.
//
// Shapes: out (N, M); inp (N, K); a (R, K); b (M, R); mask (N, K) or nil.
// Scratch: the (N, R) float64 product (inp⊙mask)·Aᵀ.
func LoRARef[F Float](out, inp, a, b, mask []F, N, K, M, R int, scale F) {
	t := loraDown(inp, a, mask, N, K, R)
	s := float64(scale)
	for n := 0; n < N; n++ {
		tn := t[n*R : (n+1)*R]
		o := out[n*M : (n+1)*M]
		for m := range o {
			o[m] = F(s * dot(tn, b[m*R:(m+1)*R]))
		}
	}
}

// LoRAGradRef computes the gradients of the LoRA branch from dout:
//
//	dA = scale·(dout·B)ᵀ·(inp⊙mask)
//	dB = scale·doutᵀ·((inp⊙mask)·Aᵀ)
//	dinp = scale·((dout·B)·A)⊙mask
//
// dinp may be nil to skip the input gradient (first layer, frozen input).
// dinp is overwritten, not added to: callers add it to the base layer's dinp.
//
// Shapes: da (R, K); db (M, R); dinp (N, K) or nil; dout (N, M); inp (N, K);
// a (R, K); b (M, R); mask (N, K) or nil. Scratch: two (N, R) float64 products.
func LoRAGradRef[F Float](da, db, dinp, dout, inp, a, b, mask []F, N, K, M, R int, scale F) {
	s := float64(scale)
	t := loraDown(inp, a, mask, N, K, R)

	// gb = dout·B, (N, R).
	gb := make([]float64, N*R)
	for n := 0; n < N; n++ {
		g := gb[n*R : (n+1)*R]
		for m, d := range dout[n*M : (n+1)*M] {
			axpy(g, float64(d), b[m*R:(m+1)*R])
		}
	}

	accK := make([]float64, K)
	for r := 0; r < R; r++ {
		clear(accK)
		for n := 0; n < N; n++ {
			g := s * gb[n*R+r]
			x := inp[n*K : (n+1)*K]
			if mask == nil {
				axpy(accK, g, x)
				continue
			}
			mk := mask[n*K : (n+1)*K]
			for k, v := range x {
				accK[k] += g * float64(v) * float64(mk[k])
			}
		}
		store(da[r*K:(r+1)*K], accK)
	}

	accR := make([]float64, R)
	for m := 0; m < M; m++ {
		clear(accR)
		for n := 0; n < N; n++ {
			d := s * float64(dout[n*M+m])
			for r, v := range t[n*R : (n+1)*R] {
				accR[r] += d * v
			}
		}
		store(db[m*R:(m+1)*R], accR)
	}

	if dinp == nil {
		return
	}
	for n := 0; n < N; n++ {
		clear(accK)
		for r, g := range gb[n*R : (n+1)*R] {
			axpy(accK, s*g, a[r*K:(r+1)*K])
		}
		if mask != nil {
			for k, mk := range mask[n*K : (n+1)*K] {
				accK[k] *= float64(mk)
			}
		}
		store(dinp[n*K:(n+1)*K], accK)
	}
}

// loraDown returns (inp⊙mask)·Aᵀ, (N, R), in float64.
func loraDown[F Float](inp, a, mask []F, N, K, R int) []float64 {
	t := make([]float64, N*R)
	for n := 0; n < N; n++ {
		x := inp[n*K : (n+1)*K]
		for r := 0; r < R; r++ {
			ar := a[r*K : (r+1)*K]
			if mask == nil {
				t[n*R+r] = dot(x, ar)
				continue
			}
			mk := mask[n*K : (n+1)*K]
			var sum float64
			for k, v := range x {
				sum += float64(v) * float64(mk[k]) * float64(ar[k])
			}
			t[n*R+r] = sum
		}
	}
	return t
}

// LoRAMergeRef computes out = w + scale·B·A in the layout of w: (M, K), or (K, M)
// when conv1d (see LinearRef). out may be w (in-place merge). Unmerging
// is LoRAMergeRef with −scale; it restores w up to rounding.
//
// Shapes: out, w (M, K) or (K, M); a (R, K); b (M, R).
func LoRAMergeRef[F Float](out, w, a, b []F, K, M, R int, scale F, conv1d bool) {
	s := float64(scale)
	for m := 0; m < M; m++ {
		bm := b[m*R : (m+1)*R]
		for k := 0; k < K; k++ {
			var ba float64
			for r, v := range bm {
				ba += float64(v) * float64(a[r*K+k])
			}
			i := m*K + k
			if conv1d {
				i = k*M + m
			}
			out[i] = F(float64(w[i]) + s*ba)
		}
	}
}

// LoRALinearRowsRef is the reference of LoRALinearRows: the base product
// over all rows, then each branch added to its row.
func LoRALinearRowsRef[F Float](out, inp, w, bias []F, a, b [][]F, row []int32, weight []F, N, K, M, R int, scale F, conv1d bool) {
	LinearRef(out, inp, w, bias, N, K, M, conv1d)
	branch := make([]F, M)
	for i := range a {
		r := int(row[i])
		LoRARef(branch, inp[r*K:(r+1)*K], a[i], b[i], nil, 1, K, M, R, scale*weight[i])
		AddRef(out[r*M:(r+1)*M], out[r*M:(r+1)*M], branch, M)
	}
}
