package kern

import "math"

// The float32 entry points that generated code calls, one per graph node.
//
// They follow the conventions of the reference kernels (kernels.go): outputs,
// inputs, weights, then dimensions; row-major slices; outputs overwritten, not
// accumulated into (LoRAMerge excepted, which updates w in place). Unlike
// the references they accumulate matmul sums in float32 and split their work
// over ParallelFor. Every element is computed by one goroutine with a summation
// order fixed by the shape alone, so results are bit-for-bit the same for any
// SetThreads. Each is tested against its reference kernel (LinearRef for
// Linear, LoRARef for LoRA, …) in cpu_test.go.

// rowsPerChunk returns how many rows of c elements a ParallelFor item should
// hold so that an item is worth a goroutine (about 16K elements of work).
func rowsPerChunk(c int) int { return max(1, (1<<14)/max(c, 1)) }

// parallelRows calls body over [0, n) split into items of at least rowsPerChunk(c) rows.
func parallelRows(n, c int, body func(lo, hi int)) {
	per := rowsPerChunk(c)
	if n <= per {
		if n > 0 {
			body(0, n)
		}
		return
	}
	items := (n + per - 1) / per
	ParallelFor(items, func(lo, hi int) { body(lo*per, min(n, hi*per)) })
}

// Embedding gathers rows: out[n,:] = table[ids[n],:], zeros for an id of
// −1 (a padding row: the position of a prefill chunk's padding).
//
// Shapes: out (N, C); ids (N), each in [0, V) or −1; table (V, C).
func Embedding(out []float32, ids []int32, table []float32, N, C int) {
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			id := int(ids[n])
			if id < 0 {
				clear(out[n*C : (n+1)*C])
				continue
			}
			copy(out[n*C:(n+1)*C], table[id*C:(id+1)*C])
		}
	})
}

// EmbeddingGrad overwrites dtable with the scatter-add of dout into rows ids.
// Work is split over columns, so a row hit by many tokens sums them in n order
// on one goroutine.
//
// Shapes: dtable (V, C); dout (N, C); ids (N), each in [0, V).
func EmbeddingGrad(dtable, dout []float32, ids []int32, N, V, C int) {
	parallelRows(V, C, func(lo, hi int) { clear(dtable[lo*C : hi*C]) })
	cols := max(64, (1<<14)/max(N, 1))
	ParallelFor((C+cols-1)/cols, func(lo, hi int) {
		c0, c1 := lo*cols, min(C, hi*cols)
		for n := range N {
			id := int(ids[n])
			row := dtable[id*C+c0 : id*C+c1]
			for c, g := range dout[n*C+c0 : n*C+c1] {
				row[c] += g
			}
		}
	})
}

// weightB returns W as the (K, M) right operand of x·Wᵀ; w is (M, K), or
// (K, M) when conv1d.
func weightB(w []float32, K, M int, conv1d bool) gemmMat {
	if conv1d {
		return gemmMat{data: w, ld: M}
	}
	return gemmMat{data: w, ld: K, trans: true}
}

// weightBT returns W as the (M, K) right operand of g·W.
func weightBT(w []float32, K, M int, conv1d bool) gemmMat {
	if conv1d {
		return gemmMat{data: w, ld: M, trans: true}
	}
	return gemmMat{data: w, ld: K}
}

// Linear computes out = inp·Wᵀ + bias.
//
// Shapes: out (N, M); inp (N, K); w (M, K), or (K, M) when conv1d; bias (M)
// or nil.
func Linear(out, inp, w, bias []float32, N, K, M int, conv1d bool) {
	gemm(N, M, []gemmSeg{{a: gemmMat{data: inp, ld: K}, b: weightB(w, K, M, conv1d), k: K}},
		gemmOut{c: out, ld: M, alpha: 1, bias: bias})
}

// LinearGradInput computes dinp = dout·W.
//
// Shapes: dinp (N, K); dout (N, M); w (M, K), or (K, M) when conv1d.
func LinearGradInput(dinp, dout, w []float32, N, K, M int, conv1d bool) {
	gemm(N, K, []gemmSeg{{a: gemmMat{data: dout, ld: M}, b: weightBT(w, K, M, conv1d), k: M}},
		gemmOut{c: dinp, ld: K, alpha: 1})
}

// LinearGradWeight computes dW = doutᵀ·inp in the layout of w: dw (M, K), or
// (K, M) when conv1d.
//
// Shapes: dout (N, M); inp (N, K).
func LinearGradWeight(dw, dout, inp []float32, N, K, M int, conv1d bool) {
	if conv1d {
		gemm(K, M, []gemmSeg{{a: gemmMat{data: inp, ld: K, trans: true}, b: gemmMat{data: dout, ld: M}, k: N}},
			gemmOut{c: dw, ld: M, alpha: 1})
		return
	}
	gemm(M, K, []gemmSeg{{a: gemmMat{data: dout, ld: M, trans: true}, b: gemmMat{data: inp, ld: K}, k: N}},
		gemmOut{c: dw, ld: K, alpha: 1})
}

// LinearGradBias computes dbias[m] = Σₙ dout[n,m], summed in float64.
//
// Shapes: dbias (M); dout (N, M).
func LinearGradBias(dbias, dout []float32, N, M int) {
	colSums(dbias, nil, N, M, func(n int, acc, _ []float64, c0 int) {
		for c, g := range dout[n*M+c0 : n*M+c0+len(acc)] {
			acc[c] += float64(g)
		}
	})
}

