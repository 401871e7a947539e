package kern

import "slices"

// The SIMD GEMM engine: the same contract as gemm (segments, masks, the
// output's alpha, bias, add and lastMask), computed with a variant's
// register-blocked micro-kernels (isa.go) in the GotoBLAS arrangement.
//
// B is packed once per call into panels of nr columns (every segment's rows
// one after the other, k-major, zero past column m). A is packed per block of
// MC rows into micro-panels of mr rows (k-major, zero past row n), once per
// row block and reused for every column panel. The k dimension is walked in
// chunks of fastKC so that the B chunk of a panel stays in L1 while the
// micro-panels of the row block stream past it from L2; each chunk's kernel
// call starts from the tile the previous chunk left, so every element of C is
// still one FMA chain in k order — the result depends on the shape and the
// variant only, never on the thread count or the work split.

const (
	fastKC = 256 // k per micro-kernel call
	fastMC = 144 // rows per row block (a multiple of every tile's mr)
	fastNC = 256 // columns per work item (a multiple of every tile's nr)

	// fastPackFloats bounds the packed B of one stretch of columns (8 MiB).
	fastPackFloats = 2 << 20

	packChunk = 64 // k per pass of packRows over a micro-panel's rows
)

// gemmFast computes gemm(n, m, segs, out) with level l's kernels.
func gemmFast(n, m int, segs []gemmSeg, out gemmOut, l *isaLevel, serial bool) {
	t := l.tileFor(m)
	mr, nr := t.mr, t.nr
	// Segment s covers k offsets start[s]..start[s+1]; a segment whose A
	// rows are contiguous is read in place rather than packed.
	start := make([]int, len(segs)+1)
	inPlace := make([]bool, len(segs))
	ktot, krest := 0, 0
	for i := range segs {
		krest = ktot
		ktot += segs[i].k
		start[i+1] = ktot
		a := &segs[i].a
		// Packing pays when a micro-panel serves many column panels; with
		// one (a rank-R LoRA product) reading in place wins even where the
		// rows share L1 sets.
		inPlace[i] = t.rows != nil && !a.trans && a.mask == nil && (rowsSpreadInL1(a.ld, mr) || m <= nr)
	}
	if out.lastMask == nil {
		krest = 0
	}
	// A full tile of a plain output (no scale, no mask) accumulates in C
	// itself: its bias or C's old value goes in first and the kernels add
	// every chunk's products to it, so no scratch tile and no store pass.
	directOut := out.lastMask == nil && out.alpha == 1 && ktot > 0

	nc := fastNC / nr * nr
	// B is packed a stretch of columns at a time, so that a wide B (a
	// language-model head) never needs a packed copy of itself.
	stretch := max(nc, fastPackFloats/max(ktot, 1)/nc*nc)
	pstride := max(ktot, 1) * nr
	packed := getF32((min(m, stretch) + nr - 1) / nr * pstride)
	defer putF32(packed)
	for js := 0; js < m; js += stretch {
		gemmStretch(n, min(m, js+stretch), js, segs, out, t, inPlace, start, ktot, krest, directOut, (*packed), serial)
	}
}

