package ptx

import "math"

// The remaining ops of the lowering table: norm and softmax backward,
// column reductions (parameter gradients), RoPE, embedding, column copies
// and fill.

// rowStats writes each row's mean and 1/√(var + eps) (LayerNorm), or 0 and
// 1/√(mean(x²) + eps) (RMSNorm, rms ≠ 0), for the column kernels.
func rowStats(Arch) *Func {
	f := NewFunc("lorac_row_stats", `Per-row statistics: stats[2n] = mean, stats[2n+1] = rstd (LayerNorm), or 0 and 1/sqrt(mean(x^2)+eps) when rms != 0.
Params: stats (2N f32), x (N*C); N, C; eps; rms. One 256-thread block per row.`, 256)
	stats, x := f.Param("stats", U64), f.Param("x", U64)
	N, C, eps, rms := f.Param("N", U32), f.Param("C", U32), f.Param("eps", F32), f.Param("rms", U32)
	e := f.E()
	c := newRowCtx(f)
	row, base := rowStart(f, N, C)
	xr := rowPtr(f, x, base)
	isRMS := f.Reg(Pred)
	e.Setp("ne", U32, isRMS, rms, Int(0))
	mean := f.Reg(F32)
	e.Mov(F32, mean, F32Imm(0))
	cf := cvtF32(f, C)
	skip := f.NewLabel("rms")
	f.If(isRMS, false).Bra(skip)
	sum := f.Reg(F32)
	e.Mov(F32, sum, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Add(F32, sum, sum, v)
	})
	e.Div(F32, mean, c.blockReduce("add", sum), cf)
	f.Place(skip)
	sq := f.Reg(F32)
	e.Mov(F32, sq, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Sub(F32, v, v, mean)
		e.Fma(F32, sq, v, v, sq)
	})
	vt, r := c.blockReduce("add", sq), f.Reg(F32)
	e.Div(F32, vt, vt, cf)
	e.Add(F32, vt, vt, eps)
	e.Sqrt(F32, vt, vt)
	e.Div(F32, r, F32Imm(1), vt)
	first := f.Reg(Pred)
	e.Setp("eq", U32, first, c.tid, Int(0))
	i := f.Reg(U32)
	e.Mul(U32, i, row, Int(2))
	a := f.Index(stats, i, 4)
	f.If(first, false).St("global", F32, Addr{Base: a}, mean)
	f.If(first, false).St("global", F32, Addr{Base: a, Off: 4}, r)
	e.Ret()
	return f
}

