package ptx

import (
	"fmt"
	"math"
)

// The kernel table. Entries serve the lowering table's kernels by name
// (lower's Call.Kernel); AdamW serves the optimizer of runtime/engine.
var kernels = []Kernel{
	{"lorac_add", []string{"Add", "LoRAMerge", "LoRALinearRows"}, "elementwise", func(Arch) *Func { return binary("lorac_add", "out = a + b", addBody) }},
	{"lorac_mul", []string{"Mul"}, "elementwise", func(Arch) *Func { return binary("lorac_mul", "out = a ⊙ b", mulBody) }},
	{"lorac_gelu", []string{"GELU"}, "elementwise", func(Arch) *Func {
		return unary("lorac_gelu", "out = GELU(x), the tanh approximation, as x*sigmoid(2u)", geluBody)
	}},
	{"lorac_gelu_grad", []string{"GELUGrad"}, "elementwise", func(Arch) *Func { return binary("lorac_gelu_grad", "dinp = dout · GELU′(x)", geluGradBody) }},
	{"lorac_silu", []string{"SiLU"}, "elementwise", func(Arch) *Func { return unary("lorac_silu", "out = x · σ(x)", siluBody) }},
	{"lorac_silu_grad", []string{"SiLUGrad"}, "elementwise", func(Arch) *Func {
		return binary("lorac_silu_grad", "dinp = dout · σ(x)(1 + x(1 − σ(x)))", siluGradBody)
	}},
	{"lorac_scale", []string{"Scale"}, "elementwise", func(Arch) *Func {
		return elementwiseS("lorac_scale", "out = x · scale\nParams: out, x (n f32); n; scale. Grid-stride, any grid.",
			[]string{"x"}, []string{"scale"}, scaleBody)
	}},
	{"lorac_softcap", []string{"Softcap"}, "elementwise", func(Arch) *Func {
		return elementwiseS("lorac_softcap", "out = cap · tanh(x/cap)\nParams: out, x (n f32); n; cap (> 0). Grid-stride, any grid.",
			[]string{"x"}, []string{"cap"}, softcapBody)
	}},
	{"lorac_softcap_grad", []string{"SoftcapGrad"}, "elementwise", func(Arch) *Func {
		return elementwiseS("lorac_softcap_grad", "dinp = dout · (1 − tanh²(x/cap))\nParams: dinp, dout, x (n f32 each); n; cap (> 0). Grid-stride, any grid.",
			[]string{"dout", "x"}, []string{"cap"}, softcapGradBody)
	}},
	{"lorac_layernorm", []string{"LayerNorm"}, "rows", layerNorm},
	{"lorac_rmsnorm", []string{"RMSNorm"}, "rows", rmsNorm},
	{"lorac_softmax", []string{"Softmax"}, "rows", softmax},
	{"lorac_cross_entropy", []string{"CrossEntropy"}, "rows", crossEntropy},
	{"lorac_cross_entropy_grad", []string{"CrossEntropyGrad"}, "rows", crossEntropyGrad},
	{"lorac_adamw", []string{}, "elementwise", adamW},
	{"lorac_gemm_f32_nt", []string{"Linear", "LinearGradInput", "LoRA", "LoRALinear", "LoRALinearGrad", "LoRALinearRows"}, "gemm", gemmF32(false, true)},
	{"lorac_gemm_f32_nn", []string{"Linear", "LinearGradInput", "LoRAMerge", "LoRAGrad", "LoRALinearGrad", "LoRALinearRows"}, "gemm", gemmF32(false, false)},
	{"lorac_gemm_f32_tn", []string{"LinearGradWeight", "LoRAGrad", "LoRALinearGrad"}, "gemm", gemmF32(true, false)},
	{"lorac_gemm_f32_tt", []string{"LoRAMerge"}, "gemm", gemmF32(true, true)},
	{"lorac_gemm_bf16_nt", []string{"Linear", "LoRALinear"}, "gemm", gemmBF16},
	{"lorac_gemm_bf16_nt_async", []string{"Linear", "LoRALinear"}, "gemm", gemmBF16Async},
	{"lorac_f32_to_bf16", []string{}, "elementwise", toBF16},
	{"lorac_gemv", []string{"Linear", "LoRALinearRows"}, "gemv", gemv},
	{"lorac_attention", []string{"Attention"}, "attention", attention},
	{"lorac_attention_grad_q", []string{"AttentionGrad"}, "attention", attentionGradQ},
	{"lorac_attention_grad_kv", []string{"AttentionGrad"}, "attention", attentionGradKV},
	{"lorac_kv_append", []string{"AttentionDecode"}, "elementwise", kvAppend},
	{"lorac_attention_decode", []string{"AttentionDecode"}, "attention", attentionDecode},
	{"lorac_row_stats", []string{"LayerNormGradParams", "RMSNormGradGain"}, "rows", rowStats},
	{"lorac_layernorm_grad", []string{"LayerNormGrad"}, "rows", normGrad(false)},
	{"lorac_rmsnorm_grad", []string{"RMSNormGrad"}, "rows", normGrad(true)},
	{"lorac_softmax_grad", []string{"SoftmaxGrad"}, "rows", softmaxGrad},
	{"lorac_col_grads", []string{"LayerNormGradParams", "RMSNormGradGain", "LinearGradBias"}, "elementwise", colGrads},
	{"lorac_rope", []string{"RoPE", "RoPEGrad"}, "elementwise", rope},
	{"lorac_embedding", []string{"Embedding"}, "elementwise", embedding},
	{"lorac_embedding_grad", []string{"EmbeddingGrad"}, "elementwise", embeddingGrad},
	{"lorac_copy_cols", []string{"CopyCols"}, "elementwise", copyCols},
	{"lorac_fill", []string{"Fill"}, "elementwise", fill},
	{"lorac_dropout_mask", []string{}, "elementwise", dropoutMask},
}

const log2e = math.Log2E

// exp emits e^x with ex2.approx (relative error about 2⁻²²).
func exp(f *Func, x Reg) Reg {
	t, r := f.Reg(F32), f.Reg(F32)
	f.E().Mul(F32, t, x, F32Imm(log2e))
	f.E().Raw("ex2.approx.ftz.f32", r, t)
	return r
}

// sigmoid emits 1/(1+e^{−x}).
func sigmoid(f *Func, x Reg) Reg {
	e := f.E()
	nx := f.Reg(F32)
	e.Op("neg", F32, nx, x)
	ex := exp(f, nx)
	d, r := f.Reg(F32), f.Reg(F32)
	e.Add(F32, d, ex, F32Imm(1))
	e.Div(F32, r, F32Imm(1), d)
	return r
}

