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
	var tbuf [64]float32
	t := tbuf[:0]
	if R > len(tbuf) {
		t = make([]float32, R)
	}
	t = t[:R]
	for r := range N {
		ar, br := a[r], b[r]
		if ar == nil {
			continue
		}
		x := inp[r*K : (r+1)*K]
		for j := range R {
			aj := ar[j*K : (j+1)*K]
			var s float32
			for i, v := range x {
				s += v * aj[i]
			}
			t[j] = scale * s
		}
		o := out[r*M : (r+1)*M]
		for m := range M {
			bm := br[m*R : (m+1)*R]
			var s float32
			for j, v := range t {
				s += v * bm[j]
			}
			o[m] += s
		}
	}
}