// normGrad is LayerNorm's (rms false) or RMSNorm's input gradient, per row.
func normGrad(rms bool) func(Arch) *Func {
	name, doc := "lorac_layernorm_grad", "LayerNorm backward: dinp = rstd*(g - mean(g) - xhat*mean(g.*xhat)), g = dout.*gain."
	if rms {
		name, doc = "lorac_rmsnorm_grad", "RMSNorm backward: dinp = r*g - r^3*x*mean(g.*x), g = dout.*(offset + gain)."
	}
	params := "\nParams: dinp, dout, x (N*C), gain (C); N, C; eps."
	if rms {
		params = "\nParams: dinp, dout, x (N*C), gain (C); N, C; eps, offset."
	}
	return func(Arch) *Func {
		f := NewFunc(name, doc+params+" One 256-thread block per row.", 256)
		dinp, dout, x, gain := f.Param("dinp", U64), f.Param("dout", U64), f.Param("x", U64), f.Param("gain", U64)
		N, C, eps := f.Param("N", U32), f.Param("C", U32), f.Param("eps", F32)
		var offset Reg
		if rms {
			offset = f.Param("offset", F32)
		}
		e := f.E()
		c := newRowCtx(f)
		_, base := rowStart(f, N, C)
		xr, dr, ir := rowPtr(f, x, base), rowPtr(f, dout, base), rowPtr(f, dinp, base)
		cf := cvtF32(f, C)
		mean := f.Reg(F32)
		e.Mov(F32, mean, F32Imm(0))
		load := func(row, col Reg) Reg {
			v := f.Reg(F32)
			e.Ld("global", F32, v, Addr{Base: f.Index(row, col, 4)})
			return v
		}
		if !rms {
			sum := f.Reg(F32)
			e.Mov(F32, sum, F32Imm(0))
			c.each(C, func(col Reg) { e.Add(F32, sum, sum, load(xr, col)) })
			e.Div(F32, mean, c.blockReduce("add", sum), cf)
		}
		sq := f.Reg(F32)
		e.Mov(F32, sq, F32Imm(0))
		c.each(C, func(col Reg) {
			v := load(xr, col)
			e.Sub(F32, v, v, mean)
			e.Fma(F32, sq, v, v, sq)
		})
		vt, r := c.blockReduce("add", sq), f.Reg(F32)
		e.Div(F32, vt, vt, cf)
		e.Add(F32, vt, vt, eps)
		e.Sqrt(F32, vt, vt)
		e.Div(F32, r, F32Imm(1), vt)
		// xhat = (x − mean)·r (LayerNorm) or x (RMSNorm, for mean(g⊙x)).
		xhat := func(col Reg) Reg {
			v := load(xr, col)
			if !rms {
				e.Sub(F32, v, v, mean)
				e.Mul(F32, v, v, r)
			}
			return v
		}
		g := func(col Reg) Reg {
			v, gn := load(dr, col), load(gain, col)
			if rms {
				e.Add(F32, gn, offset, gn)
			}
			e.Mul(F32, v, v, gn)
			return v
		}
		sg, sgx := f.Reg(F32), f.Reg(F32)
		e.Mov(F32, sg, F32Imm(0))
		e.Mov(F32, sgx, F32Imm(0))
		c.each(C, func(col Reg) {
			gv := g(col)
			e.Add(F32, sg, sg, gv)
			e.Fma(F32, sgx, gv, xhat(col), sgx)
		})
		mg, mgx := c.blockReduce("add", sg), c.blockReduce("add", sgx)
		e.Div(F32, mg, mg, cf)
		e.Div(F32, mgx, mgx, cf)
		c.each(C, func(col Reg) {
			gv, xv, out := g(col), xhat(col), f.Reg(F32)
			if rms {
				// r·g − r³·x·mgx
				r3 := f.Reg(F32)
				e.Mul(F32, r3, r, r)
				e.Mul(F32, r3, r3, r)
				e.Mul(F32, r3, r3, mgx)
				e.Mul(F32, r3, r3, xv)
				e.Mul(F32, out, r, gv)
				e.Sub(F32, out, out, r3)
			} else {
				e.Sub(F32, out, gv, mg)
				e.Mul(F32, xv, xv, mgx)
				e.Sub(F32, out, out, xv)
				e.Mul(F32, out, out, r)
			}
			e.St("global", F32, Addr{Base: f.Index(ir, col, 4)}, out)
		})
		e.Ret()
		return f
	}
}

func softmaxGrad(Arch) *Func {
	f := NewFunc("lorac_softmax_grad", `Softmax backward: dinp = out.*(dout - sum(dout.*out)) per row.
Params: dinp, dout, out (N*C); N, C. One 256-thread block per row.`, 256)
	dinp, dout, out := f.Param("dinp", U64), f.Param("dout", U64), f.Param("out", U64)
	N, C := f.Param("N", U32), f.Param("C", U32)
	e := f.E()
	c := newRowCtx(f)
	_, base := rowStart(f, N, C)
	dr, yr, ir := rowPtr(f, dout, base), rowPtr(f, out, base), rowPtr(f, dinp, base)
	s := f.Reg(F32)
	e.Mov(F32, s, F32Imm(0))
	c.each(C, func(col Reg) {
		d, y := f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, d, Addr{Base: f.Index(dr, col, 4)})
		e.Ld("global", F32, y, Addr{Base: f.Index(yr, col, 4)})
		e.Fma(F32, s, d, y, s)
	})
	tot := c.blockReduce("add", s)
	c.each(C, func(col Reg) {
		d, y := f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, d, Addr{Base: f.Index(dr, col, 4)})
		e.Ld("global", F32, y, Addr{Base: f.Index(yr, col, 4)})
		e.Sub(F32, d, d, tot)
		e.Mul(F32, d, d, y)
		e.St("global", F32, Addr{Base: f.Index(ir, col, 4)}, d)
	})
	e.Ret()
	return f
}