// colSums splits the C columns of a reduction over N rows between workers;
// add adds row n's contribution for columns c0.. to acc (and acc2), which are
// then rounded into dst (and dst2, when non-nil). Rows are added in n order.
func colSums(dst, dst2 []float32, N, C int, add func(n int, acc, acc2 []float64, c0 int)) {
	const cols = 256
	ParallelFor((C+cols-1)/cols, func(lo, hi int) {
		acc := make([]float64, cols)
		acc2 := make([]float64, cols)
		for blk := lo; blk < hi; blk++ {
			c0, c1 := blk*cols, min(C, (blk+1)*cols)
			a, a2 := acc[:c1-c0], acc2[:c1-c0]
			clear(a)
			clear(a2)
			for n := range N {
				add(n, a, a2, c0)
			}
			for c, v := range a {
				dst[c0+c] = float32(v)
			}
			if dst2 != nil {
				for c, v := range a2 {
					dst2[c0+c] = float32(v)
				}
			}
		}
	})
}

// loraDown32 returns scale·(inp⊙mask)·Aᵀ, (N, R), in pooled scratch.
func loraDown32(inp, a, mask []float32, N, K, R int, scale float32) *[]float32 {
	t := getF32(N * R)
	loraDownInto(*t, inp, a, mask, N, K, R, scale)
	return t
}

// loraDownInto sets t (N, R) to scale·(inp⊙mask)·Aᵀ.
func loraDownInto(t, inp, a, mask []float32, N, K, R int, scale float32) {
	gemm(N, R, []gemmSeg{{a: gemmMat{data: inp, mask: mask, ld: K}, b: gemmMat{data: a, ld: K, trans: true}, k: K}},
		gemmOut{c: t, ld: R, alpha: scale})
}

// LoRALinear computes out = inp·Wᵀ + bias + scale·((inp⊙mask)·Aᵀ)·Bᵀ in one
// pass over out: T = scale·(inp⊙mask)·Aᵀ (N, R) first, then the product
// [inp | T]·[Wᵀ ; Bᵀ], the R columns of T being R more steps of the base
// product's accumulators.
//
// When t is non-nil the intermediate T is left there, for LoRALinearGrad.
//
// Shapes: out (N, M); t (N, R) or nil; inp (N, K); w (M, K), or (K, M) when
// conv1d; bias (M) or nil; a (R, K); b (M, R); mask (N, K) or nil. scale is
// alpha/R.
func LoRALinear(out, t, inp, w, bias, a, b, mask []float32, N, K, M, R int, scale float32, conv1d bool) {
	if t == nil {
		p := loraDown32(inp, a, mask, N, K, R, scale)
		defer putF32(p)
		t = *p
	} else {
		loraDownInto(t, inp, a, mask, N, K, R, scale)
	}
	gemm(N, M, []gemmSeg{
		{a: gemmMat{data: inp, ld: K}, b: weightB(w, K, M, conv1d), k: K},
		{a: gemmMat{data: t, ld: R}, b: gemmMat{data: b, ld: R, trans: true}, k: R},
	}, gemmOut{c: out, ld: M, alpha: 1, bias: bias})
}

// LoRA computes the branch alone: out = scale·((inp⊙mask)·Aᵀ)·Bᵀ.
//
// Shapes: out (N, M); inp (N, K); a (R, K); b (M, R); mask (N, K) or nil.
func LoRA(out, inp, a, b, mask []float32, N, K, M, R int, scale float32) {
	t := loraDown32(inp, a, mask, N, K, R, scale)
	defer putF32(t)
	gemm(N, M, []gemmSeg{{a: gemmMat{data: *t, ld: R}, b: gemmMat{data: b, ld: R, trans: true}, k: R}},
		gemmOut{c: out, ld: M, alpha: 1})
}

// LoRALinearGrad computes the gradients of LoRALinear with W frozen (no dW):
//
//	G = scale·dout·B                 (N, R)
//	dA = Gᵀ·(inp⊙mask)
//	dB = scale·doutᵀ·((inp⊙mask)·Aᵀ)
//	dinp = dout·W + (G·A)⊙mask       one product, the R columns of G extra steps
//
// da and db are overwritten; dinp may be nil to skip it. t is the forward's
// T = scale·(inp⊙mask)·Aᵀ; nil recomputes it.
//
// Shapes: da (R, K); db (M, R); dinp (N, K) or nil; dout (N, M); inp (N, K);
// w (M, K), or (K, M) when conv1d; a (R, K); b (M, R); t (N, R) or nil; mask
// (N, K) or nil.
func LoRALinearGrad(da, db, dinp, dout, inp, w, a, b, t, mask []float32, N, K, M, R int, scale float32, conv1d bool) {
	g := loraGradParams(da, db, dout, inp, a, b, t, mask, N, K, M, R, scale)
	defer putF32(g)
	if dinp == nil {
		return
	}
	gemm(N, K, []gemmSeg{
		{a: gemmMat{data: dout, ld: M}, b: weightBT(w, K, M, conv1d), k: M},
		{a: gemmMat{data: *g, ld: R}, b: gemmMat{data: a, ld: K}, k: R},
	}, gemmOut{c: dinp, ld: K, alpha: 1, lastMask: mask})
}