func addBody(f *Func, in []Reg) Reg {
	r := f.Reg(F32)
	f.E().Add(F32, r, in[0], in[1])
	return r
}

func mulBody(f *Func, in []Reg) Reg {
	r := f.Reg(F32)
	f.E().Mul(F32, r, in[0], in[1])
	return r
}

var sqrt2OverPi = math.Sqrt(2 / math.Pi)

// geluSigmoid returns s = ½(1 + tanh u) and 1 − s for
// u = √(2/π)(x + 0.044715x³), computed as σ(2u) = 1/(1 + e^{−2u}) and
// e^{−2u}/(1 + e^{−2u}): both tails stay accurate, where 1 + tanh u would
// cancel. u is clamped to ±40 (tanh is ±1 in float32 long before), so
// e^{−2u} stays finite.
func geluSigmoid(f *Func, x Reg) (s, oms Reg) {
	e := f.E()
	x2, inner, u := f.Reg(F32), f.Reg(F32), f.Reg(F32)
	e.Mul(F32, x2, x, x)
	e.Fma(F32, inner, x2, F32Imm(0.044715), F32Imm(1))
	e.Mul(F32, inner, inner, x)
	e.Mul(F32, u, inner, F32Imm(float32(-2*sqrt2OverPi)))
	e.Max(F32, u, u, F32Imm(-80))
	e.Min(F32, u, u, F32Imm(80))
	ex := exp(f, u)
	d := f.Reg(F32)
	s, oms = f.Reg(F32), f.Reg(F32)
	e.Add(F32, d, ex, F32Imm(1))
	e.Div(F32, s, F32Imm(1), d)
	e.Div(F32, oms, ex, d)
	return s, oms
}

func geluBody(f *Func, in []Reg) Reg {
	x := in[0]
	s, _ := geluSigmoid(f, x)
	r := f.Reg(F32)
	f.E().Mul(F32, r, x, s)
	return r
}

// geluGradBody: GELU′(x) = s + 2x·s(1−s)·u′ with s = ½(1 + tanh u), since
// 1 − tanh²u = 4s(1−s).
func geluGradBody(f *Func, in []Reg) Reg {
	e := f.E()
	dout, x := in[0], in[1]
	s, oms := geluSigmoid(f, x)
	x2, du, g, r := f.Reg(F32), f.Reg(F32), f.Reg(F32), f.Reg(F32)
	e.Mul(F32, x2, x, x)
	e.Fma(F32, du, x2, F32Imm(3*0.044715), F32Imm(1))
	e.Mul(F32, du, du, F32Imm(float32(2*sqrt2OverPi)))
	e.Mul(F32, g, s, oms)
	e.Mul(F32, g, g, x)
	e.Fma(F32, g, g, du, s)
	e.Mul(F32, r, dout, g)
	return r
}

func siluBody(f *Func, in []Reg) Reg {
	s := sigmoid(f, in[0])
	r := f.Reg(F32)
	f.E().Mul(F32, r, in[0], s)
	return r
}

func siluGradBody(f *Func, in []Reg) Reg {
	e := f.E()
	dout, x := in[0], in[1]
	s := sigmoid(f, x)
	oms, t, r := f.Reg(F32), f.Reg(F32), f.Reg(F32)
	e.Sub(F32, oms, F32Imm(1), s)
	e.Fma(F32, t, x, oms, F32Imm(1))
	e.Mul(F32, t, t, s)
	e.Mul(F32, r, dout, t)
	return r
}

func scaleBody(f *Func, in []Reg) Reg {
	r := f.Reg(F32)
	f.E().Mul(F32, r, in[0], in[1])
	return r
}

// tanhParts returns y = x/cap, u = e^{−2|y|} and d = 1 + u, from which
// tanh|y| = (1 − u)/d and 1 − tanh²y = 4u/d²: neither form cancels in
// its tail (u underflows to 0 for large |y|, giving exactly 1 and 0).
func tanhParts(f *Func, x, cap Reg) (y, u, d Reg) {
	e := f.E()
	y, u, d = f.Reg(F32), f.Reg(F32), f.Reg(F32)
	a := f.Reg(F32)
	e.Div(F32, y, x, cap)
	e.Op("neg", F32, a, y)
	e.Max(F32, a, a, y)
	e.Mul(F32, a, a, F32Imm(float32(-2*log2e)))
	e.Raw("ex2.approx.ftz.f32", u, a)
	e.Add(F32, d, u, F32Imm(1))
	return y, u, d
}

// softcapBody: cap · tanh(x/cap), tanh's sign restored from y.
func softcapBody(f *Func, in []Reg) Reg {
	e := f.E()
	y, u, d := tanhParts(f, in[0], in[1])
	t, nt, r := f.Reg(F32), f.Reg(F32), f.Reg(F32)
	e.Sub(F32, t, F32Imm(1), u)
	e.Div(F32, t, t, d)
	e.Op("neg", F32, nt, t)
	neg := f.Reg(Pred)
	e.Setp("lt", F32, neg, y, F32Imm(0))
	e.Selp(F32, t, nt, t, neg)
	e.Mul(F32, r, t, in[1])
	return r
}

// softcapGradBody: dout · 4u/d².
func softcapGradBody(f *Func, in []Reg) Reg {
	e := f.E()
	_, u, d := tanhParts(f, in[1], in[2])
	g, dd, r := f.Reg(F32), f.Reg(F32), f.Reg(F32)
	e.Mul(F32, g, u, F32Imm(4))
	e.Mul(F32, dd, d, d)
	e.Div(F32, g, g, dd)
	e.Mul(F32, r, in[0], g)
	return r
}

func unary(name, doc string, body func(*Func, []Reg) Reg) *Func {
	return elementwise(name, doc+"\nParams: out, x (n f32); n. Grid-stride, any grid.", []string{"x"}, body)
}

func binary(name, doc string, body func(*Func, []Reg) Reg) *Func {
	return elementwise(name, doc+"\nParams: out, two inputs (n f32 each); n. Grid-stride, any grid.", []string{"in0", "in1"}, body)
}

// elementwise is a grid-stride loop over n elements: out[i] = body(in…[i]).
func elementwise(name, doc string, inputs []string, body func(*Func, []Reg) Reg) *Func {
	return elementwiseS(name, doc, inputs, nil, body)
}

