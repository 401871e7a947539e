package ptx

import "math"

// Causal attention with grouped-query heads, flash style: one warp per
// query row (forward, dq) or key row (dk, dv), keys or queries taken 32 at
// a time, one per lane, with an online softmax (running max and sum, the
// accumulators rescaled as the max grows). No T×T matrix exists anywhere;
// the backward keeps three floats per query row (max, sum, D = Σ P·dP).
// Each lane owns head dimensions lane, lane+32, …: HS ≤ maxHS.

// maxHS is the largest head size the attention kernels take (8 dimensions
// per lane).
const maxHS = 256

const accPerLane = maxHS / 32

// warpCtx is what a warp-per-row kernel shares.
type warpCtx struct {
	f                *Func
	tid, lane, warp  Reg
	hs               Reg // head size
	laneDim          []Reg
	laneDimOK        []Reg // lane + 32i < HS
	bufBase, bufWarp Reg   // this warp's shared buffers
}

func newWarpCtx(f *Func, hs Reg, buffers int) *warpCtx {
	e := f.E()
	w := &warpCtx{f: f, tid: f.Special(TidX), lane: f.Reg(U32), warp: f.Reg(U32), hs: hs}
	e.And(B32, w.lane, w.tid, Int(31))
	e.Shr(U32, w.warp, w.tid, Int(5))
	for i := range accPerLane {
		d, ok := f.Reg(U32), f.Reg(Pred)
		e.Add(U32, d, w.lane, Int(32*i))
		e.Setp("lt", U32, ok, d, hs)
		w.laneDim = append(w.laneDim, d)
		w.laneDimOK = append(w.laneDimOK, ok)
	}
	sh := f.Shared("rows", F32, 8*buffers*maxHS)
	w.bufBase = f.Reg(U64)
	e.Mov(U64, w.bufBase, sh)
	off := f.Reg(U32)
	e.Mul(U32, off, w.warp, Int(buffers*maxHS))
	w.bufWarp = f.Index(w.bufBase, off, 4)
	return w
}

// buffer returns the address of this warp's shared row buffer i.
func (w *warpCtx) buffer(i int) Reg {
	r := w.f.Reg(U64)
	w.f.E().Add(U64, r, w.bufWarp, Int(i*maxHS*4))
	return r
}

// loadRow copies HS floats from global row into the shared buffer buf,
// lanes striding by 32, then synchronises the warp.
func (w *warpCtx) loadRow(row, buf Reg) {
	f, e := w.f, w.f.E()
	for i := range accPerLane {
		v := f.Reg(F32)
		e.Mov(F32, v, F32Imm(0))
		f.If(w.laneDimOK[i], false).Ld("global", F32, v, Addr{Base: f.Index(row, w.laneDim[i], 4)})
		f.If(w.laneDimOK[i], false).St("shared", F32, Addr{Base: f.Index(buf, w.laneDim[i], 4)}, v)
	}
	e.Raw("bar.warp.sync", Int(0xffffffff))
}

// dot returns Σ_d buf[d]·row[d] over HS (a per-lane loop; valid guards it,
// giving 0 where it is false).
func (w *warpCtx) dot(buf, row, valid Reg) Reg {
	f, e := w.f, w.f.E()
	acc := f.Reg(F32)
	e.Mov(F32, acc, F32Imm(0))
	d := f.Reg(U32)
	e.Mov(U32, d, Int(0))
	loop, done := f.NewLabel("dot"), f.NewLabel("dotdone")
	f.If(valid, true).Bra(done)
	p := f.Reg(Pred)
	f.Place(loop)
	e.Setp("ge", U32, p, d, w.hs)
	f.If(p, false).Bra(done)
	a, b := f.Reg(F32), f.Reg(F32)
	e.Ld("shared", F32, a, Addr{Base: f.Index(buf, d, 4)})
	e.Ld("global", F32, b, Addr{Base: f.Index(row, d, 4)})
	e.Fma(F32, acc, a, b, acc)
	e.Add(U32, d, d, Int(1))
	e.Bra(loop)
	f.Place(done)
	return acc
}

// reduce returns op over the warp of a copy of v.
func (w *warpCtx) reduce(op string, v Reg) Reg {
	c := w.f.Reg(F32)
	w.f.E().Mov(F32, c, v)
	warpReduce(w.f, op, c)
	return c
}

