package kern

import (
	"math/bits"
	"sync"
)

// The float32 GEMM engine behind Linear, LoRALinear and their gradients.
//
// It computes C (n, m) from a list of segments, C = Σₛ Aₛ·Bₛ, where Aₛ is
// (n, kₛ) and Bₛ is (kₛ, m): the segments are one product whose inner
// dimension is their concatenation. The fused LoRA linear layer is the
// two-segment product [x | s·T]·[Wᵀ ; Bᵀ], so the rank-R update runs as R more
// iterations of the same accumulators, while the base tile is still in
// registers (docs/design.md, "extra K rows").
//
// B is packed once per call into panels of gemmNR columns, each holding every
// segment's rows one after the other (k-major, gemmNR floats per k), and
// zero-padded past column m. The micro-kernel then computes one row of C
// against one panel: gemmNR float32 accumulators, each summing its products
// in k order. A rows are read in place when they are contiguous; transposed
// or masked A rows are first copied into per-worker scratch.
//
// Determinism: every element of C is summed by one micro-kernel accumulator
// in the order segment by segment, k ascending, whatever the thread count and
// the work split (which only decide which goroutine computes a tile), so the
// result is bit-for-bit independent of SetThreads.

const (
	gemmNR = 8   // columns of a packed B panel and of a micro-tile
	gemmMC = 64  // rows of C per work item: an A block of gemmMC·k floats stays in L2
	gemmNC = 64  // columns of C per work item, a multiple of gemmNR
	gemmKC = 512 // k per micro-kernel call: a gemmKC×gemmNR panel slice (16 KiB) stays in L1

	// Below gemmSmallN rows, packing B costs more than it saves (decoding
	// one token is n = 1, a serving step one row per request, a prefill
	// chunk 64 rows), so B is read in place, each row against a column
	// block of B that stays in L2. Measured on machine C (docs/perf.md,
	// 2026-12-02), x·Wᵀ at 768 → 2304: in place 0.9 ms against 2.6 ms
	// packed at 16 rows, 2.7 against 3.5 at 64, 5.5 against 4.7 at 128
	// (AVX-512; AVX2 and pure Go alike at 16 and 64); the LoRA backward's
	// rank-row products (r ≤ 64) are unchanged within the noise.
	gemmSmallN = 80
	// Products under gemmSerialFlops run on the calling goroutine: starting
	// workers would cost more than they save.
	gemmSerialFlops = 1 << 17
	// gemmSerialFlopsSIMD is the same threshold for the SIMD engine.
	gemmSerialFlopsSIMD = 1 << 21
)

// gemmMat is a matrix operand read through a layout: element (r, c) is
// data[r*ld+c], or data[c*ld+r] when trans. When mask is non-nil the element
// is multiplied by mask at the same index (a dropout mask laid out like data).
type gemmMat struct {
	data  []float32
	mask  []float32
	ld    int
	trans bool
}

// at returns element (r, c).
func (x *gemmMat) at(r, c int) float32 {
	i := r*x.ld + c
	if x.trans {
		i = c*x.ld + r
	}
	if x.mask != nil {
		return x.data[i] * x.mask[i]
	}
	return x.data[i]
}

// gemmSeg is one segment of the product: a (n, k) times b (k, m).
type gemmSeg struct {
	a, b gemmMat
	k    int
}

// gemmOut says where C goes and how. With S the sum over all segments (or, when
// lastMask is set, S = S_rest + S_last⊙lastMask, the last segment's sum masked
// elementwise), the stored value is v = alpha·S + bias[col], and c[row*ld+col]
// is set to v, or incremented by it when add is set.
type gemmOut struct {
	c        []float32
	ld       int
	alpha    float32
	bias     []float32 // (m) or nil
	add      bool
	lastMask []float32 // layout of c, or nil
}