// LoRAGrad computes the gradients of the LoRA branch alone (see
// LoRALinearGrad); dinp = ((scale·dout·B)·A)⊙mask, or nil to skip.
//
// Shapes: as LoRALinearGrad, without w.
func LoRAGrad(da, db, dinp, dout, inp, a, b, mask []float32, N, K, M, R int, scale float32) {
	g := loraGradParams(da, db, dout, inp, a, b, nil, mask, N, K, M, R, scale)
	defer putF32(g)
	if dinp == nil {
		return
	}
	gemm(N, K, []gemmSeg{{a: gemmMat{data: *g, ld: R}, b: gemmMat{data: a, ld: K}, k: R}},
		gemmOut{c: dinp, ld: K, alpha: 1, lastMask: mask})
}

// loraGradParams writes da and db and returns G = scale·dout·B (N, R) in
// pooled scratch.
func loraGradParams(da, db, dout, inp, a, b, t, mask []float32, N, K, M, R int, scale float32) *[]float32 {
	g := getF32(N * R)
	gemm(N, R, []gemmSeg{{a: gemmMat{data: dout, ld: M}, b: gemmMat{data: b, ld: R}, k: M}},
		gemmOut{c: *g, ld: R, alpha: scale})
	if t != nil {
		// The forward's t already carries the scale.
		gemm(M, R, []gemmSeg{{a: gemmMat{data: dout, ld: M, trans: true}, b: gemmMat{data: t, ld: R}, k: N}},
			gemmOut{c: db, ld: R, alpha: 1})
	} else {
		p := loraDown32(inp, a, mask, N, K, R, 1)
		gemm(M, R, []gemmSeg{{a: gemmMat{data: dout, ld: M, trans: true}, b: gemmMat{data: *p, ld: R}, k: N}},
			gemmOut{c: db, ld: R, alpha: scale})
		putF32(p)
	}
	gemm(R, K, []gemmSeg{{a: gemmMat{data: *g, ld: R, trans: true}, b: gemmMat{data: inp, mask: mask, ld: K}, k: N}},
		gemmOut{c: da, ld: K, alpha: 1})
	return g
}

// LoRAMerge adds scale·B·A to w in place, in the layout of w; unmerging is
// the same call with −scale, which restores w up to float32 rounding.
//
// Shapes: w (M, K), or (K, M) when conv1d; a (R, K); b (M, R).
func LoRAMerge(w, a, b []float32, K, M, R int, scale float32, conv1d bool) {
	if conv1d {
		gemm(K, M, []gemmSeg{{a: gemmMat{data: a, ld: K, trans: true}, b: gemmMat{data: b, ld: R, trans: true}, k: R}},
			gemmOut{c: w, ld: M, alpha: scale, add: true})
		return
	}
	gemm(M, K, []gemmSeg{{a: gemmMat{data: b, ld: R}, b: gemmMat{data: a, ld: K}, k: R}},
		gemmOut{c: w, ld: K, alpha: scale, add: true})
}

// rowStats returns the mean and 1/sqrt(var+eps) of x (biased variance, two
// passes, float64 sums), like moments in norm.go.
//
// Each pass keeps four partial sums (elements i mod 4), so that four add
// chains run at once instead of one waiting on the add latency; the order is
// still fixed by the row length.
func rowStats(x []float32, eps float32) (mean, rstd float32) {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	m := (s0 + s1 + s2 + s3) / float64(len(x))
	var q0, q1, q2, q3 float64
	i = 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-m, float64(x[i+1])-m, float64(x[i+2])-m, float64(x[i+3])-m
		q0 += d0 * d0
		q1 += d1 * d1
		q2 += d2 * d2
		q3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - m
		q0 += d * d
	}
	q := q0 + q1 + q2 + q3
	return float32(m), float32(1 / math.Sqrt(q/float64(len(x))+float64(eps)))
}

// LayerNorm computes out = (x−mean)·rstd·gain + bias over each row.
//
// Shapes: out, inp (N, C); gain (C); bias (C) or nil.
func LayerNorm(out, inp, gain, bias []float32, N, C int, eps float32) {
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := inp[n*C : (n+1)*C]
			o := out[n*C : (n+1)*C]
			mean, rstd := rowStats(x, eps)
			g := gain[:C]
			if bias == nil {
				for c, v := range x {
					o[c] = (v - mean) * rstd * g[c]
				}
				continue
			}
			bb := bias[:C]
			for c, v := range x {
				o[c] = (v-mean)*rstd*g[c] + bb[c]
			}
		}
	})
}

// LayerNormGrad computes dinp = rstd·(g − mean(g) − x̂·mean(g⊙x̂)) with
// g = dout⊙gain, recomputing the row statistics.
//
// Shapes: dinp, dout, inp (N, C); gain (C).
func LayerNormGrad(dinp, dout, inp, gain []float32, N, C int, eps float32) {
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := inp[n*C : (n+1)*C]
			d := dout[n*C : (n+1)*C]
			g := gain[:C]
			mean, rstd := rowStats(x, eps)
			var mg, mgx float64
			for c, v := range x {
				gc := d[c] * g[c]
				mg += float64(gc)
				mgx += float64(gc * (v - mean) * rstd)
			}
			mgf, mgxf := float32(mg/float64(C)), float32(mgx/float64(C))
			di := dinp[n*C : (n+1)*C]
			for c, v := range x {
				di[c] = rstd * (d[c]*g[c] - mgf - (v-mean)*rstd*mgxf)
			}
		}
	})
}