// gemmStretch computes columns js..je of gemmFast's product: it packs their
// B panels into packed, then runs the (row block, column block) work items.
func gemmStretch(n, je, js int, segs []gemmSeg, out gemmOut, t *gemmTile, inPlace []bool, start []int,
	ktot, krest int, directOut bool, packed []float32, serial bool) {
	m := je // columns of C below je exist; the stretch covers js..je
	mr, nr := t.mr, t.nr
	mc := fastMC / mr * mr
	nc := fastNC / nr * nr
	panels := (je - js + nr - 1) / nr
	pstride := max(ktot, 1) * nr
	pack := func(lo, hi int) {
		for p := lo; p < hi; p++ {
			j := js + p*nr
			packPanel(packed[p*pstride:(p+1)*pstride], segs, j, min(nr, m-j), nr)
		}
	}
	if serial {
		pack(0, panels)
	} else {
		ParallelFor(panels, pack)
	}

	rowBlocks := (n + mc - 1) / mc
	colBlocks := (je - js + nc - 1) / nc
	work := func(lo, hi int) {
		// With every segment read in place only a last, partial micro-panel
		// is ever packed: one panel's room is enough.
		compact := !slices.Contains(inPlace, false)
		aroom := mc
		if compact {
			aroom = mr
		}
		apack := getF32(aroom * max(ktot, 1))
		defer putF32(apack)
		apanel := func(mp int) int {
			if compact {
				return 0
			}
			return mp * mr * ktot
		}
		// Scratch tiles for the edges and scaled outputs, and a second set
		// for the sums before a masked last segment.
		ntile := mc * nc
		sets := 1
		if out.lastMask != nil {
			sets = 2
		}
		tiles := getF32(ntile * sets)
		defer putF32(tiles)
		acc, rest := (*tiles)[:ntile], []float32(nil)
		if out.lastMask != nil {
			rest = (*tiles)[ntile:]
			if krest == 0 {
				clear(rest) // the masked segment is the only one: nothing before it
			}
		}
		loaded := -1
		for it := lo; it < hi; it++ {
			rb, cb := it/colBlocks, it%colBlocks
			i0, i1 := rb*mc, min(n, (rb+1)*mc)
			j0, j1 := js+cb*nc, min(m, js+(cb+1)*nc)
			if loaded != rb {
				packRows(*apack, segs, inPlace, compact, i0, i1, mr, ktot)
				loaded = rb
			}
			mps := (i1 - i0 + mr - 1) / mr
			pps := (j1 - j0 + nr - 1) / nr
			// direct reports whether tile (mp, pp) lives in C, and target
			// returns where a chunk's kernel call accumulates it.
			direct := func(mp, pp int) bool {
				return directOut && i0+(mp+1)*mr <= i1 && j0+(pp+1)*nr <= m
			}
			target := func(buf []float32, mp, pp int) (*float32, int) {
				if direct(mp, pp) {
					o := (i0+mp*mr)*out.ld + j0 + pp*nr
					_ = out.c[o+(mr-1)*out.ld+nr-1] // the last element the kernel writes
					return &out.c[o], out.ld
				}
				return &buf[(mp*pps+pp)*mr*nr], nr
			}

			seg := 0
			for k0 := 0; k0 < ktot; {
				for start[seg+1] <= k0 {
					seg++
				}
				k1 := min(start[seg+1], k0+fastKC) // chunks stay inside a segment
				dst, first := acc, k0 == 0
				if rest != nil && krest > 0 {
					if k0 < krest {
						dst = rest
					} else {
						first = k0 == krest
					}
				}
				a := &segs[seg].a
				for pp := range pps {
					bp := &packed[((j0-js)/nr+pp)*pstride+k0*nr]
					// A tile in C starts from its bias, its old value, or both.
					var bias *float32
					startLoad := 0
					if directOut && j0+(pp+1)*nr <= m {
						if out.add {
							startLoad = 1
						}
						if out.bias != nil {
							_ = out.bias[j0+(pp+1)*nr-1] // the kernel reads nr floats
							bias = &out.bias[j0+pp*nr]
							startLoad += 2
						}
					}
					for mp := range mps {
						load := 1
						if first {
							load = 0
							if direct(mp, pp) {
								load = startLoad
							}
						}
						c, ldc := target(dst, mp, pp)
						r0 := i0 + mp*mr
						if inPlace[seg] && r0+mr <= i1 {
							o := r0*a.ld + k0 - start[seg]
							_ = a.data[o+(mr-1)*a.ld+k1-k0-1] // the last element the kernel reads
							t.rows(k1-k0, &a.data[o], a.ld, bp, c, ldc, bias, load)
							continue
						}
						t.kernel(k1-k0, &(*apack)[apanel(mp)+k0*mr], bp, c, ldc, bias, load)
					}
				}
				k0 = k1
			}
			if ktot == 0 {
				clear(acc)
			}
			for i := i0; i < i1; i++ {
				mp, ii := (i-i0)/mr, (i-i0)%mr
				for pp := range pps {
					if direct(mp, pp) {
						continue
					}
					j := j0 + pp*nr
					cols := min(nr, m-j)
					o := (mp*pps+pp)*mr*nr + ii*nr
					var r []float32
					if rest != nil {
						r = rest[o : o+cols]
					}
					out.store(i, j, acc[o:o+cols], r)
				}
			}
		}
	}
	if serial {
		work(0, rowBlocks*colBlocks)
	} else {
		ParallelFor(rowBlocks*colBlocks, work)
	}
}

// packPanel packs columns j0..j0+w of every segment's B into dst, k-major
// with nr floats per k, zero past column w.
func packPanel(dst []float32, segs []gemmSeg, j0, w, nr int) {
	for s := range segs {
		b := &segs[s].b
		k := segs[s].k
		d := dst[:k*nr]
		dst = dst[k*nr:]
		if !b.trans {
			for p := range k {
				dp := d[p*nr : (p+1)*nr]
				o := p*b.ld + j0
				src := b.data[o : o+w]
				if b.mask != nil {
					mk := b.mask[o : o+w]
					for jj, v := range src {
						dp[jj] = v * mk[jj]
					}
				} else {
					copy(dp, src)
				}
				clear(dp[w:])
			}
			continue
		}
		clear(d)
		interleave(d, nr, b.data, b.mask, j0*b.ld, b.ld, w, k)
	}
}