// broadcast returns lane j's v in every lane.
func (w *warpCtx) broadcast(v, j Reg) Reg {
	r := w.f.Reg(F32)
	w.f.E().Raw("shfl.sync.idx.b32", r, v, j, Int(0x1f), Int(0xffffffff))
	return r
}

// rowAddr returns base + 4·(idx·stride + off).
func rowAddr(f *Func, base, idx, stride, off Reg) Reg {
	i := f.Reg(U32)
	f.E().MadLo(U32, i, idx, stride, off)
	return f.Index(base, i, 4)
}

// chunks runs body(start, idx, valid) for start = from, from+32, … < n,
// with idx = start + lane and valid = idx < n; the loop is warp-uniform.
func (w *warpCtx) chunks(from, n Reg, body func(start, idx, valid Reg)) {
	f, e := w.f, w.f.E()
	start := f.Reg(U32)
	e.Mov(U32, start, from)
	loop, done := f.NewLabel("chunk"), f.NewLabel("chunkdone")
	p := f.Reg(Pred)
	f.Place(loop)
	e.Setp("ge", U32, p, start, n)
	f.If(p, false).Bra(done)
	idx, valid := f.Reg(U32), f.Reg(Pred)
	e.Add(U32, idx, start, w.lane)
	e.Setp("lt", U32, valid, idx, n)
	body(start, idx, valid)
	e.Add(U32, start, start, Int(32))
	e.Bra(loop)
	f.Place(done)
}

// lanes runs body(j, idx) for j = 0 … 31 while start + j < n (warp-uniform).
func (w *warpCtx) lanes(start, n Reg, body func(j, idx Reg)) {
	f, e := w.f, w.f.E()
	j := f.Reg(U32)
	e.Mov(U32, j, Int(0))
	loop, done := f.NewLabel("lane"), f.NewLabel("lanedone")
	p, q := f.Reg(Pred), f.Reg(Pred)
	idx := f.Reg(U32)
	f.Place(loop)
	e.Add(U32, idx, start, j)
	e.Setp("ge", U32, p, idx, n)
	e.Setp("ge", U32, q, j, Int(32))
	e.Raw("or.pred", p, p, q)
	f.If(p, false).Bra(done)
	body(j, idx)
	e.Add(U32, j, j, Int(1))
	e.Bra(loop)
	f.Place(done)
}

// axpyRow adds a·row[d] to acc[i] for the lane's dimensions d.
func (w *warpCtx) axpyRow(acc []Reg, a, row Reg) {
	f := w.f
	for i := range accPerLane {
		x := f.Reg(F32)
		f.If(w.laneDimOK[i], false).Ld("global", F32, x, Addr{Base: f.Index(row, w.laneDim[i], 4)})
		f.If(w.laneDimOK[i], false).Fma(F32, acc[i], a, x, acc[i])
	}
}

// storeRow writes acc[i]·scale to row[d].
func (w *warpCtx) storeRow(row Reg, acc []Reg, scale Operand) {
	f := w.f
	for i := range accPerLane {
		v := f.Reg(F32)
		f.E().Mul(F32, v, acc[i], scale)
		f.If(w.laneDimOK[i], false).St("global", F32, Addr{Base: f.Index(row, w.laneDim[i], 4)}, v)
	}
}

func (w *warpCtx) zeros() []Reg {
	acc := w.f.Regs(F32, accPerLane)
	for _, r := range acc {
		w.f.E().Mov(F32, r, F32Imm(0))
	}
	return acc
}