// LayerNormGradParams computes dgain = Σₙ dout⊙x̂ and dbias = Σₙ dout
// (dbias may be nil), summed over rows in float64.
//
// Shapes: dgain, dbias (C); dout, inp (N, C).
func LayerNormGradParams(dgain, dbias, dout, inp []float32, N, C int, eps float32) {
	stats := getF32(2 * N)
	defer putF32(stats)
	st := *stats
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			st[2*n], st[2*n+1] = rowStats(inp[n*C:(n+1)*C], eps)
		}
	})
	colSums(dgain, dbias, N, C, func(n int, accG, accB []float64, c0 int) {
		mean, rstd := st[2*n], st[2*n+1]
		o := n*C + c0
		x := inp[o : o+len(accG)]
		for c, d := range dout[o : o+len(accG)] {
			accG[c] += float64(d * (x[c] - mean) * rstd)
			accB[c] += float64(d)
		}
	})
}

// rmsRstd returns 1/sqrt(mean(x²)+eps), summed in float64.
func rmsRstd(x []float32, eps float32) float32 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return float32(1 / math.Sqrt(s/float64(len(x))+float64(eps)))
}

// RMSNorm computes out = x·rsqrt(mean(x²)+eps)·(offset + gain) over each
// row (offset 1 is Gemma's norm, 0 everyone else's).
//
// Shapes: out, inp (N, C); gain (C).
func RMSNorm(out, inp, gain []float32, N, C int, eps, offset float32) {
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := inp[n*C : (n+1)*C]
			o := out[n*C : (n+1)*C]
			r := rmsRstd(x, eps)
			g := gain[:C]
			if offset == 0 {
				for c, v := range x {
					o[c] = v * r * g[c]
				}
				continue
			}
			for c, v := range x {
				o[c] = v * r * (offset + g[c])
			}
		}
	})
}

// RMSNormGrad computes dinp = r·g − r³·x·mean(g⊙x) with
// g = dout⊙(offset + gain).
//
// Shapes: dinp, dout, inp (N, C); gain (C).
func RMSNormGrad(dinp, dout, inp, gain []float32, N, C int, eps, offset float32) {
	if offset != 0 {
		shifted := make([]float32, C)
		for c := range shifted {
			shifted[c] = offset + gain[c]
		}
		gain = shifted
	}
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := inp[n*C : (n+1)*C]
			d := dout[n*C : (n+1)*C]
			g := gain[:C]
			r := rmsRstd(x, eps)
			var s float64
			for c, v := range x {
				s += float64(d[c] * g[c] * v)
			}
			k := r * r * r * float32(s/float64(C))
			di := dinp[n*C : (n+1)*C]
			for c, v := range x {
				di[c] = r*d[c]*g[c] - k*v
			}
		}
	})
}

// RMSNormGradGain computes dgain = Σₙ dout⊙x·r, summed over rows in float64.
//
// Shapes: dgain (C); dout, inp (N, C).
func RMSNormGradGain(dgain, dout, inp []float32, N, C int, eps float32) {
	rs := getF32(N)
	defer putF32(rs)
	r := *rs
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			r[n] = rmsRstd(inp[n*C:(n+1)*C], eps)
		}
	})
	colSums(dgain, nil, N, C, func(n int, acc, _ []float64, c0 int) {
		o := n*C + c0
		x := inp[o : o+len(acc)]
		for c, d := range dout[o : o+len(acc)] {
			acc[c] += float64(d * x[c] * r[n])
		}
	})
}

// RoPE rotates every head of every row by its position (Hugging Face
// rotate_half, see rope.go). The cosines and sines are computed in float64
// and rounded once. out may be inp.
//
// scaling and its parameters select the inverse frequencies (RoPEInvFreq).
//
// Shapes: out, inp (N, NH·HS); pos (N). HS is even.
func RoPE(out, inp []float32, pos []int32, N, NH, HS int, theta float32, scaling int, factor, lowFreq, highFreq float32, origCtx int) {
	rope32(out, inp, pos, N, NH, HS, RoPEInvFreq(HS, float64(theta), scaling, float64(factor), float64(lowFreq), float64(highFreq), origCtx), 1)
}

// RoPEGrad computes dinp from dout: the rotation by the opposite angle. dinp
// may be dout.
//
// Shapes: dinp, dout (N, NH·HS); pos (N).
func RoPEGrad(dinp, dout []float32, pos []int32, N, NH, HS int, theta float32, scaling int, factor, lowFreq, highFreq float32, origCtx int) {
	rope32(dinp, dout, pos, N, NH, HS, RoPEInvFreq(HS, float64(theta), scaling, float64(factor), float64(lowFreq), float64(highFreq), origCtx), -1)
}

func rope32(out, inp []float32, pos []int32, N, NH, HS int, invFreq []float64, sign float32) {
	half := HS / 2
	C := NH * HS
	parallelRows(N, C+8*half, func(lo, hi int) {
		cs := make([]float32, 2*half)
		cos, sin := cs[:half], cs[half:]
		for n := lo; n < hi; n++ {
			p := float64(pos[n])
			for i, f := range invFreq {
				s, c := math.Sincos(p * f)
				cos[i], sin[i] = float32(c), sign*float32(s)
			}
			for h := range NH {
				o := n*C + h*HS
				x0, x1 := inp[o:o+half], inp[o+half:o+HS]
				y0, y1 := out[o:o+half], out[o+half:o+HS]
				for i, c := range cos {
					a, b := x0[i], x1[i]
					y0[i] = a*c - b*sin[i]
					y1[i] = b*c + a*sin[i]
				}
			}
		}
	})
}

