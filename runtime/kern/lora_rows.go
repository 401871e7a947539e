package kern

// LoRALinearRows computes out = inp·Wᵀ + bias for every row at once, then
// adds to each row r its own adapter's branch scale·(inp_r·A_rᵀ)·B_rᵀ: the
// base GEMM runs once over rows that use different adapters (a BGMV-style
// gather), and a row whose a[r] is nil (the base alone) pays nothing for
// the others' adapters.
//
// Shapes: out (N, M); inp (N, K); w (M, K), or (K, M) when conv1d; bias
// (M) or nil; a[r] (R, K) and b[r] (M, R), or nil, for each of the N rows.
func LoRALinearRows(out, inp, w, bias []float32, a, b [][]float32, N, K, M, R int, scale float32, conv1d bool) {
	Linear(out, inp, w, bias, N, K, M, conv1d)
	branch := getF32(M)
	defer putF32(branch)
	for r := range N {
		if a[r] == nil {
			continue
		}
		// The branch of one row is two short products (R is small); the
		// one-row LoRA kernel runs them with the SIMD row kernels.
		o := out[r*M : (r+1)*M]
		LoRA(*branch, inp[r*K:(r+1)*K], a[r], b[r], nil, 1, K, M, R, scale)
		Add(o, o, *branch, M)
	}
}