// elementwiseS is elementwise with f32 parameters after n, passed to body
// after the loaded inputs.
func elementwiseS(name, doc string, inputs, scalars []string, body func(*Func, []Reg) Reg) *Func {
	f := NewFunc(name, doc, 256)
	out := f.Param("out", U64)
	var ins []Reg
	for _, in := range inputs {
		ins = append(ins, f.Param(in, U64))
	}
	n := f.Param("n", U32)
	var sc []Reg
	for _, s := range scalars {
		sc = append(sc, f.Param(s, F32))
	}
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		vals := make([]Reg, len(ins))
		for j, in := range ins {
			vals[j] = f.Reg(F32)
			f.E().Ld("global", F32, vals[j], Addr{Base: f.Index(in, i, 4)})
		}
		r := body(f, append(vals, sc...))
		f.E().St("global", F32, Addr{Base: f.Index(out, i, 4)}, r)
	})
	return f
}

// gridLoop runs body for i = start, start+stride, … while i < n.
func gridLoop(f *Func, i, stride, n Reg, body func()) {
	e := f.E()
	loop, done := f.NewLabel("loop"), f.NewLabel("done")
	p := f.Reg(Pred)
	f.Place(loop)
	e.Setp("ge", U32, p, i, n)
	f.If(p, false).Bra(done)
	body()
	e.Add(U32, i, i, stride)
	e.Bra(loop)
	f.Place(done)
	e.Ret()
}

// adamW is torch.optim.AdamW's update in float64, rounded once, the same
// operation order as engine.AdamW.Step (no contraction: mul.rn and add.rn
// are never fused), so each element matches the CPU bit for bit.
func adamW(Arch) *Func {
	f := NewFunc("lorac_adamw", `AdamW in float64, the order of engine.AdamW.Step:
  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g·g;  p ← p·decay − stepSize·m/(√v/√(1−β₂ᵗ) + ε)
Params: p, g, m, v (n f32 each); n; beta1, beta2, eps, stepSize, sqrtBC2, decay (f64).`, 256)
	p, g, m, v := f.Param("p", U64), f.Param("g", U64), f.Param("m", U64), f.Param("v", U64)
	n := f.Param("n", U32)
	b1, b2, eps := f.Param("beta1", F64), f.Param("beta2", F64), f.Param("eps", F64)
	step, bc2, decay := f.Param("stepSize", F64), f.Param("sqrtBC2", F64), f.Param("decay", F64)
	e := f.E()
	omb1, omb2 := f.Reg(F64), f.Reg(F64)
	e.Sub(F64, omb1, F64Imm(1), b1)
	e.Sub(F64, omb2, F64Imm(1), b2)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		load := func(base Reg) (Reg, Addr) {
			a := Addr{Base: f.Index(base, i, 4)}
			r32, r64 := f.Reg(F32), f.Reg(F64)
			e.Ld("global", F32, r32, a)
			e.Raw("cvt.f64.f32", r64, r32)
			return r64, a
		}
		gd, _ := load(g)
		md, ma := load(m)
		vd, va := load(v)
		pd, pa := load(p)
		t1, t2, mi, vi := f.Reg(F64), f.Reg(F64), f.Reg(F64), f.Reg(F64)
		e.Mul(F64, t1, b1, md)
		e.Mul(F64, t2, omb1, gd)
		e.Add(F64, mi, t1, t2)
		e.Mul(F64, t1, b2, vd)
		e.Mul(F64, t2, omb2, gd)
		e.Mul(F64, t2, t2, gd)
		e.Add(F64, vi, t1, t2)
		pp, s, u := f.Reg(F64), f.Reg(F64), f.Reg(F64)
		e.Mul(F64, pp, pd, decay)
		e.Mul(F64, u, step, mi)
		e.Sqrt(F64, s, vi)
		e.Div(F64, s, s, bc2)
		e.Add(F64, s, s, eps)
		e.Div(F64, u, u, s)
		e.Sub(F64, pp, pp, u)
		for _, st := range []struct {
			a Addr
			r Reg
		}{{ma, mi}, {va, vi}, {pa, pp}} {
			r32 := f.Reg(F32)
			e.Raw("cvt.rn.f32.f64", r32, st.r)
			e.St("global", F32, st.a, r32)
		}
	})
	return f
}

func toBF16(Arch) *Func {
	f := NewFunc("lorac_f32_to_bf16", "out = bf16(x), round to nearest even.\nParams: out (n bf16), x (n f32); n.", 256)
	out, x := f.Param("out", U64), f.Param("x", U64)
	n := f.Param("n", U32)
	i, stride := f.GlobalIndex()
	gridLoop(f, i, stride, n, func() {
		v, h := f.Reg(F32), f.Reg(B16)
		f.E().Ld("global", F32, v, Addr{Base: f.Index(x, i, 4)})
		f.E().Raw("cvt.rn.bf16.f32", h, v)
		f.E().St("global", B16, Addr{Base: f.Index(out, i, 2)}, h)
	})
	return f
}

// Reductions over a 256-thread block (8 warps).

// warpReduce combines v across the warp with op (add or max) by butterfly
// shuffles; every lane ends with the result.
func warpReduce(f *Func, op string, v Reg) {
	e := f.E()
	for off := 16; off >= 1; off /= 2 {
		t := f.Reg(F32)
		e.Raw("shfl.sync.bfly.b32", t, v, Int(off), Int(0x1f), Int(0xffffffff))
		combine(e, op, v, t)
	}
}

// combine is v = op(v, t), op "add" (rounded, never contracted) or "max".
func combine(e Emitter, op string, v, t Reg) {
	if op == "add" {
		e.Add(F32, v, v, t)
		return
	}
	e.Op(op, F32, v, v, t)
}

// rowCtx is what a one-block-per-row kernel shares: thread, lane and warp
// indices and an 8-slot reduction buffer.
type rowCtx struct {
	f               *Func
	tid, lane, warp Reg
	red             Sym
}

func newRowCtx(f *Func) *rowCtx {
	c := &rowCtx{f: f, tid: f.Special(TidX), lane: f.Reg(U32), warp: f.Reg(U32), red: f.Shared("red", F32, 8)}
	f.E().And(B32, c.lane, c.tid, Int(31))
	f.E().Shr(U32, c.warp, c.tid, Int(5))
	return c
}

// blockReduce returns op over v of all 256 threads, in every thread.
func (c *rowCtx) blockReduce(op string, v Reg) Reg {
	f, e := c.f, c.f.E()
	warpReduce(f, op, v)
	p := f.Reg(Pred)
	e.Setp("eq", U32, p, c.lane, Int(0))
	base := f.Reg(U64)
	e.Mov(U64, base, c.red)
	slot := f.Index(base, c.warp, 4)
	f.If(p, false).St("shared", F32, Addr{Base: slot}, v)
	e.Bar()
	tot := f.Reg(F32)
	e.Ld("shared", F32, tot, Addr{Base: base})
	for w := 1; w < 8; w++ {
		t := f.Reg(F32)
		e.Ld("shared", F32, t, Addr{Base: base, Off: 4 * w})
		combine(e, op, tot, t)
	}
	e.Bar()
	return tot
}

