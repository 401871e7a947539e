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
	// Consecutive branches on consecutive rows with the same adapter and
	// weight (a prompt's rows, or neighbouring requests on one adapter)
	// run as one segment: one product over its rows reads A and B once
	// (the segmented, SGMV-style gather). Segments stay under gemmSmallN
	// rows, where the product reads its operands in place and computes each
	// row as it would alone: a row's bits do not depend on its neighbours.
	run := func(i int) int { // the end of the segment that starts at i
		j := i + 1
		for j < len(a) && j-i < gemmSmallN-1 && row[j] == row[j-1]+1 && weight[j] == weight[i] && same(a[j], a[i]) && same(b[j], b[i]) {
			j++
		}
		return j
	}
	most := 0
	for i := 0; i < len(a); i = run(i) {
		most = max(most, run(i)-i)
	}
	branch := getF32(most * M)
	defer putF32(branch)
	for i := 0; i < len(a); {
		j := run(i)
		r, n := int(row[i]), j-i
		br, o := (*branch)[:n*M], out[r*M:(r+n)*M]
		// The weight folds into the scale (exact for weight 1).
		LoRA(br, inp[r*K:(r+n)*K], a[i], b[i], nil, n, K, M, R, scale*weight[i])
		Add(o, o, br, n*M)
		i = j
	}
}

// same says whether x and y are the same slice of memory.
func same(x, y []float32) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}