// packRows packs rows i0..i1 of every segment's A into micro-panels of mr
// rows: panel q holds rows i0+q·mr.. k-major (mr floats per k, all segments'
// k one after the other), zero past row i1. Segments read in place are
// packed only in the last, partial panel; compact (every segment in place)
// puts that panel first in dst, which then holds one panel.
func packRows(dst []float32, segs []gemmSeg, inPlace []bool, compact bool, i0, i1, mr, ktot int) {
	for q := 0; i0+q*mr < i1; q++ {
		r0 := i0 + q*mr
		rows := min(mr, i1-r0)
		if compact && rows == mr {
			continue // read in place
		}
		o := q * mr * ktot
		if compact {
			o = 0 // the one partial panel
		}
		panel := dst[o : o+mr*ktot]
		off := 0
		for s := range segs {
			a := &segs[s].a
			k := segs[s].k
			d := panel[off*mr : (off+k)*mr]
			off += k
			if inPlace[s] && rows == mr {
				continue
			}
			if rows < mr {
				clear(d)
			}
			if a.trans {
				// Element (i, p) is data[p*ld+i]: a run of rows per p.
				for p := range k {
					o := p*a.ld + r0
					src, dp := a.data[o:o+rows], d[p*mr:p*mr+rows]
					if a.mask != nil {
						mk := a.mask[o : o+rows]
						for ii, v := range src {
							dp[ii] = v * mk[ii]
						}
					} else {
						copy(dp, src)
					}
				}
				continue
			}
			interleave(d, mr, a.data, a.mask, r0*a.ld, a.ld, rows, k)
		}
	}
}

// rowKernels adds a·B[:, j0:j0+len(acc)] to acc with level l's row kernels
// where the shape allows, and returns how many leading columns (B
// row-major) or leading k (B transposed) they covered; gemmRowSmall does the
// rest in Go.
func rowKernels(l *isaLevel, acc, a []float32, b *gemmMat, j0 int) (cols, ks int) {
	if l == nil || len(a) == 0 || b.mask != nil {
		return 0, 0
	}
	k := len(a)
	if !b.trans {
		n := len(acc) / l.lanes * l.lanes
		if n > 0 {
			_ = b.data[(k-1)*b.ld+j0+n-1] // the kernel reads B[k-1][j0+n-1] last
			l.gemv(&acc[0], n, &a[0], k, &b.data[j0], b.ld)
		}
		return n, 0
	}
	kk := k / l.lanes * l.lanes
	if kk > 0 && len(acc) > 0 {
		_ = b.data[(j0+len(acc)-1)*b.ld+kk-1]
		l.dots(&acc[0], len(acc), &a[0], kk, &b.data[j0*b.ld], b.ld)
	}
	return 0, kk
}

// rowsSpreadInL1 reports whether mr rows ld floats apart, read together by
// the in-place micro-kernel, fall in enough different L1 sets: with ld a
// multiple of 1024 floats every row maps to one set of a 32 KiB 8-way L1 and
// they evict each other (and the B panel), so such A is packed instead.
func rowsSpreadInL1(ld, mr int) bool {
	const sets, line = 64, 64
	var count [sets]int
	for i := range mr {
		s := i * ld * 4 / line % sets
		if count[s]++; count[s] > 4 {
			return false
		}
	}
	return true
}

// interleave packs count runs of k contiguous floats — run j at
// data[off+j*ld:] — into a k-major panel: dst[p*stride+j] = run j's p-th
// float, times mask at the same index when mask is non-nil. It walks k in
// chunks of packChunk, so the strided writes of all runs land in an
// L1-sized stretch of the panel.
func interleave(dst []float32, stride int, data, mask []float32, off, ld, count, k int) {
	for p0 := 0; p0 < k; p0 += packChunk {
		p1 := min(k, p0+packChunk)
		dc := dst[p0*stride : p1*stride]
		for j := range count {
			o := off + j*ld + p0
			src := data[o : o+p1-p0]
			if mask != nil {
				mk := mask[o : o+p1-p0]
				for p, v := range src {
					dc[p*stride+j] = v * mk[p]
				}
				continue
			}
			for p, v := range src {
				dc[p*stride+j] = v
			}
		}
	}
}