// each runs body for c = tid, tid+256, … < C.
func (c *rowCtx) each(C Reg, body func(col Reg)) {
	f, e := c.f, c.f.E()
	col := f.Reg(U32)
	e.Mov(U32, col, c.tid)
	loop, done := f.NewLabel("col"), f.NewLabel("coldone")
	p := f.Reg(Pred)
	f.Place(loop)
	e.Setp("ge", U32, p, col, C)
	f.If(p, false).Bra(done)
	body(col)
	e.Add(U32, col, col, Int(256))
	e.Bra(loop)
	f.Place(done)
}

// rowStart returns the block's row, returning early past N, and row·C as a
// base element index.
func rowStart(f *Func, N, C Reg) (row, base Reg) {
	row = f.Special(CtaX)
	p := f.Reg(Pred)
	f.E().Setp("ge", U32, p, row, N)
	f.If(p, false).Ret()
	base = f.Reg(U32)
	f.E().Mul(U32, base, row, C)
	return row, base
}

// rowPtr returns ptr + 4·base as a 64-bit address.
func rowPtr(f *Func, ptr, base Reg) Reg { return f.Index(ptr, base, 4) }

func cvtF32(f *Func, u Reg) Reg {
	r := f.Reg(F32)
	f.E().Raw("cvt.rn.f32.u32", r, u)
	return r
}

func layerNorm(Arch) *Func {
	f := NewFunc("lorac_layernorm", `LayerNorm over each row: out = (x − mean)·rstd·gain + bias, biased variance.
Params: out, x (N·C f32), gain (C), bias (C, or 0 for none); N, C; eps.
One 256-thread block per row; grid N.`, 256)
	out, x, gain, bias := f.Param("out", U64), f.Param("x", U64), f.Param("gain", U64), f.Param("bias", U64)
	N, C, eps := f.Param("N", U32), f.Param("C", U32), f.Param("eps", F32)
	e := f.E()
	c := newRowCtx(f)
	_, base := rowStart(f, N, C)
	xr, or := rowPtr(f, x, base), rowPtr(f, out, base)
	cf := cvtF32(f, C)
	sum := f.Reg(F32)
	e.Mov(F32, sum, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Add(F32, sum, sum, v)
	})
	tot := c.blockReduce("add", sum)
	mean := f.Reg(F32)
	e.Div(F32, mean, tot, cf)
	sq := f.Reg(F32)
	e.Mov(F32, sq, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Sub(F32, v, v, mean)
		e.Fma(F32, sq, v, v, sq)
	})
	vt := c.blockReduce("add", sq)
	rstd := f.Reg(F32)
	e.Div(F32, vt, vt, cf)
	e.Add(F32, vt, vt, eps)
	e.Sqrt(F32, vt, vt)
	e.Div(F32, rstd, F32Imm(1), vt)
	hasBias := f.Reg(Pred)
	e.Setp("ne", U64, hasBias, bias, Int(0))
	c.each(C, func(col Reg) {
		v, gn, b := f.Reg(F32), f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Ld("global", F32, gn, Addr{Base: f.Index(gain, col, 4)})
		e.Mov(F32, b, F32Imm(0))
		f.If(hasBias, false).Ld("global", F32, b, Addr{Base: f.Index(bias, col, 4)})
		e.Sub(F32, v, v, mean)
		e.Mul(F32, v, v, rstd)
		e.Fma(F32, v, v, gn, b)
		e.St("global", F32, Addr{Base: f.Index(or, col, 4)}, v)
	})
	e.Ret()
	return f
}

func rmsNorm(Arch) *Func {
	f := NewFunc("lorac_rmsnorm", `RMSNorm over each row: out = x·rsqrt(mean(x²) + eps)·(offset + gain).
Params: out, x (N·C f32), gain (C); N, C; eps, offset (0, or Gemma's 1).
One 256-thread block per row.`, 256)
	out, x, gain := f.Param("out", U64), f.Param("x", U64), f.Param("gain", U64)
	N, C, eps := f.Param("N", U32), f.Param("C", U32), f.Param("eps", F32)
	offset := f.Param("offset", F32)
	e := f.E()
	c := newRowCtx(f)
	_, base := rowStart(f, N, C)
	xr, or := rowPtr(f, x, base), rowPtr(f, out, base)
	sq := f.Reg(F32)
	e.Mov(F32, sq, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Fma(F32, sq, v, v, sq)
	})
	tot := c.blockReduce("add", sq)
	r := f.Reg(F32)
	e.Div(F32, tot, tot, cvtF32(f, C))
	e.Add(F32, tot, tot, eps)
	e.Sqrt(F32, tot, tot)
	e.Div(F32, r, F32Imm(1), tot)
	c.each(C, func(col Reg) {
		v, gn := f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Ld("global", F32, gn, Addr{Base: f.Index(gain, col, 4)})
		e.Add(F32, gn, offset, gn)
		e.Mul(F32, v, v, r)
		e.Mul(F32, v, v, gn)
		e.St("global", F32, Addr{Base: f.Index(or, col, 4)}, v)
	})
	e.Ret()
	return f
}

// rowMaxSum returns the row's maximum and Σ e^{x−max}.
func rowMaxSum(c *rowCtx, xr, C Reg) (mx, sum Reg) {
	f, e := c.f, c.f.E()
	m := f.Reg(F32)
	e.Mov(F32, m, F32Imm(float32(math.Inf(-1))))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Max(F32, m, m, v)
	})
	mx = c.blockReduce("max", m)
	s := f.Reg(F32)
	e.Mov(F32, s, F32Imm(0))
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Sub(F32, v, v, mx)
		e.Add(F32, s, s, exp(f, v))
	})
	return mx, c.blockReduce("add", s)
}

func softmax(Arch) *Func {
	f := NewFunc("lorac_softmax", `Softmax over each row, max-subtracted.
Params: out, x (N·C f32); N, C. One 256-thread block per row.`, 256)
	out, x := f.Param("out", U64), f.Param("x", U64)
	N, C := f.Param("N", U32), f.Param("C", U32)
	e := f.E()
	c := newRowCtx(f)
	_, base := rowStart(f, N, C)
	xr, or := rowPtr(f, x, base), rowPtr(f, out, base)
	mx, sum := rowMaxSum(c, xr, C)
	inv := f.Reg(F32)
	e.Div(F32, inv, F32Imm(1), sum)
	c.each(C, func(col Reg) {
		v := f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Sub(F32, v, v, mx)
		p := exp(f, v)
		e.Mul(F32, p, p, inv)
		e.St("global", F32, Addr{Base: f.Index(or, col, 4)}, p)
	})
	e.Ret()
	return f
}