// store writes one row of a tile: columns j..j+len(acc) of row i, from the
// sums acc (and rest, the earlier segments' sums when lastMask is set).
func (o *gemmOut) store(i, j int, acc, rest []float32) {
	base := i*o.ld + j
	c := o.c[base : base+len(acc)]
	if o.lastMask == nil {
		// The common cases without the per-element branches of the
		// general loop below; the same arithmetic, so the same bits.
		alpha := o.alpha
		switch {
		case o.bias == nil && !o.add && alpha == 1:
			copy(c, acc)
		case o.bias == nil && !o.add:
			for jj, v := range acc {
				c[jj] = v * alpha
			}
		case o.bias == nil:
			for jj, v := range acc {
				c[jj] += v * alpha
			}
		case !o.add:
			bias := o.bias[j : j+len(acc)]
			for jj, v := range acc {
				c[jj] = v*alpha + bias[jj]
			}
		default:
			bias := o.bias[j : j+len(acc)]
			for jj, v := range acc {
				c[jj] += v*alpha + bias[jj]
			}
		}
		return
	}
	var mask []float32
	if o.lastMask != nil {
		mask = o.lastMask[base : base+len(acc)]
		rest = rest[:len(acc)]
	}
	for jj, v := range acc {
		if mask != nil {
			v = rest[jj] + v*mask[jj]
		}
		v *= o.alpha
		if o.bias != nil {
			v += o.bias[j+jj]
		}
		if o.add {
			c[jj] += v
		} else {
			c[jj] = v
		}
	}
}

// gemm computes C (n, m) as described by segs and out.
func gemm(n, m int, segs []gemmSeg, out gemmOut) { gemmOn(false, n, m, segs, out) }

// gemmSerial is gemm on the calling goroutine alone, for callers that
// already split their work over ParallelFor (attention, per head).
func gemmSerial(n, m int, segs []gemmSeg, out gemmOut) { gemmOn(true, n, m, segs, out) }

func gemmOn(forceSerial bool, n, m int, segs []gemmSeg, out gemmOut) {
	if n <= 0 || m <= 0 {
		return
	}
	ktot := 0
	bmask := false
	for i := range segs {
		ktot += segs[i].k
		bmask = bmask || segs[i].b.mask != nil
	}
	l := activeLevel.Load()
	flops := 2 * n * m * max(ktot, 1)
	// The SIMD kernels do in a microsecond what the Go ones do in twenty,
	// so a product must be larger before a second goroutine pays for its
	// start and join (decoding one token is a row of such products).
	serial := forceSerial || flops < gemmSerialFlops || (l != nil && flops < gemmSerialFlopsSIMD)
	if n < gemmSmallN && !bmask {
		gemmSmall(n, m, segs, &out, serial, l)
		return
	}
	if l != nil {
		gemmFast(n, m, segs, out, l, serial)
		return
	}

	panels := (m + gemmNR - 1) / gemmNR
	pstride := ktot * gemmNR
	packed := getF32(panels * pstride)
	defer putF32(packed)
	pack := func(lo, hi int) {
		for p := lo; p < hi; p++ {
			packPanel((*packed)[p*pstride:(p+1)*pstride], segs, p*gemmNR, min(gemmNR, m-p*gemmNR), gemmNR)
		}
	}
	if serial {
		pack(0, panels)
	} else {
		ParallelFor(panels, pack)
	}

	rowBlocks := (n + gemmMC - 1) / gemmMC
	colBlocks := (m + gemmNC - 1) / gemmNC
	work := func(lo, hi int) {
		w := newGemmWorker(segs, out.lastMask != nil)
		defer w.free()
		for it := lo; it < hi; it++ {
			rb, cb := it/colBlocks, it%colBlocks
			i0, i1 := rb*gemmMC, min(n, (rb+1)*gemmMC)
			w.loadRows(segs, i0, i1)
			for j := cb * gemmNC; j < min(m, (cb+1)*gemmNC); j += gemmNR {
				w.tile(segs, &out, (*packed)[j/gemmNR*pstride:], i0, i1, j, min(gemmNR, m-j))
			}
		}
	}
	if serial {
		work(0, rowBlocks*colBlocks)
	} else {
		ParallelFor(rowBlocks*colBlocks, work)
	}
}