// onlineSoftmax emits the forward core for one query row whose q is in
// shared buffer qs: keys from ≤ idx < nKeys at kBase + 4·idx·kvStride,
// values likewise, scores scaled then soft-capped (hasCap); out row
// written. Returns nothing: the caller owns the row.
func (w *warpCtx) onlineSoftmax(qs, kBase, vBase, kvStride, from, nKeys, scale, cap, hasCap, outRow Reg) {
	f, e := w.f, w.f.E()
	m, l := f.Reg(F32), f.Reg(F32)
	e.Mov(F32, m, F32Imm(negInf))
	e.Mov(F32, l, F32Imm(0))
	acc := w.zeros()
	zero := f.Reg(U32)
	e.Mov(U32, zero, Int(0))
	w.chunks(from, nKeys, func(start, idx, valid Reg) {
		krow := rowAddr(f, kBase, idx, kvStride, zero)
		s := w.dot(qs, krow, valid)
		e.Mul(F32, s, s, scale)
		capScore(f, s, cap, hasCap, false)
		e.Selp(F32, s, s, F32Imm(negInf), valid)
		mc := w.reduce("max", s)
		mnew := f.Reg(F32)
		e.Max(F32, mnew, m, mc)
		d := f.Reg(F32)
		e.Sub(F32, d, s, mnew)
		p := exp(f, d)
		e.Sub(F32, d, m, mnew)
		corr := exp(f, d)
		ps := w.reduce("add", p)
		e.Fma(F32, l, l, corr, ps)
		for _, a := range acc {
			e.Mul(F32, a, a, corr)
		}
		e.Mov(F32, m, mnew)
		w.lanes(start, nKeys, func(j, key Reg) {
			pj := w.broadcast(p, j)
			w.axpyRow(acc, pj, rowAddr(f, vBase, key, kvStride, zero))
		})
	})
	inv := f.Reg(F32)
	e.Div(F32, inv, F32Imm(1), l)
	w.storeRow(outRow, acc, inv)
}

var negInf = float32(math.Inf(-1))

// capScore soft-caps score s in place, s ← cap·tanh(s/cap), when hasCap
// (cap > 0, a kernel parameter, so the branch is warp-uniform); with grad
// it returns the derivative 1 − tanh²(s/cap), 1 without a cap.
func capScore(f *Func, s, cap, hasCap Reg, grad bool) Reg {
	e := f.E()
	var dc Reg
	if grad {
		dc = f.Reg(F32)
		e.Mov(F32, dc, F32Imm(1))
	}
	skip := f.NewLabel("nocap")
	f.If(hasCap, true).Bra(skip)
	y, u, d := tanhParts(f, s, cap)
	t, nt := f.Reg(F32), f.Reg(F32)
	e.Sub(F32, t, F32Imm(1), u)
	e.Div(F32, t, t, d)
	e.Op("neg", F32, nt, t)
	neg := f.Reg(Pred)
	e.Setp("lt", F32, neg, y, F32Imm(0))
	e.Selp(F32, t, nt, t, neg)
	e.Mul(F32, s, t, cap)
	if grad {
		dd := f.Reg(F32)
		e.Mul(F32, dc, u, F32Imm(4))
		e.Mul(F32, dd, d, d)
		e.Div(F32, dc, dc, dd)
	}
	f.Place(skip)
	return dc
}

// hasCapPred returns cap > 0.
func hasCapPred(f *Func, cap Reg) Reg {
	p := f.Reg(Pred)
	f.E().Setp("gt", F32, p, cap, F32Imm(0))
	return p
}

// windowLo returns the first key a query at position t attends to under
// sliding window W (0: none): t + 1 − W when W > 0 and t + 1 > W, else 0.
func windowLo(f *Func, t, W Reg) Reg {
	e := f.E()
	lo, tp1 := f.Reg(U32), f.Reg(U32)
	e.Mov(U32, lo, Int(0))
	e.Add(U32, tp1, t, Int(1))
	p, q := f.Reg(Pred), f.Reg(Pred)
	e.Setp("gt", U32, p, W, Int(0))
	e.Setp("gt", U32, q, tp1, W)
	e.Raw("and.pred", p, p, q)
	f.If(p, false).Sub(U32, lo, tp1, W)
	return lo
}

// windowEnd returns one past the last query that attends to key s under
// window W: min(T, s + W) when W > 0, else T.
func windowEnd(f *Func, s, T, W Reg) Reg {
	e := f.E()
	end, sw := f.Reg(U32), f.Reg(U32)
	e.Mov(U32, end, T)
	e.Add(U32, sw, s, W)
	p, q := f.Reg(Pred), f.Reg(Pred)
	e.Setp("gt", U32, p, W, Int(0))
	e.Setp("lt", U32, q, sw, T)
	e.Raw("and.pred", p, p, q)
	f.If(p, false).Mov(U32, end, sw)
	return end
}

