package kern

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// parallelProcs raises GOMAXPROCS so that splits are exercised on small
// machines too; goroutines may outnumber cores.
func parallelProcs(t *testing.T, n int) {
	prev := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev); SetThreads(0) })
}

func TestParallelForCoversOnce(t *testing.T) {
	parallelProcs(t, 8)
	for _, threads := range []int{0, 1, 2, 3, 8, 64} {
		SetThreads(threads)
		for _, n := range []int{0, 1, 7, 1000} {
			hits := make([]atomic.Int32, n)
			var calls atomic.Int32
			ParallelFor(n, func(lo, hi int) {
				calls.Add(1)
				if lo >= hi || lo < 0 || hi > n {
					t.Errorf("threads %d n %d: bad range [%d, %d)", threads, n, lo, hi)
					return
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("threads %d n %d: index %d visited %d times", threads, n, i, h)
				}
			}
			if maxW := parallelWorkers(); int(calls.Load()) > max(min(maxW, n), 0) {
				t.Errorf("threads %d n %d: %d calls for at most %d workers", threads, n, calls.Load(), maxW)
			}
		}
	}
}

func TestSetThreadsCaps(t *testing.T) {
	parallelProcs(t, 4)
	SetThreads(1)
	if w := parallelWorkers(); w != 1 {
		t.Errorf("SetThreads(1): %d workers", w)
	}
	var calls atomic.Int32
	ParallelFor(1000, func(lo, hi int) {
		calls.Add(1)
		if lo != 0 || hi != 1000 {
			t.Errorf("one thread got range [%d, %d)", lo, hi)
		}
	})
	if calls.Load() != 1 {
		t.Errorf("one thread: %d calls", calls.Load())
	}
	SetThreads(0)
	if w := parallelWorkers(); w != runtime.GOMAXPROCS(0) {
		t.Errorf("SetThreads(0): %d workers, want GOMAXPROCS %d", w, runtime.GOMAXPROCS(0))
	}
	SetThreads(-3)
	if w := parallelWorkers(); w != runtime.GOMAXPROCS(0) {
		t.Errorf("SetThreads(-3): %d workers, want GOMAXPROCS", w)
	}
}

func TestParallelForBalanced(t *testing.T) {
	parallelProcs(t, 4)
	SetThreads(3)
	var sizes [3]atomic.Int32
	ParallelFor(10, func(lo, hi int) {
		// Ranges are 4, 3, 3 long, starting at 0, 4, 7.
		sizes[map[int]int{0: 0, 4: 1, 7: 2}[lo]].Store(int32(hi - lo))
	})
	if sizes[0].Load() != 4 || sizes[1].Load() != 3 || sizes[2].Load() != 3 {
		t.Errorf("range sizes %d %d %d, want 4 3 3", sizes[0].Load(), sizes[1].Load(), sizes[2].Load())
	}
}

func BenchmarkParallelFor(b *testing.B) {
	x := make([]float32, 1<<20)
	for b.Loop() {
		ParallelFor(len(x), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				x[i] = x[i]*0.5 + 1
			}
		})
	}
}