// ceTarget loads the row's target and reports whether it is ignored (−1).
func ceTarget(f *Func, targets, row Reg) (t Reg, ignored Reg) {
	t, ignored = f.Reg(S32), f.Reg(Pred)
	f.E().Ld("global", S32, t, Addr{Base: f.Index(targets, row, 4)})
	f.E().Setp("lt", S32, ignored, t, Int(0))
	return t, ignored
}

func crossEntropy(Arch) *Func {
	f := NewFunc("lorac_cross_entropy", `Per-row cross-entropy: loss[n] = logsumexp(x[n]) − x[n][t[n]], 0 where t[n] = −1.
The host divides the sum by the number of counted rows (kern.CrossEntropy's mean).
Params: loss (N f32), logits (N·V f32), targets (N s32); N, V. One 256-thread block per row.`, 256)
	loss, logits, targets := f.Param("loss", U64), f.Param("logits", U64), f.Param("targets", U64)
	N, V := f.Param("N", U32), f.Param("V", U32)
	e := f.E()
	c := newRowCtx(f)
	row, base := rowStart(f, N, V)
	xr := rowPtr(f, logits, base)
	t, ignored := ceTarget(f, targets, row)
	first := f.Reg(Pred)
	e.Setp("eq", U32, first, c.tid, Int(0))
	la := Addr{Base: f.Index(loss, row, 4)}
	skip := f.NewLabel("counted")
	f.If(ignored, true).Bra(skip)
	f.If(first, false).St("global", F32, la, F32Imm(0))
	e.Ret()
	f.Place(skip)
	mx, sum := rowMaxSum(c, xr, V)
	lse, xt := f.Reg(F32), f.Reg(F32)
	e.Raw("lg2.approx.ftz.f32", lse, sum)
	e.Fma(F32, lse, lse, F32Imm(math.Ln2), mx)
	e.Ld("global", F32, xt, Addr{Base: f.Index(xr, t, 4)})
	e.Sub(F32, lse, lse, xt)
	f.If(first, false).St("global", F32, la, lse)
	e.Ret()
	return f
}

func crossEntropyGrad(Arch) *Func {
	f := NewFunc("lorac_cross_entropy_grad", `dlogits = g·(softmax(x) − onehot(t)) per row, zero where t = −1;
g = dloss / (number of counted rows), computed by the host.
Params: dlogits, logits (N·V f32), targets (N s32); N, V; g. One 256-thread block per row.`, 256)
	dl, logits, targets := f.Param("dlogits", U64), f.Param("logits", U64), f.Param("targets", U64)
	N, V, g := f.Param("N", U32), f.Param("V", U32), f.Param("g", F32)
	e := f.E()
	c := newRowCtx(f)
	row, base := rowStart(f, N, V)
	xr, dr := rowPtr(f, logits, base), rowPtr(f, dl, base)
	t, ignored := ceTarget(f, targets, row)
	skip := f.NewLabel("counted")
	f.If(ignored, true).Bra(skip)
	c.each(V, func(col Reg) {
		e.St("global", F32, Addr{Base: f.Index(dr, col, 4)}, F32Imm(0))
	})
	e.Ret()
	f.Place(skip)
	mx, sum := rowMaxSum(c, xr, V)
	inv := f.Reg(F32)
	e.Div(F32, inv, g, sum)
	tu := f.Reg(U32)
	e.Mov(U32, tu, Reg(t))
	c.each(V, func(col Reg) {
		v, oh := f.Reg(F32), f.Reg(F32)
		e.Ld("global", F32, v, Addr{Base: f.Index(xr, col, 4)})
		e.Sub(F32, v, v, mx)
		p := exp(f, v)
		e.Mul(F32, p, p, inv)
		isT := f.Reg(Pred)
		e.Setp("eq", U32, isT, col, tu)
		e.Selp(F32, oh, g, F32Imm(0), isT)
		e.Sub(F32, p, p, oh)
		e.St("global", F32, Addr{Base: f.Index(dr, col, 4)}, p)
	})
	e.Ret()
	return f
}

func gemv(Arch) *Func {
	f := NewFunc("lorac_gemv", `Batch-1 decode GEMV: y = W·x + bias, W (M, K) row-major (nn.Linear).
Params: y (M f32), w (M·K f32), x (K f32), bias (M, or 0); M, K.
One warp per output row, 8 rows per 256-thread block; grid ⌈M/8⌉.`, 256)
	y, w, x, bias := f.Param("y", U64), f.Param("w", U64), f.Param("x", U64), f.Param("bias", U64)
	M, K := f.Param("M", U32), f.Param("K", U32)
	e := f.E()
	tid, cta := f.Special(TidX), f.Special(CtaX)
	lane, warp, row := f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.And(B32, lane, tid, Int(31))
	e.Shr(U32, warp, tid, Int(5))
	e.MadLo(U32, row, cta, Int(8), warp)
	p := f.Reg(Pred)
	e.Setp("ge", U32, p, row, M)
	f.If(p, false).Ret()
	rb := f.Reg(U32)
	e.Mul(U32, rb, row, K)
	wr := f.Index(w, rb, 4)
	acc := f.Reg(F32)
	e.Mov(F32, acc, F32Imm(0))
	k := f.Reg(U32)
	e.Mov(U32, k, lane)
	loop, done := f.NewLabel("k"), f.NewLabel("kdone")
	f.Place(loop)
	e.Setp("ge", U32, p, k, K)
	f.If(p, false).Bra(done)
	wv, xv := f.Reg(F32), f.Reg(F32)
	e.Ld("global", F32, wv, Addr{Base: f.Index(wr, k, 4)})
	e.Ld("global", F32, xv, Addr{Base: f.Index(x, k, 4)})
	e.Fma(F32, acc, wv, xv, acc)
	e.Add(U32, k, k, Int(32))
	e.Bra(loop)
	f.Place(done)
	warpReduce(f, "add", acc)
	hb, first, pb := f.Reg(Pred), f.Reg(Pred), f.Reg(Pred)
	e.Setp("ne", U64, hb, bias, Int(0))
	e.Setp("eq", U32, first, lane, Int(0))
	e.Raw("and.pred", pb, hb, first)
	bv := f.Reg(F32)
	e.Mov(F32, bv, F32Imm(0))
	f.If(pb, false).Ld("global", F32, bv, Addr{Base: f.Index(bias, row, 4)})
	e.Add(F32, acc, acc, bv)
	f.If(first, false).St("global", F32, Addr{Base: f.Index(y, row, 4)}, acc)
	e.Ret()
	return f
}