// attnHeads decodes blockIdx.y = b·heads + h.
func attnHeads(f *Func, heads Reg) (b, h Reg) {
	e := f.E()
	bh := f.Special(CtaY)
	b, h = f.Reg(U32), f.Reg(U32)
	e.Op("div", U32, b, bh, heads)
	e.Op("rem", U32, h, bh, heads)
	return b, h
}

// kvHead returns h / (NH/KVH).
func kvHead(f *Func, h, NH, KVH Reg) Reg {
	group, g := f.Reg(U32), f.Reg(U32)
	f.E().Op("div", U32, group, NH, KVH)
	f.E().Op("div", U32, g, h, group)
	return g
}

// warpRow returns ctaid.x·8 + warp and whether it is < n; the warp returns
// when it is not (warp-uniform).
func warpRow(w *warpCtx, n Reg) Reg {
	f, e := w.f, w.f.E()
	r := f.Reg(U32)
	e.MadLo(U32, r, f.Special(CtaX), Int(8), w.warp)
	p := f.Reg(Pred)
	e.Setp("ge", U32, p, r, n)
	f.If(p, false).Ret()
	return r
}

const attnDoc = `
Layouts: q, out, dq, dout (B, T, NH*HS); k, v, dk, dv (B, T, KVH*HS); query head h reads kv head h/(NH/KVH).
One warp per row, 8 rows per 256-thread block; HS <= 256.`

func attention(Arch) *Func {
	f := NewFunc("lorac_attention", `Causal attention forward, online softmax (no TxT matrix): out = softmax(cap(q.k^T*scale) + causal window).v.
Params: out, q, k, v; B, T, NH, KVH, HS, W (window, 0: none); scale, cap (0: none). Grid (ceil(T/8), B*NH).`+attnDoc, 256)
	out, q, k, v := f.Param("out", U64), f.Param("q", U64), f.Param("k", U64), f.Param("v", U64)
	_, T, NH, KVH, HS := f.Param("B", U32), f.Param("T", U32), f.Param("NH", U32), f.Param("KVH", U32), f.Param("HS", U32)
	W := f.Param("W", U32)
	scale, cap := f.Param("scale", F32), f.Param("cap", F32)
	e := f.E()
	w := newWarpCtx(f, HS, 1)
	b, h := attnHeads(f, NH)
	t := warpRow(w, T)
	g := kvHead(f, h, NH, KVH)
	C, KC := f.Reg(U32), f.Reg(U32)
	e.Mul(U32, C, NH, HS)
	e.Mul(U32, KC, KVH, HS)
	bt, hOff, gOff, bT := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.MadLo(U32, bt, b, T, t)
	e.Mul(U32, hOff, h, HS)
	e.Mul(U32, gOff, g, HS)
	e.Mul(U32, bT, b, T)
	qRow, oRow := rowAddr(f, q, bt, C, hOff), rowAddr(f, out, bt, C, hOff)
	kBase, vBase := rowAddr(f, k, bT, KC, gOff), rowAddr(f, v, bT, KC, gOff)
	qs := w.buffer(0)
	w.loadRow(qRow, qs)
	n := f.Reg(U32)
	e.Add(U32, n, t, Int(1))
	w.onlineSoftmax(qs, kBase, vBase, KC, windowLo(f, t, W), n, scale, cap, hasCapPred(f, cap), oRow)
	e.Ret()
	return f
}

func kvAppend(Arch) *Func {
	f := NewFunc("lorac_kv_append", `Decode: store each sequence's new key and value at position pos[b] of the caches.
Params: kcache, vcache (B, Ctx, KVH*HS), k, v (B, KVH*HS), pos (B s32); B, Ctx, W = KVH*HS. Grid-stride over B*W.`, 256)
	kc, vc, k, v, pos := f.Param("kcache", U64), f.Param("vcache", U64), f.Param("k", U64), f.Param("v", U64), f.Param("pos", U64)
	B, Ctx, W := f.Param("B", U32), f.Param("Ctx", U32), f.Param("W", U32)
	e := f.E()
	n := f.Reg(U32)
	e.Mul(U32, n, B, W)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		b, c, p := f.Reg(U32), f.Reg(U32), f.Reg(S32)
		e.Op("div", U32, b, i, W)
		e.Op("rem", U32, c, i, W)
		e.Ld("global", S32, p, Addr{Base: f.Index(pos, b, 4)})
		row := f.Reg(U32)
		e.MadLo(U32, row, b, Ctx, p)
		dst := f.Reg(U32)
		e.MadLo(U32, dst, row, W, c)
		for _, pair := range [][2]Reg{{k, kc}, {v, vc}} {
			x := f.Reg(F32)
			e.Ld("global", F32, x, Addr{Base: f.Index(pair[0], i, 4)})
			e.St("global", F32, Addr{Base: f.Index(pair[1], dst, 4)}, x)
		}
	})
	return f
}