// exp32 returns e^x for float32 arguments, with a relative error below 1e-9
// before the final rounding: n = round(x/ln2), r = x − n·ln2 in float64
// (|r| ≤ ln2/2), a degree-9 Taylor polynomial of e^r, and 2ⁿ put into the
// exponent bits. About three times as fast as math.Exp, which softmax and
// cross-entropy call once per logit.
func exp32(x float32) float32 {
	switch {
	case x > 88.8:
		return float32(math.Inf(1))
	case x < -104:
		return 0
	case x != x:
		return x
	}
	xf := float64(x)
	n := math.Floor(xf*math.Log2E + 0.5)
	r := xf - n*math.Ln2
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320+r*(1.0/362880)))))))))
	return float32(p * math.Float64frombits(uint64(int64(n)+1023)<<52))
}

// expChunk is how many elements the elementwise kernels exponentiate at a
// time, in a buffer on the stack.
const expChunk = 256

// expChunks splits [0, n) over ParallelFor and calls body on runs of at most
// expChunk elements with a scratch slice of the run's length.
func expChunks(n int, body func(c0, c1 int, e []float32)) {
	parallelRows(n, 8, func(lo, hi int) {
		var buf [expChunk]float32
		for c0 := lo; c0 < hi; c0 += expChunk {
			c1 := min(hi, c0+expChunk)
			body(c0, c1, buf[:c1-c0])
		}
	})
}

// expInPlace replaces each x[i] by exp(x[i]): with the kernel variant's
// vector exponential where one runs (x clamped to [−87, 88], so no overflow
// to +Inf or flush to zero; a NaN stays NaN), and exp32 for the tail and on
// the pure-Go path.
func expInPlace(x []float32) {
	n := 0
	if l := activeLevel.Load(); l != nil && len(x) >= l.lanes {
		n = len(x) / l.lanes * l.lanes
		l.exp(&x[0], &x[0], n)
	}
	for i := n; i < len(x); i++ {
		x[i] = exp32(x[i])
	}
}

// GELU computes the tanh approximation 0.5·x·(1+tanh(u)), u = √(2/π)(x+0.044715x³),
// as x·σ(2u), which is the same function.
//
// Shapes: out, inp (N). out may be inp.
func GELU(out, inp []float32, N int) {
	l := activeLevel.Load()
	expChunks(N, func(c0, c1 int, e []float32) {
		if l != nil {
			// Whole vectors on the variant's kernel, the tail below.
			if n := (c1 - c0) / l.lanes * l.lanes; n > 0 {
				l.gelu(&out[c0], &inp[c0], n)
				c0 += n
				e = e[n:]
			}
		}
		x := inp[c0:c1]
		for i, v := range x {
			e[i] = -2 * (float32(sqrt2OverPi) * (v + 0.044715*v*v*v))
		}
		expInPlace(e)
		o := out[c0:c1]
		for i, v := range x {
			o[i] = v / (1 + e[i])
		}
	})
}

// GELUGrad computes dinp = dout·(s + 2x·s(1−s)·u′) with s = σ(2u), the
// derivative of GELU.
//
// Shapes: dinp, dout, inp (N). dinp may be dout or inp.
func GELUGrad(dinp, dout, inp []float32, N int) {
	l := activeLevel.Load()
	expChunks(N, func(c0, c1 int, e []float32) {
		if l != nil {
			if n := (c1 - c0) / l.lanes * l.lanes; n > 0 {
				l.geluGrad(&dinp[c0], &dout[c0], &inp[c0], n)
				c0 += n
				e = e[n:]
			}
		}
		x := inp[c0:c1]
		for i, v := range x {
			e[i] = -2 * (float32(sqrt2OverPi) * (v + 0.044715*v*v*v))
		}
		expInPlace(e)
		d, g := dinp[c0:c1], dout[c0:c1]
		for i, v := range x {
			du := float32(sqrt2OverPi) * (1 + 3*0.044715*v*v)
			s := 1 / (1 + e[i])
			d[i] = g[i] * (s + 2*v*s*(1-s)*du)
		}
	})
}

// SiLU computes out = x·σ(x).
//
// Shapes: out, inp (N). out may be inp.
func SiLU(out, inp []float32, N int) {
	expChunks(N, func(c0, c1 int, e []float32) {
		x := inp[c0:c1]
		for i, v := range x {
			e[i] = -v
		}
		expInPlace(e)
		o := out[c0:c1]
		for i, v := range x {
			o[i] = v / (1 + e[i])
		}
	})
}

// SiLUGrad computes dinp = dout·σ(x)·(1 + x·(1−σ(x))).
//
// Shapes: dinp, dout, inp (N). dinp may be dout or inp.
func SiLUGrad(dinp, dout, inp []float32, N int) {
	expChunks(N, func(c0, c1 int, e []float32) {
		x := inp[c0:c1]
		for i, v := range x {
			e[i] = -v
		}
		expInPlace(e)
		d, g := dinp[c0:c1], dout[c0:c1]
		for i, v := range x {
			s := 1 / (1 + e[i])
			d[i] = g[i] * s * (1 + v*(1-s))
		}
	})
}

// Add computes out = a + b.
//
// Shapes: out, a, b (N). out may be a or b.
func Add(out, a, b []float32, N int) {
	parallelRows(N, 1, func(lo, hi int) {
		o, y := out[lo:hi], b[lo:hi]
		for i, x := range a[lo:hi] {
			o[i] = x + y[i]
		}
	})
}