// gemmWorker is one goroutine's state: the accumulators of a column of
// micro-tiles and the A rows it copied.
type gemmWorker struct {
	acc, rest [][gemmNR]float32 // (gemmMC) tiles; rest only when lastMask is set
	abuf      []*[]float32      // per segment: copied A rows, or nil when read in place
	arow      [][]float32       // per segment, the A rows of the current block, flattened: row i at arow[s][(i-i0)*k:]
	rowsLo    int               // first row of the block loaded into abuf, −1 for none
	rowsHi    int
}

func newGemmWorker(segs []gemmSeg, masked bool) *gemmWorker {
	w := &gemmWorker{
		acc:    make([][gemmNR]float32, gemmMC),
		abuf:   make([]*[]float32, len(segs)),
		arow:   make([][]float32, len(segs)),
		rowsLo: -1,
	}
	if masked {
		w.rest = make([][gemmNR]float32, gemmMC)
	}
	for s := range segs {
		if a := &segs[s].a; a.trans || a.mask != nil {
			w.abuf[s] = getF32(gemmMC * segs[s].k)
		}
	}
	return w
}

func (w *gemmWorker) free() {
	for _, b := range w.abuf {
		if b != nil {
			putF32(b)
		}
	}
}

// loadRows makes rows i0..i1 of every segment's A available in arow, copying
// the ones that are not contiguous in memory. Consecutive work items usually
// share a row block, and then nothing is copied again.
func (w *gemmWorker) loadRows(segs []gemmSeg, i0, i1 int) {
	if w.rowsLo == i0 && w.rowsHi == i1 {
		return
	}
	w.rowsLo, w.rowsHi = i0, i1
	for s := range segs {
		a := &segs[s].a
		k := segs[s].k
		if w.abuf[s] == nil {
			// Rows are contiguous: rowA reads them in place.
			w.arow[s] = nil
			continue
		}
		buf := (*w.abuf[s])[:(i1-i0)*k]
		if a.trans {
			// Element (i, p) is data[p*ld+i]: run p holds the block's rows
			// of column p, and row ii of buf gathers element ii of every run.
			interleave(buf, k, a.data, a.mask, i0, a.ld, k, i1-i0)
		} else {
			for i := i0; i < i1; i++ {
				row := buf[(i-i0)*k : (i-i0+1)*k]
				src, m := a.data[i*a.ld:i*a.ld+k], a.mask[i*a.ld:i*a.ld+k]
				for p, v := range src {
					row[p] = v * m[p]
				}
			}
		}
		w.arow[s] = buf
	}
}

// rowA returns row i of segment s's A (k floats).
func (w *gemmWorker) rowA(segs []gemmSeg, s, i int) []float32 {
	k := segs[s].k
	if w.arow[s] != nil {
		o := (i - w.rowsLo) * k
		return w.arow[s][o : o+k]
	}
	a := &segs[s].a
	return a.data[i*a.ld : i*a.ld+k]
}

// tile computes rows i0..i1 of the columns j..j+cols against one packed panel
// and stores them.
func (w *gemmWorker) tile(segs []gemmSeg, out *gemmOut, panel []float32, i0, i1, j, cols int) {
	rows := i1 - i0
	acc := w.acc[:rows]
	clear(acc)
	off := 0
	for s := range segs {
		if s == len(segs)-1 && out.lastMask != nil {
			copy(w.rest[:rows], acc)
			clear(acc)
		}
		k := segs[s].k
		for k0 := 0; k0 < k; k0 += gemmKC {
			kc := min(gemmKC, k-k0)
			bp := panel[(off+k0)*gemmNR : (off+k0+kc)*gemmNR]
			for i := range acc {
				gemmKernel8(&acc[i], w.rowA(segs, s, i0+i)[k0:k0+kc], bp)
			}
		}
		off += k
	}
	for i := range acc {
		var rest []float32
		if out.lastMask != nil {
			rest = w.rest[i][:cols]
		}
		out.store(i0+i, j, acc[i][:cols], rest)
	}
}