func attentionDecode(Arch) *Func {
	f := NewFunc("lorac_attention_decode", `Decode attention: each query head of sequence b attends over cache positions 0..pos[b], the last W under a window (after lorac_kv_append).
Params: out, q (B, NH*HS), kcache, vcache (B, Ctx, KVH*HS), pos (B s32); B, Ctx, NH, KVH, HS, W; scale, cap.
One warp per head, grid (ceil(NH/8), B).`, 256)
	out, q, kc, vc, pos := f.Param("out", U64), f.Param("q", U64), f.Param("kcache", U64), f.Param("vcache", U64), f.Param("pos", U64)
	_, Ctx, NH, KVH, HS := f.Param("B", U32), f.Param("Ctx", U32), f.Param("NH", U32), f.Param("KVH", U32), f.Param("HS", U32)
	W := f.Param("W", U32)
	scale, cap := f.Param("scale", F32), f.Param("cap", F32)
	e := f.E()
	w := newWarpCtx(f, HS, 1)
	b := f.Special(CtaY)
	h := warpRow(w, NH)
	g := kvHead(f, h, NH, KVH)
	C, KC := f.Reg(U32), f.Reg(U32)
	e.Mul(U32, C, NH, HS)
	e.Mul(U32, KC, KVH, HS)
	hOff, gOff, bC := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Mul(U32, hOff, h, HS)
	e.Mul(U32, gOff, g, HS)
	e.Mul(U32, bC, b, Ctx)
	qRow, oRow := rowAddr(f, q, b, C, hOff), rowAddr(f, out, b, C, hOff)
	kBase, vBase := rowAddr(f, kc, bC, KC, gOff), rowAddr(f, vc, bC, KC, gOff)
	p := f.Reg(S32)
	e.Ld("global", S32, p, Addr{Base: f.Index(pos, b, 4)})
	n := f.Reg(U32)
	e.Add(U32, n, Reg(p), Int(1))
	qs := w.buffer(0)
	w.loadRow(qRow, qs)
	w.onlineSoftmax(qs, kBase, vBase, KC, windowLo(f, Reg(p), W), n, scale, cap, hasCapPred(f, cap), oRow)
	e.Ret()
	return f
}