// Mul computes out = a⊙b.
//
// Shapes: out, a, b (N). out may be a or b.
// Scale computes out = inp·scale. out may be inp.
//
// Shapes: out, inp (N).
func Scale(out, inp []float32, N int, scale float32) {
	parallelRows(N, 1, func(lo, hi int) {
		o := out[lo:hi]
		for i, x := range inp[lo:hi] {
			o[i] = x * scale
		}
	})
}

// Softcap computes out = cap·tanh(inp/cap), as transformers does in
// float32: inp/cap, tanh, times cap. out may be inp.
//
// Shapes: out, inp (N).
func Softcap(out, inp []float32, N int, cap float32) {
	parallelRows(N, 8, func(lo, hi int) {
		o := out[lo:hi]
		for i, x := range inp[lo:hi] {
			o[i] = float32(math.Tanh(float64(x/cap))) * cap
		}
	})
}

// SoftcapGrad computes dinp = dout·(1 − tanh²(inp/cap)). dinp may be dout.
//
// Shapes: dinp, dout, inp (N).
func SoftcapGrad(dinp, dout, inp []float32, N int, cap float32) {
	parallelRows(N, 8, func(lo, hi int) {
		o, d := dinp[lo:hi], dout[lo:hi]
		for i, x := range inp[lo:hi] {
			t := float32(math.Tanh(float64(x / cap)))
			o[i] = d[i] * (1 - t*t)
		}
	})
}

func Mul(out, a, b []float32, N int) {
	parallelRows(N, 1, func(lo, hi int) {
		o, y := out[lo:hi], b[lo:hi]
		for i, x := range a[lo:hi] {
			o[i] = x * y[i]
		}
	})
}

// maxOf returns the largest element of x (−Inf for none).
//
// Four running maxima (elements i mod 4) break the dependency chain; max is
// exact, so the result is the same as one running maximum.
func maxOf(x []float32) float32 {
	inf := float32(math.Inf(-1))
	m0, m1, m2, m3 := inf, inf, inf, inf
	i := 0
	for ; i+4 <= len(x); i += 4 {
		m0, m1, m2, m3 = max(m0, x[i]), max(m1, x[i+1]), max(m2, x[i+2]), max(m3, x[i+3])
	}
	for ; i < len(x); i++ {
		m0 = max(m0, x[i])
	}
	return max(max(m0, m1), max(m2, m3))
}

// Softmax computes out = softmax(inp) over each row.
//
// Shapes: out, inp (N, C).
func Softmax(out, inp []float32, N, C int) {
	parallelRows(N, 4*C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := inp[n*C : (n+1)*C]
			o := out[n*C : (n+1)*C]
			mx := maxOf(x)
			for c, v := range x {
				o[c] = v - mx
			}
			expInPlace(o)
			var sum float64
			for _, e := range o {
				sum += float64(e)
			}
			inv := float32(1 / sum)
			for c := range o {
				o[c] *= inv
			}
		}
	})
}

// SoftmaxGrad computes dinp = out⊙(dout − Σ dout⊙out) over each row.
//
// Shapes: dinp, dout, out (N, C).
func SoftmaxGrad(dinp, dout, out []float32, N, C int) {
	parallelRows(N, C, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			y := out[n*C : (n+1)*C]
			d := dout[n*C : (n+1)*C]
			var s float64
			for c, v := range y {
				s += float64(d[c] * v)
			}
			sf := float32(s)
			di := dinp[n*C : (n+1)*C]
			for c, v := range y {
				di[c] = v * (d[c] - sf)
			}
		}
	})
}

// logSumExp32 returns log Σ exp(x) and the row max, the sum in float64.
func logSumExp32(x []float32) (lse, mx float32) {
	mx = maxOf(x)
	var sum float64
	for _, v := range x {
		sum += float64(exp32(v - mx))
	}
	return mx + float32(math.Log(sum)), mx
}

// CrossEntropy returns the mean over counted rows of
// −log softmax(logits[n])[targets[n]]: a row whose target is IgnoreTarget
// is skipped, and the mean is over the rest (0 when every row is ignored).
// Row losses go to scratch and are summed in n order, so the result does not
// depend on the thread count; with no row ignored it is the plain mean over N.
//
// Shapes: logits (N, V); targets (N), each in [0, V) or IgnoreTarget. N ≥ 1.
func CrossEntropy(logits []float32, targets []int32, N, V int) float32 {
	loss := make([]float64, N)
	parallelRows(N, 4*V, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			if targets[n] == IgnoreTarget {
				continue
			}
			x := logits[n*V : (n+1)*V]
			lse, _ := logSumExp32(x)
			loss[n] = float64(lse) - float64(x[targets[n]])
		}
	})
	var total float64
	for n, l := range loss {
		if targets[n] != IgnoreTarget {
			total += l
		}
	}
	count := CountTargets(targets[:N])
	if count == 0 {
		return 0
	}
	return float32(total / float64(count))
}

// CrossEntropyGrad computes dlogits = dloss·(softmax(logits) − onehot(targets))/count
// on counted rows, count being the rows whose target is not IgnoreTarget;
// ignored rows (all rows, when none is counted) get zero.
//
// Shapes: dlogits, logits (N, V); targets (N), each in [0, V) or IgnoreTarget.
func CrossEntropyGrad(dlogits []float32, dloss float32, logits []float32, targets []int32, N, V int) {
	count := CountTargets(targets[:N])
	var g float32
	if count > 0 {
		g = dloss / float32(count)
	}
	parallelRows(N, 8*V, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			x := logits[n*V : (n+1)*V]
			d := dlogits[n*V : (n+1)*V]
			if targets[n] == IgnoreTarget {
				clear(d)
				continue
			}
			lse, _ := logSumExp32(x)
			for i, v := range x {
				d[i] = v - lse
			}
			expInPlace(d)
			for i := range d {
				d[i] *= g
			}
			d[targets[n]] -= g
		}
	})
}