func layoutName(t bool) string {
	if t {
		return "t"
	}
	return "n"
}

// gemmF32 is the exact-path GEMM on fp32 FMA units, with the LoRA branch as
// a second segment of the same accumulation loop (design.md, "The fusion:
// extra K rows"):
//
//	C = alpha1·op(A1)·op(B1) + alpha2·A2·B2ᵀ + bias
//
// op(A1) is (N, K1): stored (N, K1) ("n") or (K1, N) ("t"); op(B1) is
// (K1, M): stored (K1, M) ("n") or (M, K1) ("t", nn.Linear's W). The
// second segment is (N, K2)·(M, K2)ᵀ, K2 = 0 for none. mask, when not 0,
// multiplies A1 elementwise (dropout on the branch input). 64×64 output
// tile per 256-thread block, 4×4 outputs per thread, K in steps of 16
// through shared memory.
func gemmF32(aT, bT bool) func(Arch) *Func {
	name := "lorac_gemm_f32_" + layoutName(aT) + layoutName(bT)
	return func(Arch) *Func {
		f := NewFunc(name, fmt.Sprintf(`fp32 GEMM: C = alpha1·A1·B1 + alpha2·A2·B2ᵀ + bias (A1 %s, B1 %s).
Params: c (N·M), a1, b1, bias (M or 0), mask (A1's shape or 0), a2 (N·K2), b2 (M·K2); N, M, K1, K2; alpha1, alpha2.
Block 256 threads, grid (⌈M/64⌉, ⌈N/64⌉).`, map[bool]string{false: "(N, K1)", true: "(K1, N)"}[aT], map[bool]string{false: "(K1, M)", true: "(M, K1)"}[bT]), 256)
		c, a1, b1 := f.Param("c", U64), f.Param("a1", U64), f.Param("b1", U64)
		bias, mask := f.Param("bias", U64), f.Param("mask", U64)
		a2, b2 := f.Param("a2", U64), f.Param("b2", U64)
		N, M, K1, K2 := f.Param("N", U32), f.Param("M", U32), f.Param("K1", U32), f.Param("K2", U32)
		alpha1, alpha2 := f.Param("alpha1", F32), f.Param("alpha2", F32)
		e := f.E()
		as, bs := f.Shared("as", F32, 16*64), f.Shared("bs", F32, 16*64)
		tid := f.Special(TidX)
		tx, ty := f.Reg(U32), f.Reg(U32)
		e.And(B32, tx, tid, Int(15))
		e.Shr(U32, ty, tid, Int(4))
		row0, col0 := f.Reg(U32), f.Reg(U32)
		e.Mul(U32, row0, f.Special(CtaY), Int(64))
		e.Mul(U32, col0, f.Special(CtaX), Int(64))
		asBase, bsBase := f.Reg(U64), f.Reg(U64)
		e.Mov(U64, asBase, as)
		e.Mov(U64, bsBase, bs)
		aRead, bRead := f.Index(asBase, ty, 4), f.Index(bsBase, tx, 4)
		g := &gemmCtx{f: f, tid: tid, tx: tx, ty: ty}
		acc := g.zero(16)
		hasMask := f.Reg(Pred)
		e.Setp("ne", U64, hasMask, mask, Int(0))
		// Segment 1.
		ldA1, ldB1 := N, M
		if !aT {
			ldA1 = K1
		}
		if bT {
			ldB1 = K1
		}
		g.segment(acc, K1,
			tileSrc{a1, ldA1, row0, N, !aT, asBase, mask, hasMask},
			tileSrc{b1, ldB1, col0, M, bT, bsBase, Reg{}, Reg{}},
			aRead, bRead)
		for _, r := range acc {
			e.Mul(F32, r, r, alpha1)
		}
		// Segment 2: the LoRA up-projection's extra K rows.
		acc2 := g.zero(16)
		g.segment(acc2, K2,
			tileSrc{a2, K2, row0, N, true, asBase, Reg{}, Reg{}},
			tileSrc{b2, K2, col0, M, true, bsBase, Reg{}, Reg{}},
			aRead, bRead)
		for i := range acc {
			e.Fma(F32, acc[i], acc2[i], alpha2, acc[i])
		}
		// Epilogue: bias and bounds.
		hasBias := f.Reg(Pred)
		e.Setp("ne", U64, hasBias, bias, Int(0))
		bv := make([]Reg, 4)
		cols := make([]Reg, 4)
		colOK := make([]Reg, 4)
		for j := range 4 {
			cols[j], colOK[j], bv[j] = f.Reg(U32), f.Reg(Pred), f.Reg(F32)
			e.Add(U32, cols[j], col0, tx)
			e.Add(U32, cols[j], cols[j], Int(16*j))
			e.Setp("lt", U32, colOK[j], cols[j], M)
			pb := f.Reg(Pred)
			e.Raw("and.pred", pb, colOK[j], hasBias)
			e.Mov(F32, bv[j], F32Imm(0))
			f.If(pb, false).Ld("global", F32, bv[j], Addr{Base: f.Index(bias, cols[j], 4)})
		}
		for i := range 4 {
			row, rowOK := f.Reg(U32), f.Reg(Pred)
			e.Add(U32, row, row0, ty)
			e.Add(U32, row, row, Int(16*i))
			e.Setp("lt", U32, rowOK, row, N)
			rb := f.Reg(U32)
			e.Mul(U32, rb, row, M)
			cr := f.Index(c, rb, 4)
			for j := range 4 {
				p := f.Reg(Pred)
				e.Raw("and.pred", p, rowOK, colOK[j])
				v := f.Reg(F32)
				e.Add(F32, v, acc[4*i+j], bv[j])
				f.If(p, false).St("global", F32, Addr{Base: f.Index(cr, cols[j], 4)}, v)
			}
		}
		e.Ret()
		return f
	}
}

type gemmCtx struct {
	f           *Func
	tid, tx, ty Reg
}

func (g *gemmCtx) zero(n int) []Reg {
	rs := g.f.Regs(F32, n)
	for _, r := range rs {
		g.f.E().Mov(F32, r, F32Imm(0))
	}
	return rs
}

