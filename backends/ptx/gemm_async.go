package ptx

// The pipelined tensor-core GEMM: the same product and parameters as
// lorac_gemm_bf16_nt, for operands whose rows start on 16-byte boundaries
// (K1, K2 multiples of 8, pointers 16-byte aligned; runtime/cuda picks it
// then and falls back to lorac_gemm_bf16_nt otherwise).
//
// Tiling. A 256-thread block computes a 128×128 tile of C; its 8 warps
// form a 2×4 grid of 64×32 warp tiles, each 4×4 mma.sync m16n8k16
// products (64 fp32 accumulators per thread) per 16 of k.
//
// Pipeline. K runs in tiles of 32: each tile of A (128 rows × 64 bytes)
// and of B (the same) is moved global→shared by cp.async.cg 16-byte
// copies, two per thread per operand, rows or k past the matrices
// zero-filled through the src-size operand (0 bytes read). Three stages
// (3 × 16 KiB, the 48 KiB static limit): the prologue issues tiles 0 and
// 1, each one a commit group; iteration t waits until at most one group is
// pending (its own tile has landed for this thread), bar.syncs (every
// thread's copies of tile t are visible and every warp is done with tile
// t−1), issues tile t+2 into the stage tile t−1 used, commits (an empty
// group past the end keeps the count uniform) and computes tile t. One
// barrier per tile.
//
// The LoRA segment is a continuation of the same tile sequence: tiles
// T1 = ⌈K1/32⌉ … T1+T2−1 come from A2, B2 (K2), so they are prefetched
// while the last base tiles compute and the branch adds no pipeline fill.
// Between the segments the accumulators are scaled by alpha1; a LoRA tile's
// products go to a zeroed 4-register temporary per mma, folded in with
// fma(tmp, alpha2, acc). A LoRA k16 half past K2 (r = 16 in a 32-wide
// tile) is skipped by a uniform branch, so the branch costs about its FLOP
// ratio.
//
// Layout. A stage holds each operand as 128 rows of 64 bytes, four 16-byte
// chunks, chunk c of row r stored at chunk position c ^ ((r/2) mod 4) (an
// XOR swizzle). ldmatrix reads 8 rows × 16 bytes per 8×8 matrix, one
// matrix per phase: unswizzled, rows r and r+2 of one chunk fall in the
// same four banks (a row is half of the 128-byte bank line), a 4-way
// conflict; swizzled, the 8 rows' chunks cover the 8 distinct 16-byte
// bank groups. The cp.async stores of 8 consecutive threads (two rows ×
// four chunks) are conflict-free too. Fragments come from
// ldmatrix.x4: for A, lanes 0–7, 8–15, 16–23, 24–31 address rows 0–7 and
// 8–15 at k 0–7, then at k 8–15 — the registers a0..a3 of mma's row-major
// A; for B (rows are n, k contiguous: mma's column-major B) lanes address
// n 0–7 at k 0–7 and 8–15, then n 8–15, giving b0, b1 of two n8 tiles.
//
// Epilogue: C = acc + bias, stores predicated on row < N and col < M.

const (
	asyncTile       = 128                       // block tile, rows and columns
	asyncKStep      = 32                        // k per pipeline stage, bf16 elements
	asyncStages     = 3                         // pipeline depth
	asyncRowBytes   = asyncKStep * 2            // one tile row in shared memory
	asyncStageBytes = asyncTile * asyncRowBytes // one operand's stage: 8 KiB
)

// swizzle emits the byte offset of (row, chunk) in a stage:
// row·64 + 16·(chunk ^ ((row>>1) & 3)).
func swizzle(f *Func, row, chunk Reg) Reg {
	e := f.E()
	s, x, off := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Shr(U32, s, row, Int(1))
	e.And(B32, s, s, Int(3))
	e.Op("xor", B32, x, chunk, s)
	e.Op("shl", B32, x, x, Int(4))
	e.MadLo(U32, off, row, Int(asyncRowBytes), x)
	return off
}

// widen returns base + u (u a u32 byte offset) as a 64-bit address.
func widen(f *Func, base, u Reg) Reg {
	w, a := f.Reg(U64), f.Reg(U64)
	f.E().Raw("cvt.u64.u32", w, u)
	f.E().Add(U64, a, base, w)
	return a
}