// gemmKernel8 adds Σₚ a[p]·b[p*8 : p*8+8] to acc. The eight accumulators are
// locals so that the compiler keeps them in registers, and each sums in p
// order. The loop is unrolled by four by hand: with one k per iteration the
// loop and bounds-check instructions compete with the float ports, and this
// runs about 1.4× faster.
func gemmKernel8(acc *[gemmNR]float32, a, b []float32) {
	c0, c1, c2, c3, c4, c5, c6, c7 := acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]
	b = b[:gemmNR*len(a)]
	for len(a) >= 4 && len(b) >= 4*gemmNR {
		x0 := a[0]
		c0 += x0 * b[0]
		c1 += x0 * b[1]
		c2 += x0 * b[2]
		c3 += x0 * b[3]
		c4 += x0 * b[4]
		c5 += x0 * b[5]
		c6 += x0 * b[6]
		c7 += x0 * b[7]
		x1 := a[1]
		c0 += x1 * b[8]
		c1 += x1 * b[9]
		c2 += x1 * b[10]
		c3 += x1 * b[11]
		c4 += x1 * b[12]
		c5 += x1 * b[13]
		c6 += x1 * b[14]
		c7 += x1 * b[15]
		x2 := a[2]
		c0 += x2 * b[16]
		c1 += x2 * b[17]
		c2 += x2 * b[18]
		c3 += x2 * b[19]
		c4 += x2 * b[20]
		c5 += x2 * b[21]
		c6 += x2 * b[22]
		c7 += x2 * b[23]
		x3 := a[3]
		c0 += x3 * b[24]
		c1 += x3 * b[25]
		c2 += x3 * b[26]
		c3 += x3 * b[27]
		c4 += x3 * b[28]
		c5 += x3 * b[29]
		c6 += x3 * b[30]
		c7 += x3 * b[31]
		a = a[4:]
		b = b[4*gemmNR:]
	}
	for len(a) > 0 && len(b) >= gemmNR {
		x := a[0]
		c0 += x * b[0]
		c1 += x * b[1]
		c2 += x * b[2]
		c3 += x * b[3]
		c4 += x * b[4]
		c5 += x * b[5]
		c6 += x * b[6]
		c7 += x * b[7]
		a = a[1:]
		b = b[gemmNR:]
	}
	*acc = [gemmNR]float32{c0, c1, c2, c3, c4, c5, c6, c7}
}

// gemmSmall computes a product with fewer than gemmSmallN rows without
// packing B, split over column blocks. B has no mask here.
func gemmSmall(n, m int, segs []gemmSeg, out *gemmOut, serial bool, l *isaLevel) {
	// A rows, copied when not contiguous (n < gemmSmallN rows, so small).
	arows := make([][][]float32, len(segs))
	for s := range segs {
		a := &segs[s].a
		k := segs[s].k
		arows[s] = make([][]float32, n)
		for i := range n {
			if !a.trans && a.mask == nil {
				arows[s][i] = a.data[i*a.ld : i*a.ld+k]
				continue
			}
			row := make([]float32, k)
			for p := range row {
				row[p] = a.at(i, p)
			}
			arows[s][i] = row
		}
	}
	blocks := (m + gemmNC - 1) / gemmNC
	work := func(lo, hi int) {
		var acc, rest [gemmNC]float32
		for cb := lo; cb < hi; cb++ {
			j0, j1 := cb*gemmNC, min(m, (cb+1)*gemmNC)
			for i := range n {
				a := acc[:j1-j0]
				clear(a)
				for s := range segs {
					if s == len(segs)-1 && out.lastMask != nil {
						copy(rest[:], a)
						clear(a)
					}
					gemmRow(l, a, arows[s][i], &segs[s].b, j0)
				}
				out.store(i, j0, a, rest[:])
			}
		}
	}
	if serial {
		work(0, blocks)
	} else {
		ParallelFor(blocks, work)
	}
}

// gemmRow adds a·B[:, j0:j0+len(acc)] to acc: with level l's row kernels
// where the shape allows, in Go for the columns or k they leave.
func gemmRow(l *isaLevel, acc, a []float32, b *gemmMat, j0 int) {
	cols, ks := rowKernels(l, acc, a, b, j0)
	switch {
	case cols > 0:
		if cols < len(acc) {
			gemmRowSmall(acc[cols:], a, b, j0+cols)
		}
	case ks > 0:
		if ks < len(a) {
			rest := gemmMat{data: b.data[ks:], ld: b.ld, trans: true}
			gemmRowSmall(acc, a[ks:], &rest, j0)
		}
	default:
		gemmRowSmall(acc, a, b, j0)
	}
}

