package kern

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelThreadCap is the worker limit set by SetThreads; 0 means GOMAXPROCS.
var parallelThreadCap atomic.Int64

// SetThreads caps the number of goroutines ParallelFor uses at n; n ≤ 0
// removes the cap (GOMAXPROCS). Benchmarks use it to report 1- and 2-core
// figures from one process. It is safe to call concurrently with
// ParallelFor; calls already running keep the count they started with.
func SetThreads(n int) {
	parallelThreadCap.Store(int64(max(n, 0)))
}

// parallelWorkers returns how many goroutines ParallelFor may use now.
func parallelWorkers() int {
	w := runtime.GOMAXPROCS(0)
	if c := int(parallelThreadCap.Load()); c > 0 && c < w {
		w = c
	}
	return w
}

// ParallelFor calls body on contiguous, disjoint ranges [lo, hi) that
// together cover [0, n), one range per worker, and returns when all calls
// have returned. The workers are min(n, GOMAXPROCS, the SetThreads cap);
// with one, body runs once on the calling goroutine with no goroutine
// started, so single-threaded runs pay nothing.
//
// Ranges differ in length by at most one. Items should be coarse (rows of a
// matmul, heads of attention): ParallelFor does not batch tiny items, and a
// body that writes only to its own range needs no locking.
func ParallelFor(n int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w := min(parallelWorkers(), n)
	if w == 1 {
		body(0, n)
		return
	}
	q, r := n/w, n%w
	var wg sync.WaitGroup
	lo := 0
	for i := range w {
		hi := lo + q
		if i < r {
			hi++
		}
		if i == w-1 {
			// The caller would only sit in Wait; let it do the last share.
			body(lo, hi)
			break
		}
		start := lo // lo moves on before the goroutine runs
		wg.Go(func() { body(start, hi) })
		lo = hi
	}
	wg.Wait()
}