func gemmBF16Async(Arch) *Func {
	f := NewFunc("lorac_gemm_bf16_nt_async", `bf16 tensor-core GEMM, pipelined: C = alpha1*A1*B1^T + alpha2*A2*B2^T + bias; A1 (N, K1), B1 (M, K1), A2 (N, K2), B2 (M, K2) bf16 row-major.
Needs K1, K2 multiples of 8 and a1, b1, a2, b2 16-byte aligned (cp.async 16-byte copies).
Params: c (N*M f32), a1, b1, bias (M f32 or 0), a2, b2; N, M, K1, K2; alpha1, alpha2.
Block 256 threads (2x4 warps of 64x32, 128x128 tile), grid (ceil(M/128), ceil(N/128)).
k-tiles of 32 through a 3-stage cp.async pipeline into XOR-swizzled shared memory, fragments by ldmatrix.x4,
mma.sync m16n8k16 with fp32 accumulators; the LoRA segment continues the same tile sequence.`, 256)
	c, a1, b1 := f.Param("c", U64), f.Param("a1", U64), f.Param("b1", U64)
	bias := f.Param("bias", U64)
	a2, b2 := f.Param("a2", U64), f.Param("b2", U64)
	N, M, K1, K2 := f.Param("N", U32), f.Param("M", U32), f.Param("K1", U32), f.Param("K2", U32)
	alpha1, alpha2 := f.Param("alpha1", F32), f.Param("alpha2", F32)
	e := f.E()
	as := f.Shared("as", B32, asyncStages*asyncStageBytes/4)
	bs := f.Shared("bs", B32, asyncStages*asyncStageBytes/4)
	tid := f.Special(TidX)
	lane, warp, wr, wc, gi, ti := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.And(B32, lane, tid, Int(31))
	e.Shr(U32, warp, tid, Int(5))
	e.Shr(U32, wr, warp, Int(2)) // warp row: 64 rows each
	e.And(B32, wc, warp, Int(3)) // warp column: 32 columns each
	e.Shr(U32, gi, lane, Int(2))
	e.And(B32, ti, lane, Int(3))
	row0, col0 := f.Reg(U32), f.Reg(U32)
	e.Mul(U32, row0, f.Special(CtaY), Int(asyncTile))
	e.Mul(U32, col0, f.Special(CtaX), Int(asyncTile))
	asBase, bsBase := f.Reg(U64), f.Reg(U64)
	e.Mov(U64, asBase, as)
	e.Mov(U64, bsBase, bs)

	// Tile counts: T1 base tiles, then T2 LoRA tiles.
	T1, T2, T := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Add(U32, T1, K1, Int(asyncKStep-1))
	e.Shr(U32, T1, T1, Int(5))
	e.Add(U32, T2, K2, Int(asyncKStep-1))
	e.Shr(U32, T2, T2, Int(5))
	e.Add(U32, T, T1, T2)

	// Producer: thread tid copies chunk tid%4 of rows tid/4 and tid/4 + 64
	// of each operand. Row + 64 keeps (row>>1)&3, so its offset is +4096.
	lr, lc, kc := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Shr(U32, lr, tid, Int(2))
	e.And(B32, lc, tid, Int(3))
	e.Op("shl", B32, kc, lc, Int(3))
	stOff := swizzle(f, lr, lc)
	aDst, bDst := widen(f, asBase, stOff), widen(f, bsBase, stOff)
	type rowSrc struct{ row, ok Reg }
	rows := func(outer0, limit Reg) [2]rowSrc {
		var rs [2]rowSrc
		for q := range 2 {
			rs[q] = rowSrc{f.Reg(U32), f.Reg(Pred)}
			e.Add(U32, rs[q].row, outer0, lr)
			e.Add(U32, rs[q].row, rs[q].row, Int(64*q))
			e.Setp("lt", U32, rs[q].ok, rs[q].row, limit)
		}
		return rs
	}
	aRows, bRows := rows(row0, N), rows(col0, M)
	// load issues the copies of k-tile `tile` (of the joint sequence) into
	// the stage at byte offset wOff.
	load := func(tile, wOff Reg) {
		seg2, kt, sub, K := f.Reg(Pred), f.Reg(U32), f.Reg(U32), f.Reg(U32)
		e.Setp("ge", U32, seg2, tile, T1)
		e.Selp(U32, sub, T1, Int(0), seg2)
		e.Sub(U32, kt, tile, sub)
		e.Selp(U32, K, K2, K1, seg2)
		k, okK := f.Reg(U32), f.Reg(Pred)
		e.MadLo(U32, k, kt, Int(asyncKStep), kc)
		e.Setp("lt", U32, okK, k, K)
		for _, op := range []struct {
			src1, src2, dst Reg
			rows            [2]rowSrc
		}{{a1, a2, aDst, aRows}, {b1, b2, bDst, bRows}} {
			p, dst := f.Reg(U64), f.Reg(U64)
			e.Selp(U64, p, op.src2, op.src1, seg2)
			e.Add(U64, dst, op.dst, wOff)
			for q, rs := range op.rows {
				ok, idx, src, n := f.Reg(Pred), f.Reg(U32), f.Reg(U64), f.Reg(U32)
				e.Raw("and.pred", ok, rs.ok, okK)
				e.MadLo(U32, idx, rs.row, K, k)
				off := f.Reg(U64)
				e.Raw("mul.wide.u32", off, idx, Int(2))
				e.Add(U64, src, p, off)
				// Out of range: read nothing (src-size 0) from a valid address.
				e.Selp(U64, src, src, p, ok)
				e.Selp(U32, n, Int(16), Int(0), ok)
				e.Raw("cp.async.cg.shared.global", Addr{Base: dst, Off: q * asyncTile / 2 * asyncRowBytes}, Addr{Base: src}, Int(16), n)
			}
		}
	}
	commit := func() { e.Raw("cp.async.commit_group") }
	// rotate advances a stage offset: (off + stage) mod 3 stages.
	rotate := func(off Reg) {
		e.Add(U64, off, off, Int(asyncStageBytes))
		wrap := f.Reg(Pred)
		e.Setp("ge", U64, wrap, off, Int(asyncStages*asyncStageBytes))
		f.If(wrap, false).Mov(U64, off, Int(0))
	}

	// Consumer: per-lane ldmatrix row addresses, one per k16 half.
	var aLd, bLd [2]Reg
	for ks := range 2 {
		r, ch, h := f.Reg(U32), f.Reg(U32), f.Reg(U32)
		// A: row wr·64 + lane%8 + 8·((lane/8)%2), chunk 2ks + lane/16.
		e.And(B32, r, lane, Int(15))
		e.MadLo(U32, r, wr, Int(64), r)
		e.Shr(U32, h, lane, Int(4))
		e.Add(U32, ch, h, Int(2*ks))
		aLd[ks] = widen(f, asBase, swizzle(f, r, ch))
		// B: row wc·32 + lane%8 + 8·(lane/16), chunk 2ks + (lane/8)%2.
		r2, ch2, h2 := f.Reg(U32), f.Reg(U32), f.Reg(U32)
		e.And(B32, r2, lane, Int(7))
		e.Op("shl", B32, h2, h, Int(3))
		e.Add(U32, r2, r2, h2)
		e.MadLo(U32, r2, wc, Int(32), r2)
		e.Shr(U32, ch2, lane, Int(3))
		e.And(B32, ch2, ch2, Int(1))
		e.Add(U32, ch2, ch2, Int(2*ks))
		bLd[ks] = widen(f, bsBase, swizzle(f, r2, ch2))
	}
	acc := make([][]Reg, 16) // [4i+j]: m16 tile i, n8 tile j
	for x := range acc {
		acc[x] = f.Regs(F32, 4)
		for _, r := range acc[x] {
			e.Mov(F32, r, F32Imm(0))
		}
	}
	const mmaOp = "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
	// compute runs the warp's 4×4 mmas over the k-tile in the stage at
	// rOff; kt is the tile's index within its segment, K the segment's K.
	// A k16 half past K holds zeros (src-size 0) and adds nothing; the
	// LoRA loop skips it (r = 16 fills half of its only tile), the base
	// loop does not branch, so ptxas may hoist the second half's ldmatrix.
	compute := func(rOff, kt, K Reg, lora bool) {
		skip := f.NewLabel("khalf")
		for ks := range 2 {
			if ks == 1 && lora {
				k16, p := f.Reg(U32), f.Reg(Pred)
				e.MadLo(U32, k16, kt, Int(asyncKStep), Int(16))
				e.Setp("ge", U32, p, k16, K)
				f.If(p, false).Bra(skip)
			}
			aAddr, bAddr := f.Reg(U64), f.Reg(U64)
			e.Add(U64, aAddr, aLd[ks], rOff)
			e.Add(U64, bAddr, bLd[ks], rOff)
			var af [4]Vec
			for i := range 4 {
				af[i] = Vec(f.Regs(B32, 4))
				e.Raw("ldmatrix.sync.aligned.m8n8.x4.shared.b16", af[i], Addr{Base: aAddr, Off: i * 16 * asyncRowBytes})
			}
			var bf [2]Vec
			for jj := range 2 {
				bf[jj] = Vec(f.Regs(B32, 4))
				e.Raw("ldmatrix.sync.aligned.m8n8.x4.shared.b16", bf[jj], Addr{Base: bAddr, Off: jj * 16 * asyncRowBytes})
			}
			for i := range 4 {
				for j := range 4 {
					b := Vec{bf[j/2][2*(j%2)], bf[j/2][2*(j%2)+1]}
					d := Vec(acc[4*i+j])
					if !lora {
						e.Raw(mmaOp, d, af[i], b, d)
						continue
					}
					tmp := Vec(f.Regs(F32, 4))
					for _, r := range tmp {
						e.Mov(F32, r, F32Imm(0))
					}
					e.Raw(mmaOp, tmp, af[i], b, tmp)
					for x := range 4 {
						e.Fma(F32, d[x], tmp[x], alpha2, d[x])
					}
				}
			}
		}
		f.Place(skip)
	}

	// Prologue: tiles 0 and 1, one group each (empty past the end).
	wOff, rOff := f.Reg(U64), f.Reg(U64)
	e.Mov(U64, rOff, Int(0))
	for s := range asyncStages - 1 {
		tile, p := f.Reg(U32), f.Reg(Pred)
		e.Mov(U32, tile, Int(s))
		e.Mov(U64, wOff, Int(s*asyncStageBytes))
		after := f.NewLabel("pro")
		e.Setp("ge", U32, p, tile, T)
		f.If(p, false).Bra(after)
		load(tile, wOff)
		f.Place(after)
		commit()
	}
	e.Mov(U64, wOff, Int((asyncStages-1)*asyncStageBytes))
	t := f.Reg(U32)
	e.Mov(U32, t, Int(0))
	// loop emits the main loop over tiles [t, end).
	loop := func(end Reg, lora bool) {
		top, done, noLoad := f.NewLabel("kt"), f.NewLabel("ktdone"), f.NewLabel("noload")
		p := f.Reg(Pred)
		f.Place(top)
		e.Setp("ge", U32, p, t, end)
		f.If(p, false).Bra(done)
		e.Raw("cp.async.wait_group", Int(asyncStages-2))
		e.Bar()
		next, pn := f.Reg(U32), f.Reg(Pred)
		e.Add(U32, next, t, Int(asyncStages-1))
		e.Setp("ge", U32, pn, next, T)
		f.If(pn, false).Bra(noLoad)
		load(next, wOff)
		f.Place(noLoad)
		commit()
		rotate(wOff)
		kt, K := t, K1
		if lora {
			kt, K = f.Reg(U32), K2
			e.Sub(U32, kt, t, T1)
		}
		compute(rOff, kt, K, lora)
		rotate(rOff)
		e.Add(U32, t, t, Int(1))
		e.Bra(top)
		f.Place(done)
	}
	loop(T1, false)
	for _, r := range acc {
		for _, x := range r {
			e.Mul(F32, x, x, alpha1)
		}
	}
	loop(T, true)

	// Epilogue: bias, bounds, stores.
	hasBias := f.Reg(Pred)
	e.Setp("ne", U64, hasBias, bias, Int(0))
	var cols [8]Reg
	var colOK [8]Reg
	var bv [8]Reg
	for j := range 4 {
		for h := range 2 {
			x := 2*j + h
			cols[x], colOK[x], bv[x] = f.Reg(U32), f.Reg(Pred), f.Reg(F32)
			e.MadLo(U32, cols[x], wc, Int(32), col0)
			e.MadLo(U32, cols[x], ti, Int(2), cols[x])
			e.Add(U32, cols[x], cols[x], Int(8*j+h))
			e.Setp("lt", U32, colOK[x], cols[x], M)
			pb := f.Reg(Pred)
			e.Raw("and.pred", pb, colOK[x], hasBias)
			e.Mov(F32, bv[x], F32Imm(0))
			f.If(pb, false).Ld("global", F32, bv[x], Addr{Base: f.Index(bias, cols[x], 4)})
		}
	}
	for i := range 4 {
		for half := range 2 {
			row, rowOK := f.Reg(U32), f.Reg(Pred)
			e.MadLo(U32, row, wr, Int(64), row0)
			e.Add(U32, row, row, gi)
			e.Add(U32, row, row, Int(16*i+8*half))
			e.Setp("lt", U32, rowOK, row, N)
			rb := f.Reg(U32)
			e.Mul(U32, rb, row, M)
			crow := f.Index(c, rb, 4)
			for j := range 4 {
				for h := range 2 {
					x := 2*j + h
					ok := f.Reg(Pred)
					e.Raw("and.pred", ok, rowOK, colOK[x])
					v := acc[4*i+j][2*half+h]
					e.Add(F32, v, v, bv[x])
					f.If(ok, false).St("global", F32, Addr{Base: f.Index(crow, cols[x], 4)}, v)
				}
			}
		}
	}
	e.Ret()
	return f
}