// tileSrc is one operand of a segment: where a 64×16 tile comes from and
// where it goes in shared memory (k-major: smem[k][outer]).
type tileSrc struct {
	ptr, ld     Reg
	outer0      Reg // first row (A) or column (B) of the block's tile
	outerLimit  Reg // N or M
	kContiguous bool
	smem        Reg
	mask        Reg // optional elementwise multiplier, same layout
	hasMask     Reg
}

// load fills the shared tile for k0: each of 256 threads moves 4 elements,
// zero outside the matrix.
func (g *gemmCtx) load(s tileSrc, k0, K Reg) {
	f, e := g.f, g.f.E()
	for q := range 4 {
		outer, k := f.Reg(U32), f.Reg(U32)
		var soff int
		var sbase Reg
		if s.kContiguous {
			// outer = outer0 + ty + 16q, k = k0 + tx; smem[tx][ty+16q]
			e.Add(U32, outer, s.outer0, g.ty)
			e.Add(U32, outer, outer, Int(16*q))
			e.Add(U32, k, k0, g.tx)
			sIdx := f.Reg(U32)
			e.MadLo(U32, sIdx, g.tx, Int(64), g.ty)
			sbase, soff = f.Index(s.smem, sIdx, 4), 16*q*4
		} else {
			// outer = outer0 + tid%64, k = k0 + tid/64 + 4q; smem[k][tid%64] = smem + 4·tid
			lo, hi := f.Reg(U32), f.Reg(U32)
			e.And(B32, lo, g.tid, Int(63))
			e.Shr(U32, hi, g.tid, Int(6))
			e.Add(U32, outer, s.outer0, lo)
			e.Add(U32, k, k0, hi)
			e.Add(U32, k, k, Int(4*q))
			sbase, soff = f.Index(s.smem, g.tid, 4), 4*q*64*4
		}
		in, pk := f.Reg(Pred), f.Reg(Pred)
		e.Setp("lt", U32, in, outer, s.outerLimit)
		e.Setp("lt", U32, pk, k, K)
		e.Raw("and.pred", in, in, pk)
		idx := f.Reg(U32)
		if s.kContiguous {
			e.MadLo(U32, idx, outer, s.ld, k)
		} else {
			e.MadLo(U32, idx, k, s.ld, outer)
		}
		v := f.Reg(F32)
		e.Mov(F32, v, F32Imm(0))
		f.If(in, false).Ld("global", F32, v, Addr{Base: f.Index(s.ptr, idx, 4)})
		if s.mask != (Reg{}) {
			pm := f.Reg(Pred)
			e.Raw("and.pred", pm, in, s.hasMask)
			mv := f.Reg(F32)
			e.Mov(F32, mv, F32Imm(1))
			f.If(pm, false).Ld("global", F32, mv, Addr{Base: f.Index(s.mask, idx, 4)})
			e.Mul(F32, v, v, mv)
		}
		e.St("shared", F32, Addr{Base: sbase, Off: soff}, v)
	}
}

// segment accumulates op(A)·op(B) over K into acc (4×4 per thread).
func (g *gemmCtx) segment(acc []Reg, K Reg, a, b tileSrc, aRead, bRead Reg) {
	f, e := g.f, g.f.E()
	k0 := f.Reg(U32)
	e.Mov(U32, k0, Int(0))
	loop, done := f.NewLabel("kt"), f.NewLabel("ktdone")
	p := f.Reg(Pred)
	f.Place(loop)
	e.Setp("ge", U32, p, k0, K)
	f.If(p, false).Bra(done)
	g.load(a, k0, K)
	g.load(b, k0, K)
	e.Bar()
	av, bv := f.Regs(F32, 4), f.Regs(F32, 4)
	for kk := range 16 {
		for i := range 4 {
			e.Ld("shared", F32, av[i], Addr{Base: aRead, Off: (kk*64 + 16*i) * 4})
			e.Ld("shared", F32, bv[i], Addr{Base: bRead, Off: (kk*64 + 16*i) * 4})
		}
		for i := range 4 {
			for j := range 4 {
				e.Fma(F32, acc[4*i+j], av[i], bv[j], acc[4*i+j])
			}
		}
	}
	e.Bar()
	e.Add(U32, k0, k0, Int(16))
	e.Bra(loop)
	f.Place(done)
}

