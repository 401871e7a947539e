package kern

// LoRALinearRows computes out = inp·Wᵀ + bias for every row at once, then
// adds each branch i to its row row[i]: weight[i]·scale·(inp_r·A_iᵀ)·B_iᵀ.
// The base GEMM runs once over rows that use different adapters (a
// BGMV-style gather); a row has one branch per adapter of its weighted mix
// (one of weight 1 for a plain adapter), and a row with none (the base
// alone) pays nothing for the others' adapters.
//
// Shapes: out (N, M); inp (N, K); w (M, K), or (K, M) when conv1d; bias
// (M) or nil; for each branch, a[i] (R, K), b[i] (M, R), row[i] in [0, N).
func LoRALinearRows(out, inp, w, bias []float32, a, b [][]float32, row []int32, weight []float32, N, K, M, R int, scale float32, conv1d bool) {
	Linear(out, inp, w, bias, N, K, M, conv1d)
	if len(a) == 0 {
		return
	}
	branch := getF32(M)
	defer putF32(branch)
	for i := range a {
		// The branch of one row is two short products (R is small); the
		// one-row LoRA kernel runs them with the SIMD row kernels. The
		// weight folds into the scale (exact for weight 1).
		r := int(row[i])
		o := out[r*M : (r+1)*M]
		LoRA(*branch, inp[r*K:(r+1)*K], a[i], b[i], nil, 1, K, M, R, scale*weight[i])
		Add(o, o, *branch, M)
	}
}