// CopyCols copies a (rows, width) block between row-major matrices with
// different row strides: dst[r*dstStride+dstOff+c] = src[r*srcStride+srcOff+c].
// Generated code splits and concatenates the fused qkv projection with it.
func CopyCols(dst []float32, dstStride, dstOff int, src []float32, srcStride, srcOff int, rows, width int) {
	parallelRows(rows, width, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(dst[r*dstStride+dstOff:r*dstStride+dstOff+width], src[r*srcStride+srcOff:r*srcStride+srcOff+width])
		}
	})
}

// Attention computes causal grouped-query attention (see attention.go):
// out = softmax(q·kᵀ/√HS + causal mask)·v, query head h reading key/value
// head h/(NH/KVH). Work is split over (b, h) pairs.
//
// With a SIMD variant the products are GEMMs over blocks of queries
// (attention_blocks.go); the pure-Go path below runs both products on
// gemmKernel8: the keys of a head are packed in panels
// of 8 keys (HS×8), so the scores of one query against 8 keys are one kernel
// call, and the values in panels of 8 dimensions (T×8), so 8 dimensions of
// the output are one call over the query's probabilities.
//
// W > 0 is a sliding window: query t attends to keys t−W+1..t only.
// scale multiplies the scores (0: 1/√HS); cap > 0 soft-caps them (see
// attention.go).
//
// Shapes: out, q (B, T, NH·HS); k, v (B, T, KVH·HS).
func Attention(out, q, k, v []float32, B, T, NH, KVH, HS, W int, scale, cap float32) {
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(HS)))
	}
	if activeLevel.Load() != nil {
		attentionBlocks(out, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
		return
	}
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	ParallelFor(B*NH, func(lo, hi int) {
		kp := getF32(attnRowPanels(T, HS))
		vd := getF32(attnDimPanels(T, HS))
		p := getF32(T + gemmNR)
		defer putF32(kp)
		defer putF32(vd)
		defer putF32(p)
		for bh := lo; bh < hi; bh++ {
			b, h := bh/NH, bh%NH
			kv := b*T*KC + h/group*HS
			attnPackRows(*kp, k[kv:], KC, T, HS)
			attnPackDims(*vd, v[kv:], KC, T, HS)
			for t := range T {
				qo := (b*T+t)*C + h*HS
				ps := (*p)[:t+1]
				attnScores(*p, q[qo:qo+HS], *kp, t, HS, scale)
				lo := windowStart(t, W)
				if cap != 0 {
					softcap32(ps[lo:], nil, 0, cap)
				}
				clear(ps[:lo])
				softmaxInPlace(ps[lo:])
				attnWeighted(out[qo:qo+HS], ps, *vd, T)
			}
		}
	})
}

// attnRowPanels is the size of T rows of HS packed in panels of gemmNR rows.
func attnRowPanels(T, HS int) int { return (T + gemmNR - 1) / gemmNR * gemmNR * HS }

// attnDimPanels is the size of T rows of HS packed in panels of gemmNR dimensions.
func attnDimPanels(T, HS int) int { return (HS + gemmNR - 1) / gemmNR * gemmNR * T }

// attnPackRows packs rows s < T of src (row s at src[s*stride:], HS long) in
// panels of gemmNR rows: row s, dimension i at dst[s/8·HS·8 + i·8 + s%8];
// rows past T are zero.
func attnPackRows(dst, src []float32, stride, T, HS int) {
	dst = dst[:attnRowPanels(T, HS)]
	for j := 0; j*gemmNR < T; j++ {
		d := dst[j*HS*gemmNR : (j+1)*HS*gemmNR]
		for jj := range gemmNR {
			s := j*gemmNR + jj
			if s >= T {
				for i := range HS {
					d[i*gemmNR+jj] = 0
				}
				continue
			}
			for i, x := range src[s*stride : s*stride+HS] {
				d[i*gemmNR+jj] = x
			}
		}
	}
}

// attnPackDims packs rows s < T of src in panels of gemmNR dimensions:
// row s, dimension i at dst[i/8·T·8 + s·8 + i%8]; dimensions past HS are zero.
func attnPackDims(dst, src []float32, stride, T, HS int) {
	dst = dst[:attnDimPanels(T, HS)]
	for d := 0; d*gemmNR < HS; d++ {
		panel := dst[d*T*gemmNR : (d+1)*T*gemmNR]
		w := min(gemmNR, HS-d*gemmNR)
		for s := range T {
			row := panel[s*gemmNR : (s+1)*gemmNR]
			copy(row, src[s*stride+d*gemmNR:s*stride+d*gemmNR+w])
			clear(row[w:])
		}
	}
}

// attnScores sets p[s] = scale·x·row_s for s ≤ t, rows packed by
// attnPackRows; p needs t+1 rounded up to gemmNR elements.
func attnScores(p, x, rows []float32, t, HS int, scale float32) {
	for j := 0; j*gemmNR <= t; j++ {
		var acc [gemmNR]float32
		gemmKernel8(&acc, x, rows[j*HS*gemmNR:(j+1)*HS*gemmNR])
		dst := p[j*gemmNR : (j+1)*gemmNR]
		for jj, v := range acc {
			dst[jj] = scale * v
		}
	}
}