// colGrads sums over rows per column: dgain[c] = Σ dout·(x − mean)·rstd,
// dbias[c] = Σ dout, with the statistics of lorac_row_stats. It serves
// LayerNormGradParams, RMSNormGradGain (mean 0) and LinearGradBias (dgain
// 0); one thread per column, rows in order, so the sums are deterministic.
func colGrads(Arch) *Func {
	f := NewFunc("lorac_col_grads", `Column sums: dgain[c] = sum_n dout*(x-mean_n)*rstd_n (if dgain != 0), dbias[c] = sum_n dout (if dbias != 0).
Params: dgain, dbias (C or 0), dout, x (N*C; x may be 0 without dgain), stats (2N, lorac_row_stats); N, C. Grid-stride over columns.`, 256)
	dgain, dbias, dout, x, stats := f.Param("dgain", U64), f.Param("dbias", U64), f.Param("dout", U64), f.Param("x", U64), f.Param("stats", U64)
	N, C := f.Param("N", U32), f.Param("C", U32)
	e := f.E()
	hasG, hasB := f.Reg(Pred), f.Reg(Pred)
	e.Setp("ne", U64, hasG, dgain, Int(0))
	e.Setp("ne", U64, hasB, dbias, Int(0))
	col, stride := f.GlobalIndex()
	gridLoop(f, col, stride, C, func() {
		sg, sb := f.Reg(F32), f.Reg(F32)
		e.Mov(F32, sg, F32Imm(0))
		e.Mov(F32, sb, F32Imm(0))
		n, idx := f.Reg(U32), f.Reg(U32)
		e.Mov(U32, n, Int(0))
		e.Mov(U32, idx, col)
		loop, done := f.NewLabel("n"), f.NewLabel("ndone")
		p := f.Reg(Pred)
		f.Place(loop)
		e.Setp("ge", U32, p, n, N)
		f.If(p, false).Bra(done)
		d := f.Reg(F32)
		e.Ld("global", F32, d, Addr{Base: f.Index(dout, idx, 4)})
		e.Add(F32, sb, sb, d)
		xv, mean, rstd := f.Reg(F32), f.Reg(F32), f.Reg(F32)
		e.Mov(F32, xv, F32Imm(0))
		e.Mov(F32, mean, F32Imm(0))
		e.Mov(F32, rstd, F32Imm(0))
		gx := f.If(hasG, false)
		gx.Ld("global", F32, xv, Addr{Base: f.Index(x, idx, 4)})
		sIdx := f.Reg(U32)
		e.Mul(U32, sIdx, n, Int(2))
		sa := f.Index(stats, sIdx, 4)
		gx.Ld("global", F32, mean, Addr{Base: sa})
		gx.Ld("global", F32, rstd, Addr{Base: sa, Off: 4})
		e.Sub(F32, xv, xv, mean)
		e.Mul(F32, xv, xv, rstd)
		e.Fma(F32, sg, d, xv, sg)
		e.Add(U32, n, n, Int(1))
		e.Add(U32, idx, idx, C)
		e.Bra(loop)
		f.Place(done)
		f.If(hasG, false).St("global", F32, Addr{Base: f.Index(dgain, col, 4)}, sg)
		f.If(hasB, false).St("global", F32, Addr{Base: f.Index(dbias, col, 4)}, sb)
	})
	return f
}

