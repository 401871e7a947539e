package kern

// Scratch accounting: how much temporary memory a kernel call takes beyond
// its arguments (packed GEMM panels, copied rows, tiles, attention's score
// blocks, LoRA intermediates), so that `lorac check` can add the largest
// call's scratch to a graph's planned memory. The figures follow the code of
// this package at the kernel variant in use and are upper bounds: the pools
// round a buffer up by at most a quarter, which is included.

// ScratchBytes returns the scratch of one call of the named kernel (a
// runtime/kern entry point, as the lowering table names them) at the given
// dimensions, with the given number of worker goroutines; dim returns a
// dimension by its parameter name in the kernel's signature ("N", "K", …)
// and 0 for one the kernel does not have. Kernels without scratch, or not
// named here, count 0.
func ScratchBytes(kernel string, dim func(string) int, workers int) int64 {
	workers = max(workers, 1)
	N, K, M, R := dim("N"), dim("K"), dim("M"), dim("R")
	var floats int
	switch kernel {
	case "Linear":
		floats = gemmScratch(N, M, K, workers)
	case "LinearGradInput":
		floats = gemmScratch(N, K, M, workers)
	case "LinearGradWeight":
		floats = max(gemmScratch(M, K, N, workers), gemmScratch(K, M, N, workers))
	case "LoRALinear", "LoRA":
		// T (N, R) when the graph keeps none, then the down-projection and
		// the fused product one after the other.
		floats = pooled(N*R) + max(gemmScratch(N, R, K, workers), gemmScratch(N, M, K+R, workers))
	case "LoRALinearGrad", "LoRAGrad":
		// G (N, R) and possibly a recomputed T live through the products.
		floats = 2*pooled(N*R) + max(gemmScratch(N, R, M, workers), gemmScratch(M, R, N, workers),
			gemmScratch(R, K, N, workers), gemmScratch(N, K, M+R, workers))
	case "LoRAMerge":
		floats = max(gemmScratch(M, K, R, workers), gemmScratch(K, M, R, workers))
	case "Attention", "AttentionGrad":
		T, HS := dim("T"), dim("HS")
		heads := max(dim("B")*dim("NH"), 1)
		var perWorker int
		switch {
		case activeLevel.Load() != nil && kernel == "Attention":
			perWorker = pooled(attnBlock*T) + gemmScratch(attnBlock, T, max(T, HS), 1)
		case activeLevel.Load() != nil:
			perWorker = 2*pooled(attnBlock*T) + gemmScratch(attnBlock, T, max(T, HS), 1)
		case kernel == "Attention": // key and value panels, one row of scores
			perWorker = pooled(attnRowPanels(T, HS)) + pooled(attnDimPanels(T, HS)) + pooled(T+gemmNR)
		default: // five panel sets, two (T, T) score matrices, two rows
			perWorker = 2*pooled(attnRowPanels(T, HS)) + 3*pooled(attnDimPanels(T, HS)) +
				2*pooled(T*T) + 2*pooled(T+gemmNR)
		}
		floats = min(workers, heads) * perWorker
	case "CrossEntropy":
		return 8 * int64(N) // a float64 loss per row
	}
	return 4 * int64(floats)
}

// pooled is the capacity getF32 allocates for n floats.
func pooled(n int) int {
	if n <= 0 {
		return 0
	}
	_, size := f32Class(n)
	return size
}

// gemmScratch bounds the scratch floats of gemm(n, m, k) with the variant in
// use: the packed B panels and, per worker, the packed A block and the tiles
// (SIMD engine), or the copied A rows (pure-Go engine; its accumulators are
// small and not counted).
func gemmScratch(n, m, k, workers int) int {
	if n <= 0 || m <= 0 {
		return 0
	}
	k = max(k, 1)
	if n < gemmSmallN {
		return n * k // rows of A copied when transposed or masked
	}
	if l := activeLevel.Load(); l != nil {
		t := l.tileFor(m)
		mc, nc := fastMC/t.mr*t.mr, fastNC/t.nr*t.nr
		stretch := max(nc, fastPackFloats/k/nc*nc)
		panels := (min(m, stretch) + t.nr - 1) / t.nr
		items := ((n + mc - 1) / mc) * ((m + nc - 1) / nc)
		// A's block is counted whole: packed A (transposed or masked) needs it.
		return pooled(panels*t.nr*k) + min(workers, items)*(pooled(mc*k)+pooled(2*mc*nc))
	}
	panels := (m + gemmNR - 1) / gemmNR
	items := ((n + gemmMC - 1) / gemmMC) * ((m + gemmNC - 1) / gemmNC)
	return pooled(panels*gemmNR*k) + min(workers, items)*pooled(gemmMC*k)
}