// attentionGradQ: per query row, the softmax statistics, D = Σ P·dP, and
// dq = scale·Σ_s P_s(dP_s − D)·k_s; the statistics go to stats for the
// key-side kernel.
func attentionGradQ(Arch) *Func {
	f := NewFunc("lorac_attention_grad_q", `Causal attention backward, query side: dq, and per query row (max, sum, D) into stats.
Params: dq, stats (B*NH*T*3), dout, q, k, v; B, T, NH, KVH, HS, W; scale, cap. Grid (ceil(T/8), B*NH).`+attnDoc, 256)
	dq, stats, dout, q, k, v := f.Param("dq", U64), f.Param("stats", U64), f.Param("dout", U64), f.Param("q", U64), f.Param("k", U64), f.Param("v", U64)
	_, T, NH, KVH, HS := f.Param("B", U32), f.Param("T", U32), f.Param("NH", U32), f.Param("KVH", U32), f.Param("HS", U32)
	W := f.Param("W", U32)
	scale, cap := f.Param("scale", F32), f.Param("cap", F32)
	hasCap := hasCapPred(f, cap)
	e := f.E()
	w := newWarpCtx(f, HS, 2)
	b, h := attnHeads(f, NH)
	t := warpRow(w, T)
	g := kvHead(f, h, NH, KVH)
	C, KC := f.Reg(U32), f.Reg(U32)
	e.Mul(U32, C, NH, HS)
	e.Mul(U32, KC, KVH, HS)
	bt, hOff, gOff, bT, zero := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.MadLo(U32, bt, b, T, t)
	e.Mul(U32, hOff, h, HS)
	e.Mul(U32, gOff, g, HS)
	e.Mul(U32, bT, b, T)
	e.Mov(U32, zero, Int(0))
	kBase, vBase := rowAddr(f, k, bT, KC, gOff), rowAddr(f, v, bT, KC, gOff)
	qs, dos := w.buffer(0), w.buffer(1)
	w.loadRow(rowAddr(f, q, bt, C, hOff), qs)
	w.loadRow(rowAddr(f, dout, bt, C, hOff), dos)
	n := f.Reg(U32)
	e.Add(U32, n, t, Int(1))
	lo := windowLo(f, t, W)
	// score returns the capped score (−∞ off the row) and the cap's
	// derivative.
	score := func(idx, valid Reg) (s, dc Reg) {
		s = w.dot(qs, rowAddr(f, kBase, idx, KC, zero), valid)
		e.Mul(F32, s, s, scale)
		dc = capScore(f, s, cap, hasCap, true)
		e.Selp(F32, s, s, F32Imm(negInf), valid)
		return s, dc
	}
	// Pass 1: max and sum.
	m, l := f.Reg(F32), f.Reg(F32)
	e.Mov(F32, m, F32Imm(negInf))
	e.Mov(F32, l, F32Imm(0))
	w.chunks(lo, n, func(_, idx, valid Reg) {
		s, _ := score(idx, valid)
		mnew, d := f.Reg(F32), f.Reg(F32)
		e.Max(F32, mnew, m, w.reduce("max", s))
		e.Sub(F32, d, s, mnew)
		p := exp(f, d)
		e.Sub(F32, d, m, mnew)
		e.Fma(F32, l, l, exp(f, d), w.reduce("add", p))
		e.Mov(F32, m, mnew)
	})
	invL := f.Reg(F32)
	e.Div(F32, invL, F32Imm(1), l)
	probs := func(idx, valid Reg) (p, dp, dc Reg) {
		s, dc := score(idx, valid)
		d := f.Reg(F32)
		e.Sub(F32, d, s, m)
		p = exp(f, d)
		e.Mul(F32, p, p, invL)
		dp = w.dot(dos, rowAddr(f, vBase, idx, KC, zero), valid)
		return p, dp, dc
	}
	// Pass 2: D = Σ P·dP.
	D := f.Reg(F32)
	e.Mov(F32, D, F32Imm(0))
	w.chunks(lo, n, func(_, idx, valid Reg) {
		p, dp, _ := probs(idx, valid)
		pd := f.Reg(F32)
		e.Mul(F32, pd, p, dp)
		e.Add(F32, D, D, w.reduce("add", pd))
	})
	// Pass 3: dq, dS = P(dP − D)·cap′.
	acc := w.zeros()
	w.chunks(lo, n, func(start, idx, valid Reg) {
		p, dp, dc := probs(idx, valid)
		ds := f.Reg(F32)
		e.Sub(F32, ds, dp, D)
		e.Mul(F32, ds, ds, p)
		e.Mul(F32, ds, ds, dc)
		w.lanes(start, n, func(j, key Reg) {
			w.axpyRow(acc, w.broadcast(ds, j), rowAddr(f, kBase, key, KC, zero))
		})
	})
	w.storeRow(rowAddr(f, dq, bt, C, hOff), acc, scale)
	first := f.Reg(Pred)
	e.Setp("eq", U32, first, w.lane, Int(0))
	si := f.Reg(U32)
	e.Mul(U32, si, f.Special(CtaY), T)
	e.Add(U32, si, si, t)
	e.Mul(U32, si, si, Int(3))
	sa := f.Index(stats, si, 4)
	for i, r := range []Reg{m, l, D} {
		f.If(first, false).St("global", F32, Addr{Base: sa, Off: 4 * i}, r)
	}
	e.Ret()
	return f
}