// rope rotates pairs (i, i + HS/2) of every head by pos·invFreq[i], sign
// −1 for the gradient. The angle is formed and reduced to [−π, π] in f64
// (invFreq is the host's float64 table, as the CPU kernel computes it), then
// sin and cos run on the f32 approximations (absolute error about 2⁻²¹).
func rope(Arch) *Func {
	f := NewFunc("lorac_rope", `RoPE (rotate_half): out[i] = x[i]*cos - x[i+h]*sin, out[i+h] = x[i+h]*cos + x[i]*sin, h = HS/2, angle pos[n]*invFreq[i]; sign -1 for the gradient. In place allowed.
Params: out, x (N*NH*HS), pos (N s32), invFreq (HS/2 f64); N, NH, HS; sign. Grid-stride over N*NH*HS/2.`, 256)
	out, x, pos, invFreq := f.Param("out", U64), f.Param("x", U64), f.Param("pos", U64), f.Param("invFreq", U64)
	N, NH, HS, sign := f.Param("N", U32), f.Param("NH", U32), f.Param("HS", U32), f.Param("sign", F32)
	e := f.E()
	half, total, pairsRow := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Shr(U32, half, HS, Int(1))
	e.Mul(U32, pairsRow, NH, half)
	e.Mul(U32, total, N, pairsRow)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, total, func() {
		n, rest, h, k := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
		e.Op("div", U32, n, i, pairsRow)
		e.Op("rem", U32, rest, i, pairsRow)
		e.Op("div", U32, h, rest, half)
		e.Op("rem", U32, k, rest, half)
		p, pd, fr, ang, q, r := f.Reg(S32), f.Reg(F64), f.Reg(F64), f.Reg(F64), f.Reg(F64), f.Reg(F64)
		e.Ld("global", S32, p, Addr{Base: f.Index(pos, n, 4)})
		e.Raw("cvt.rn.f64.s32", pd, p)
		e.Ld("global", F64, fr, Addr{Base: f.Index(invFreq, k, 8)})
		e.Mul(F64, ang, pd, fr)
		e.Mul(F64, q, ang, F64Imm(1/(2*math.Pi)))
		e.Raw("cvt.rni.f64.f64", q, q)
		e.Fma(F64, r, q, F64Imm(-2*math.Pi), ang)
		r32, s, c := f.Reg(F32), f.Reg(F32), f.Reg(F32)
		e.Raw("cvt.rn.f32.f64", r32, r)
		e.Raw("sin.approx.f32", s, r32)
		e.Raw("cos.approx.f32", c, r32)
		e.Mul(F32, s, s, sign)
		// element offset of x[n, h, k]
		off := f.Reg(U32)
		e.MadLo(U32, off, n, NH, h)
		e.Mul(U32, off, off, HS)
		e.Add(U32, off, off, k)
		a, b := f.Index(x, off, 4), f.Reg(U64)
		hb := f.Reg(U64)
		e.Raw("mul.wide.u32", hb, half, Int(4))
		e.Add(U64, b, a, hb)
		x0, x1, y0, y1 := f.Reg(F32), f.Reg(F32), f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, x0, Addr{Base: a})
		e.Ld("global", F32, x1, Addr{Base: b})
		// y0 = x0·c − x1·s; y1 = x1·c + x0·s
		xs := f.Reg(F32)
		e.Mul(F32, xs, x1, s)
		e.Mul(F32, y0, x0, c)
		e.Sub(F32, y0, y0, xs)
		e.Mul(F32, y1, x1, c)
		e.Mul(F32, xs, x0, s)
		e.Add(F32, y1, y1, xs)
		oa, ob := f.Index(out, off, 4), f.Reg(U64)
		e.Add(U64, ob, oa, hb)
		e.St("global", F32, Addr{Base: oa}, y0)
		e.St("global", F32, Addr{Base: ob}, y1)
	})
	return f
}

func embedding(Arch) *Func {
	f := NewFunc("lorac_embedding", `out[n,:] = table[ids[n],:]; ids must be in [0, V) (unchecked, as on the CPU).
Params: out (N*C), ids (N s32), table (V*C); N, C. Grid-stride over N*C.`, 256)
	out, ids, table := f.Param("out", U64), f.Param("ids", U64), f.Param("table", U64)
	N, C := f.Param("N", U32), f.Param("C", U32)
	e := f.E()
	total := f.Reg(U32)
	e.Mul(U32, total, N, C)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, total, func() {
		n, c, id := f.Reg(U32), f.Reg(U32), f.Reg(S32)
		e.Op("div", U32, n, i, C)
		e.Op("rem", U32, c, i, C)
		e.Ld("global", S32, id, Addr{Base: f.Index(ids, n, 4)})
		src := f.Reg(U32)
		e.MadLo(U32, src, Reg(id), C, c)
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(table, src, 4)})
		e.St("global", F32, Addr{Base: f.Index(out, i, 4)}, v)
	})
	return f
}