// attnWeighted sets o[i] = Σₛ w[s]·row_s[i] over s < len(w), rows packed by
// attnPackDims with T rows; each element sums in s order.
func attnWeighted(o, w, dims []float32, T int) {
	n := len(w)
	for d := 0; d*gemmNR < len(o); d++ {
		var acc [gemmNR]float32
		gemmKernel8(&acc, w, dims[d*T*gemmNR:d*T*gemmNR+n*gemmNR])
		copy(o[d*gemmNR:min(len(o), (d+1)*gemmNR)], acc[:])
	}
}

// softmaxInPlace replaces p by softmax(p), normalising by a float64 sum.
func softmaxInPlace(p []float32) {
	mx := maxOf(p)
	for s, x := range p {
		p[s] = x - mx
	}
	expInPlace(p)
	var sum float64
	for _, e := range p {
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for s := range p {
		p[s] *= inv
	}
}

// AttentionGrad computes dq, dk and dv (overwritten) from dout, recomputing
// the probabilities. Work is split over (b, kv head) pairs, so each dk and dv
// row is summed by one goroutine.
//
// For each query head of the group, a sweep over query times t rebuilds the
// probabilities P and dP = dout·vᵀ against 8-key panels, forms
// dS = scale·P⊙(dP − D), writes dq_t = dS·k from 8-dimension panels, and keeps
// P and dS transposed (T, T). Then dk_s += Σ_t dS[t,s]·q_t and
// dv_s += Σ_t P[t,s]·dout_t are kernel calls over a contiguous row of the
// transposed matrices: every dk and dv element sums over the group's heads in
// order and, within a head, over t in order.
//
// W, scale and cap are Attention's.
//
// Shapes: dq, dout, q (B, T, NH·HS); dk, dv, k, v (B, T, KVH·HS).
func AttentionGrad(dq, dk, dv, dout, q, k, v []float32, B, T, NH, KVH, HS, W int, scale, cap float32) {
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(HS)))
	}
	if activeLevel.Load() != nil {
		attentionGradBlocks(dq, dk, dv, dout, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
		return
	}
	C, KC := NH*HS, KVH*HS
	group := NH / KVH
	ParallelFor(B*KVH, func(lo, hi int) {
		bufs := make([]*[]float32, 0, 10)
		get := func(n int) []float32 {
			b := getF32(n)
			bufs = append(bufs, b)
			return *b
		}
		defer func() {
			for _, b := range bufs {
				putF32(b)
			}
		}()
		kp, vp := get(attnRowPanels(T, HS)), get(attnRowPanels(T, HS))
		kd, qd, dod := get(attnDimPanels(T, HS)), get(attnDimPanels(T, HS)), get(attnDimPanels(T, HS))
		pt, dst := get(T*T), get(T*T)
		p, dp, dc := get(T+gemmNR), get(T+gemmNR), get(T+gemmNR)
		for bg := lo; bg < hi; bg++ {
			b, g := bg/KVH, bg%KVH
			kv := b*T*KC + g*HS
			attnPackRows(kp, k[kv:], KC, T, HS)
			attnPackRows(vp, v[kv:], KC, T, HS)
			attnPackDims(kd, k[kv:], KC, T, HS)
			for s := range T {
				clear(dk[kv+s*KC : kv+s*KC+HS])
				clear(dv[kv+s*KC : kv+s*KC+HS])
			}
			for j := range group {
				h := g*group + j
				qh := b*T*C + h*HS // query head h, at time 0
				for t := range T {
					qo := qh + t*C
					qt, do := q[qo:qo+HS], dout[qo:qo+HS]
					ps, ds := p[:t+1], dp[:t+1]
					attnScores(p, qt, kp, t, HS, scale)
					lo := windowStart(t, W)
					if cap != 0 {
						softcap32(ps[lo:], dc, lo, cap)
					}
					clear(ps[:lo])
					softmaxInPlace(ps[lo:])
					attnScores(dp, do, vp, t, HS, 1)
					var d float64
					for s, w := range ps {
						d += float64(w * ds[s])
					}
					df := float32(d)
					for s, w := range ps {
						ds[s] = scale * w * (ds[s] - df)
						if cap != 0 && s >= lo {
							ds[s] *= dc[s]
						}
						pt[s*T+t] = w
						dst[s*T+t] = ds[s]
					}
					attnWeighted(dq[qo:qo+HS], ds, kd, T)
				}
				attnPackDims(qd, q[qh:], C, T, HS)
				attnPackDims(dod, dout[qh:], C, T, HS)
				for s := range T {
					ko := kv + s*KC
					attnAccumulate(dk[ko:ko+HS], dst[s*T+s:(s+1)*T], qd, s, T)
					attnAccumulate(dv[ko:ko+HS], pt[s*T+s:(s+1)*T], dod, s, T)
				}
			}
		}
	})
}

// attnAccumulate adds Σ_{t ≥ s} w[t−s]·row_t to o, rows packed by
// attnPackDims with T rows, continuing each element's running sum.
func attnAccumulate(o, w, dims []float32, s, T int) {
	for d := 0; d*gemmNR < len(o); d++ {
		dst := o[d*gemmNR : min(len(o), (d+1)*gemmNR)]
		var acc [gemmNR]float32
		copy(acc[:], dst)
		gemmKernel8(&acc, w, dims[d*T*gemmNR+s*gemmNR:(d+1)*T*gemmNR])
		copy(dst, acc[:])
	}
}