// gemmRowSmall adds a·B[:, j0:j0+len(acc)] to acc, reading b in place; each
// element sums in p order.
func gemmRowSmall(acc, a []float32, b *gemmMat, j0 int) {
	k := len(a)
	if !b.trans {
		// Four rows of B per pass over acc: a quarter of the loads and
		// stores of acc, and the same left-to-right sum as one row at a time.
		n := len(acc)
		p := 0
		for ; p+4 <= k; p += 4 {
			x0, x1, x2, x3 := a[p], a[p+1], a[p+2], a[p+3]
			r0 := b.data[p*b.ld+j0 : p*b.ld+j0+n]
			r1 := b.data[(p+1)*b.ld+j0 : (p+1)*b.ld+j0+n]
			r2 := b.data[(p+2)*b.ld+j0 : (p+2)*b.ld+j0+n]
			r3 := b.data[(p+3)*b.ld+j0 : (p+3)*b.ld+j0+n]
			r0, r1, r2, r3 = r0[:len(acc)], r1[:len(acc)], r2[:len(acc)], r3[:len(acc)]
			for jj, c := range acc {
				acc[jj] = c + x0*r0[jj] + x1*r1[jj] + x2*r2[jj] + x3*r3[jj]
			}
		}
		for ; p < k; p++ {
			x := a[p]
			row := b.data[p*b.ld+j0 : p*b.ld+j0+n]
			for jj, v := range row {
				acc[jj] += x * v
			}
		}
		return
	}
	// Column j of B is contiguous: four columns at a time, one accumulator each.
	j := 0
	for ; j+4 <= len(acc); j += 4 {
		c := j0 + j
		b0 := b.data[c*b.ld : c*b.ld+k]
		b1 := b.data[(c+1)*b.ld : (c+1)*b.ld+k]
		b2 := b.data[(c+2)*b.ld : (c+2)*b.ld+k]
		b3 := b.data[(c+3)*b.ld : (c+3)*b.ld+k]
		s0, s1, s2, s3 := acc[j], acc[j+1], acc[j+2], acc[j+3]
		for p, x := range a {
			s0 += x * b0[p]
			s1 += x * b1[p]
			s2 += x * b2[p]
			s3 += x * b3[p]
		}
		acc[j], acc[j+1], acc[j+2], acc[j+3] = s0, s1, s2, s3
	}
	for ; j < len(acc); j++ {
		c := j0 + j
		col := b.data[c*b.ld : c*b.ld+k]
		s := acc[j]
		for p, x := range a {
			s += x * col[p]
		}
		acc[j] = s
	}
}

// f32Pools recycle the float32 scratch of the fast kernels (packed panels,
// copied rows, LoRA intermediates), so that a training step does not hand the
// garbage collector megabytes per matmul. Sizes are rounded up to four
// classes per power of two (at most 25% slack) and each class has its own
// pool, so a small request never takes, and drops, a large buffer.
var f32Pools [f32Classes]sync.Pool

const f32Classes = 8 * 64

// f32Class returns the pool class of n floats and the capacity it allocates.
func f32Class(n int) (class, size int) {
	if n <= 8 {
		return 0, 8
	}
	e := bits.Len(uint(n-1)) - 3 // keep the top three bits of n−1
	m := (n-1)>>e + 1            // 5..8
	return e*8 + m, m << e
}

// getF32 returns a scratch slice of n floats with unspecified contents.
func getF32(n int) *[]float32 {
	class, size := f32Class(n)
	if p, ok := f32Pools[class].Get().(*[]float32); ok {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n, size)
	return &s
}

// putF32 returns scratch from getF32 to its pool.
func putF32(p *[]float32) {
	if class, size := f32Class(cap(*p)); size == cap(*p) {
		f32Pools[class].Put(p)
	}
}