// embeddingGrad: one thread per column clears it, then adds every row's
// gradient in row order: deterministic, no atomics.
func embeddingGrad(Arch) *Func {
	f := NewFunc("lorac_embedding_grad", `dtable = 0, then dtable[ids[n],:] += dout[n,:] in row order (one thread per column, no atomics).
Params: dtable (V*C), dout (N*C), ids (N s32); N, V, C. Grid-stride over columns.`, 256)
	dtable, dout, ids := f.Param("dtable", U64), f.Param("dout", U64), f.Param("ids", U64)
	N, V, C := f.Param("N", U32), f.Param("V", U32), f.Param("C", U32)
	e := f.E()
	col, stride := f.GlobalIndex()
	gridLoop(f, col, stride, C, func() {
		r := f.Reg(U32)
		e.Mov(U32, r, Int(0))
		zl, zd := f.NewLabel("zero"), f.NewLabel("zerodone")
		p := f.Reg(Pred)
		f.Place(zl)
		e.Setp("ge", U32, p, r, V)
		f.If(p, false).Bra(zd)
		idx := f.Reg(U32)
		e.MadLo(U32, idx, r, C, col)
		e.St("global", F32, Addr{Base: f.Index(dtable, idx, 4)}, F32Imm(0))
		e.Add(U32, r, r, Int(1))
		e.Bra(zl)
		f.Place(zd)
		e.Mov(U32, r, Int(0))
		al, ad := f.NewLabel("add"), f.NewLabel("adddone")
		f.Place(al)
		e.Setp("ge", U32, p, r, N)
		f.If(p, false).Bra(ad)
		id, di, si := f.Reg(S32), f.Reg(U32), f.Reg(U32)
		e.Ld("global", S32, id, Addr{Base: f.Index(ids, r, 4)})
		e.MadLo(U32, di, Reg(id), C, col)
		e.MadLo(U32, si, r, C, col)
		a := f.Index(dtable, di, 4)
		acc, g := f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, acc, Addr{Base: a})
		e.Ld("global", F32, g, Addr{Base: f.Index(dout, si, 4)})
		e.Add(F32, acc, acc, g)
		e.St("global", F32, Addr{Base: a}, acc)
		e.Add(U32, r, r, Int(1))
		e.Bra(al)
		f.Place(ad)
	})
	return f
}

func copyCols(Arch) *Func {
	f := NewFunc("lorac_copy_cols", `dst[r*dstStride + dstOff + j] = src[r*srcStride + srcOff + j] for r < rows, j < width (split, concat).
Params: dst, src; dstStride, dstOff, srcStride, srcOff, rows, width. Grid-stride over rows*width.`, 256)
	dst, src := f.Param("dst", U64), f.Param("src", U64)
	ds, do, ss, so := f.Param("dstStride", U32), f.Param("dstOff", U32), f.Param("srcStride", U32), f.Param("srcOff", U32)
	rows, width := f.Param("rows", U32), f.Param("width", U32)
	e := f.E()
	total := f.Reg(U32)
	e.Mul(U32, total, rows, width)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, total, func() {
		r, j := f.Reg(U32), f.Reg(U32)
		e.Op("div", U32, r, i, width)
		e.Op("rem", U32, j, i, width)
		si, di := f.Reg(U32), f.Reg(U32)
		e.MadLo(U32, si, r, ss, so)
		e.Add(U32, si, si, j)
		e.MadLo(U32, di, r, ds, do)
		e.Add(U32, di, di, j)
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(src, si, 4)})
		e.St("global", F32, Addr{Base: f.Index(dst, di, 4)}, v)
	})
	return f
}

func fill(Arch) *Func {
	f := NewFunc("lorac_fill", "dst[i] = v for i < n.\nParams: dst; n; v. Grid-stride.", 256)
	dst, n, v := f.Param("dst", U64), f.Param("n", U32), f.Param("v", F32)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		f.E().St("global", F32, Addr{Base: f.Index(dst, i, 4)}, v)
	})
	return f
}