// gemmBF16 is the tensor-core GEMM: mma.sync m16n8k16, bf16 inputs, fp32
// accumulate, with the LoRA segment as in gemmF32:
//
//	C = alpha1·A1·B1ᵀ + alpha2·A2·B2ᵀ + bias
//
// A1 (N, K1), B1 (M, K1) (nn.Linear's W), A2 (N, K2), B2 (M, K2), all
// bf16 row-major; K1 and K2 even and pointers 4-byte aligned (the host
// checks). A 128-thread block computes a 64×64 tile: each k-step of 32
// stages a 64×32 slice of each operand in shared memory (bf16 pairs as
// 32-bit words, coalesced along k, zero outside the matrices; rows padded
// to 20 words so the fragment reads hit 32 distinct banks), then each of
// the 2×2 warps runs 2×4 m16n8k16 products per 16 of k over its 32×32
// quarter. Fragments, with g = lane/4 and t = lane%4: A's registers hold
// rows g and g+8 at columns 2t and 2t+8, B's column g at rows 2t and 2t+8,
// the accumulators rows g and g+8 at columns 2t, 2t+1.
func gemmBF16(Arch) *Func {
	const (
		bm, bn, bkWords = 64, 64, 16 // tile rows, tile cols, k-step in 32-bit words (32 bf16)
		stride          = 20         // padded row length of the shared tiles, in words
	)
	f := NewFunc("lorac_gemm_bf16_nt", `bf16 tensor-core GEMM (mma.sync m16n8k16, fp32 accumulate), operands staged in shared memory:
C = alpha1*A1*B1^T + alpha2*A2*B2^T + bias; A1 (N, K1), B1 (M, K1), A2 (N, K2), B2 (M, K2) bf16; K1, K2 even.
Params: c (N*M f32), a1, b1, bias (M f32 or 0), a2, b2; N, M, K1, K2; alpha1, alpha2.
Block 128 threads (2x2 warps, 64x64 tile), grid (ceil(M/64), ceil(N/64)).`, 128)
	c, a1, b1 := f.Param("c", U64), f.Param("a1", U64), f.Param("b1", U64)
	bias := f.Param("bias", U64)
	a2, b2 := f.Param("a2", U64), f.Param("b2", U64)
	N, M, K1, K2 := f.Param("N", U32), f.Param("M", U32), f.Param("K1", U32), f.Param("K2", U32)
	alpha1, alpha2 := f.Param("alpha1", F32), f.Param("alpha2", F32)
	e := f.E()
	as, bs := f.Shared("as", B32, bm*stride), f.Shared("bs", B32, bn*stride)
	tid := f.Special(TidX)
	lane, warp, gi, ti, wr, wc := f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32), f.Reg(U32)
	e.And(B32, lane, tid, Int(31))
	e.Shr(U32, warp, tid, Int(5))
	e.Shr(U32, gi, lane, Int(2))
	e.And(B32, ti, lane, Int(3))
	e.Shr(U32, wr, warp, Int(1))
	e.And(B32, wc, warp, Int(1))
	row0, col0 := f.Reg(U32), f.Reg(U32)
	e.Mul(U32, row0, f.Special(CtaY), Int(bm))
	e.Mul(U32, col0, f.Special(CtaX), Int(bn))
	asBase, bsBase := f.Reg(U64), f.Reg(U64)
	e.Mov(U64, asBase, as)
	e.Mov(U64, bsBase, bs)
	// Staging: thread tid moves words (row tid/16 + 8q, word tid%16).
	ldRow, ldWord := f.Reg(U32), f.Reg(U32)
	e.Shr(U32, ldRow, tid, Int(4))
	e.And(B32, ldWord, tid, Int(15))
	stIdx := f.Reg(U32)
	e.MadLo(U32, stIdx, ldRow, Int(stride), ldWord)
	aStore, bStore := f.Index(asBase, stIdx, 4), f.Index(bsBase, stIdx, 4)
	// Fragment reads: word (row, t) of the warp's rows and columns.
	fragA, fragB := f.Reg(U32), f.Reg(U32)
	e.MadLo(U32, fragA, wr, Int(32), gi) // row of a0 within the tile
	e.MadLo(U32, fragA, fragA, Int(stride), ti)
	e.MadLo(U32, fragB, wc, Int(32), gi)
	e.MadLo(U32, fragB, fragB, Int(stride), ti)
	aRead, bRead := f.Index(asBase, fragA, 4), f.Index(bsBase, fragB, 4)
	stage := func(src, K, outer0, limit, store, k0 Reg) {
		for q := range bm / 8 {
			row, k, idx := f.Reg(U32), f.Reg(U32), f.Reg(U32)
			e.Add(U32, row, ldRow, outer0)
			e.Add(U32, row, row, Int(8*q))
			e.MadLo(U32, k, ldWord, Int(2), k0)
			ok, okK := f.Reg(Pred), f.Reg(Pred)
			e.Setp("lt", U32, ok, row, limit)
			e.Setp("lt", U32, okK, k, K)
			e.Raw("and.pred", ok, ok, okK)
			e.MadLo(U32, idx, row, K, k)
			w := f.Reg(B32)
			e.Mov(B32, w, Int(0))
			f.If(ok, false).Ld("global", B32, w, Addr{Base: f.Index(src, idx, 2)})
			e.St("shared", B32, Addr{Base: store, Off: 4 * 8 * q * stride}, w)
		}
	}
	zero := func() [][]Reg {
		acc := make([][]Reg, 8)
		for j := range acc {
			acc[j] = f.Regs(F32, 4)
			for _, r := range acc[j] {
				e.Mov(F32, r, F32Imm(0))
			}
		}
		return acc
	}
	segment := func(acc [][]Reg, a, b, K Reg) {
		k0 := f.Reg(U32)
		e.Mov(U32, k0, Int(0))
		loop, done := f.NewLabel("mk"), f.NewLabel("mkdone")
		p := f.Reg(Pred)
		f.Place(loop)
		e.Setp("ge", U32, p, k0, K)
		f.If(p, false).Bra(done)
		stage(a, K, row0, N, aStore, k0)
		stage(b, K, col0, M, bStore, k0)
		e.Bar()
		word := func(base Reg, off int) Reg {
			r := f.Reg(B32)
			e.Ld("shared", B32, r, Addr{Base: base, Off: 4 * off})
			return r
		}
		for ks := range 2 {
			var af []Vec
			for i := range 2 {
				r := i * 16 * stride
				af = append(af, Vec{word(aRead, r+8*ks), word(aRead, r+8*stride+8*ks), word(aRead, r+8*ks+4), word(aRead, r+8*stride+8*ks+4)})
			}
			for j := range 4 {
				r := j * 8 * stride
				bf := Vec{word(bRead, r+8*ks), word(bRead, r+8*ks+4)}
				for i := range 2 {
					d := Vec(acc[4*i+j])
					e.Raw("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", d, af[i], bf, d)
				}
			}
		}
		e.Bar()
		e.Add(U32, k0, k0, Int(2*bkWords))
		e.Bra(loop)
		f.Place(done)
	}
	acc := zero()
	segment(acc, a1, b1, K1)
	acc2 := zero()
	segment(acc2, a2, b2, K2)
	hasBias := f.Reg(Pred)
	e.Setp("ne", U64, hasBias, bias, Int(0))
	for j := range 4 {
		for h := range 2 { // columns 2t and 2t+1
			col, cok := f.Reg(U32), f.Reg(Pred)
			e.MadLo(U32, col, wc, Int(32), col0)
			e.MadLo(U32, col, ti, Int(2), col)
			e.Add(U32, col, col, Int(8*j+h))
			e.Setp("lt", U32, cok, col, M)
			bv, pb := f.Reg(F32), f.Reg(Pred)
			e.Raw("and.pred", pb, cok, hasBias)
			e.Mov(F32, bv, F32Imm(0))
			f.If(pb, false).Ld("global", F32, bv, Addr{Base: f.Index(bias, col, 4)})
			for i := range 2 {
				for half := range 2 { // rows g and g+8
					row := f.Reg(U32)
					e.MadLo(U32, row, wr, Int(32), row0)
					e.Add(U32, row, row, gi)
					e.Add(U32, row, row, Int(16*i+8*half))
					ok := f.Reg(Pred)
					e.Setp("lt", U32, ok, row, N)
					e.Raw("and.pred", ok, ok, cok)
					v := acc[4*i+j][2*half+h]
					e.Mul(F32, v, v, alpha1)
					e.Fma(F32, v, acc2[4*i+j][2*half+h], alpha2, v)
					e.Add(F32, v, v, bv)
					idx := f.Reg(U32)
					e.MadLo(U32, idx, row, M, col)
					f.If(ok, false).St("global", F32, Addr{Base: f.Index(c, idx, 4)}, v)
				}
			}
		}
	}
	e.Ret()
	return f
}
