package kern

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ISA dispatch as data: each row of isaLevels is one instruction-set
// variant of the fast CPU kernels (its GEMM micro-kernel tiles and row
// kernels), widest first. The first row the CPU supports and the user allows
// is used; the pure-Go kernels are the fallback on every other CPU and GOARCH
// and stay the oracle. Tests loop over the rows (and "go") to check each
// variant against the reference kernels.
//
// LORAC_ISA forces a variant: "avx512", "avx2" or "go". Asking for one the
// CPU lacks falls back to the next it has, and ISA reports what runs.

// gemmTile is one register-blocked GEMM micro-kernel: an mr×nr tile of C
// from A packed k-major (mr floats per k) and B packed k-major (nr floats per
// k), written into c with rows ldc floats apart; the sums start from zero
// (load 0), c (1), the nr floats at bias in every row (2), or c plus those (3).
type gemmTile struct {
	mr, nr int
	kernel func(k int, a, b, c *float32, ldc int, bias *float32, load int)
	// rows is the same kernel reading A's mr rows in place, lda floats
	// apart (nil: pack A always).
	rows func(k int, a *float32, lda int, b, c *float32, ldc int, bias *float32, load int)
}

// isaLevel is one row of the variant table.
type isaLevel struct {
	name  string // "avx512", "avx2"
	lanes int    // float32 lanes of a vector register
	has   func() bool
	tiles []gemmTile // the wide tile first
	// gemv adds a·B[:, :n] to acc, B row-major with stride ldb; n is a
	// multiple of lanes.
	gemv func(acc *float32, n int, a *float32, k int, b *float32, ldb int)
	// dots adds a·B[j, :k] to out[j] for j < n; k is a multiple of lanes.
	dots func(out *float32, n int, a *float32, k int, b *float32, ldb int)
	// exp sets dst[i] = exp(src[i]) for i < n, n a multiple of lanes.
	exp func(dst, src *float32, n int)
	// gelu and geluGrad are GELU and GELUGrad over n floats, n a multiple
	// of lanes.
	gelu     func(out, inp *float32, n int)
	geluGrad func(dinp, dout, inp *float32, n int)
	// peak runs n iterations of independent FMAs and returns the flops.
	peak func(n int) int
}

// tileFor picks the tile that pads m columns least (the wide one on a tie).
func (l *isaLevel) tileFor(m int) *gemmTile {
	best := &l.tiles[0]
	pad := func(t *gemmTile) int { return (m+t.nr-1)/t.nr*t.nr - m }
	for i := range l.tiles[1:] {
		if t := &l.tiles[i+1]; pad(t) < pad(best) {
			best = t
		}
	}
	return best
}

// activeLevel is the variant the kernels use now; nil means pure Go.
var activeLevel atomic.Pointer[isaLevel]

func init() {
	if err := SetISA(os.Getenv("LORAC_ISA")); err != nil {
		fmt.Fprintln(os.Stderr, "lorac: LORAC_ISA:", err)
	}
}

// SetISA selects the kernel variant: "" or "auto" for the widest the CPU
// has, "avx512", "avx2", or "go" for the pure-Go kernels. A variant the CPU
// lacks falls back to the next one it has. It is not safe to call while
// kernels run.
func SetISA(name string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	start := 0
	switch name {
	case "", "auto":
	case "go", "purego":
		activeLevel.Store(nil)
		return nil
	default:
		start = -1
		for i := range isaLevels {
			if isaLevels[i].name == name {
				start = i
			}
		}
		if start < 0 && !knownISA(name) {
			return fmt.Errorf("unknown kernel variant %q; use auto, avx512, avx2 or go", name)
		}
		if start < 0 {
			start = len(isaLevels) // known, but not built for this GOARCH
		}
	}
	for i := start; i < len(isaLevels); i++ {
		if isaLevels[i].has() {
			activeLevel.Store(&isaLevels[i])
			return nil
		}
	}
	activeLevel.Store(nil)
	return nil
}

func knownISA(name string) bool { return name == "avx512" || name == "avx2" }

// ISA names the kernel variant in use: "avx512", "avx2" or "go".
func ISA() string {
	if l := activeLevel.Load(); l != nil {
		return l.name
	}
	return "go"
}

// ISAVariants lists the variants this CPU can run, widest first, "go" last.
func ISAVariants() []string {
	var v []string
	for i := range isaLevels {
		if isaLevels[i].has() {
			v = append(v, isaLevels[i].name)
		}
	}
	return append(v, "go")
}

// FMAPeak measures the float32 FMA throughput of threads cores together, in
// GFLOP/s, with the active variant's register-only FMA loop run on that many
// goroutines at once (best of five timings); ok is false on the pure-Go path.
// It is the ceiling `lorac bench --peak` and the GEMM benchmarks compare with.
func FMAPeak(threads, iters int) (gflops float64, ok bool) {
	l := activeLevel.Load()
	if l == nil {
		return 0, false
	}
	threads = max(threads, 1)
	run := func() int {
		var wg sync.WaitGroup
		flops := make([]int, threads)
		for i := range threads {
			wg.Go(func() { flops[i] = l.peak(iters) })
		}
		wg.Wait()
		total := 0
		for _, f := range flops {
			total += f
		}
		return total
	}
	run() // wake the cores' vector units up
	best := 0.0
	for range 5 {
		t := time.Now()
		f := run()
		if d := time.Since(t).Seconds(); d > 0 {
			best = max(best, float64(f)/d/1e9)
		}
	}
	return best, true
}