// attentionGradKV: per key row s of kv head g, over the query heads of its
// group and the queries t ≥ s: dk = scale·Σ dS·q, dv = Σ P·dout.
func attentionGradKV(Arch) *Func {
	f := NewFunc("lorac_attention_grad_kv", `Causal attention backward, key side: dk, dv from the stats lorac_attention_grad_q wrote.
Params: dk, dv, stats, dout, q, k, v; B, T, NH, KVH, HS, W; scale, cap. Grid (ceil(T/8), B*KVH).`+attnDoc, 256)
	dk, dv, stats, dout, q, k, v := f.Param("dk", U64), f.Param("dv", U64), f.Param("stats", U64), f.Param("dout", U64), f.Param("q", U64), f.Param("k", U64), f.Param("v", U64)
	_, T, NH, KVH, HS := f.Param("B", U32), f.Param("T", U32), f.Param("NH", U32), f.Param("KVH", U32), f.Param("HS", U32)
	W := f.Param("W", U32)
	scale, cap := f.Param("scale", F32), f.Param("cap", F32)
	hasCap := hasCapPred(f, cap)
	e := f.E()
	w := newWarpCtx(f, HS, 2)
	b, g := attnHeads(f, KVH)
	s := warpRow(w, T)
	C, KC, group := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.Mul(U32, C, NH, HS)
	e.Mul(U32, KC, KVH, HS)
	e.Op("div", U32, group, NH, KVH)
	bs, gOff, bT, zero := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.MadLo(U32, bs, b, T, s)
	e.Mul(U32, gOff, g, HS)
	e.Mul(U32, bT, b, T)
	e.Mov(U32, zero, Int(0))
	ks, vs := w.buffer(0), w.buffer(1)
	w.loadRow(rowAddr(f, k, bs, KC, gOff), ks)
	w.loadRow(rowAddr(f, v, bs, KC, gOff), vs)
	accK, accV := w.zeros(), w.zeros()
	end := windowEnd(f, s, T, W) // the queries that attend to key s: s ≤ t < end
	j := f.Reg(U32)
	e.Mov(U32, j, Int(0))
	hl, hd := f.NewLabel("head"), f.NewLabel("headdone")
	ph := f.Reg(Pred)
	f.Place(hl)
	e.Setp("ge", U32, ph, j, group)
	f.If(ph, false).Bra(hd)
	h, hOff, statRow := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.MadLo(U32, h, g, group, j)
	e.Mul(U32, hOff, h, HS)
	// stats row of (b, h, t = 0): ((b·NH + h)·T)·3
	e.MadLo(U32, statRow, b, NH, h)
	e.Mul(U32, statRow, statRow, T)
	qBase, doBase := rowAddr(f, q, bT, C, hOff), rowAddr(f, dout, bT, C, hOff)
	w.chunks(s, end, func(start, t, valid Reg) {
		qRow, doRow := rowAddr(f, qBase, t, C, zero), rowAddr(f, doBase, t, C, zero)
		sc := w.dot(ks, qRow, valid)
		dp := w.dot(vs, doRow, valid)
		si := f.Reg(U32)
		e.Add(U32, si, statRow, t)
		e.Mul(U32, si, si, Int(3))
		sa := f.Index(stats, si, 4)
		mx, sum, D := f.Reg(F32), f.Reg(F32), f.Reg(F32)
		for i, r := range []Reg{mx, sum, D} {
			e.Mov(F32, r, F32Imm(1))
			f.If(valid, false).Ld("global", F32, r, Addr{Base: sa, Off: 4 * i})
		}
		e.Mul(F32, sc, sc, scale)
		dc := capScore(f, sc, cap, hasCap, true)
		e.Sub(F32, sc, sc, mx)
		p := exp(f, sc)
		e.Div(F32, p, p, sum)
		e.Selp(F32, p, p, F32Imm(0), valid)
		ds := f.Reg(F32)
		e.Sub(F32, ds, dp, D)
		e.Mul(F32, ds, ds, p)
		e.Mul(F32, ds, ds, dc)
		w.lanes(start, end, func(jj, tt Reg) {
			w.axpyRow(accK, w.broadcast(ds, jj), rowAddr(f, qBase, tt, C, zero))
			w.axpyRow(accV, w.broadcast(p, jj), rowAddr(f, doBase, tt, C, zero))
		})
	})
	e.Add(U32, j, j, Int(1))
	e.Bra(hl)
	f.Place(hd)
	w.storeRow(rowAddr(f, dk, bs, KC, gOff), accK, scale)
	w.storeRow(rowAddr(f, dv, bs, KC, gOff), accV, F32Imm(1))
	e.Ret()
	return f
}
