// Package combine makes one LoRA adapter out of several, weighted, as
// PEFT's add_weighted_adapter does for its linear, cat and svd methods
// (`lorac combine`):
//
//   - linear: A = Σ sign(wᵢsᵢ)·√|wᵢsᵢ|·Aᵢ and B = Σ √|wᵢsᵢ|·Bᵢ, for adapters
//     of one rank. Cheap, and only an approximation of Σ wᵢ·sᵢ·Bᵢ·Aᵢ: the
//     product has cross terms.
//   - cat: A stacks the rows wᵢsᵢ·Aᵢ and B the columns Bᵢ; the rank is the
//     sum of the ranks, and B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly.
//   - svd: the truncated SVD of Σ wᵢ·sᵢ·Bᵢ·Aᵢ at the given rank (default:
//     the largest input rank): B = U·S, A = Vᵀ. The best approximation of
//     that rank.
//
// sᵢ is adapter i's scale for the module (alpha/r, or alpha/√r with
// rsLoRA, with rank_pattern and alpha_pattern). The result's config is the
// first adapter's with r and lora_alpha the new rank (scale 1 unless the
// first adapter uses rsLoRA, as in PEFT), the union of the target modules
// and no rank or alpha patterns. A module that only some adapters adapt
// takes the terms of those.
package combine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"lorac.dev/lorac/runtime/format"
)

// Input is one adapter with its weight.
type Input struct {
	Name    string // for messages
	Adapter *format.PEFTAdapter
	Weight  float64
}

// Methods are the combination methods, as PEFT names them.
var Methods = []string{"linear", "cat", "svd"}

// maxRank is an adapter config's largest rank (r or a rank_pattern value):
// what PEFT sizes the combined adapter by.
func maxRank(c *format.PEFTConfig) int {
	r := c.R
	for _, v := range c.RankPattern {
		r = max(r, v)
	}
	return r
}

// Combine returns the adapter that method makes of in; rank is the svd
// method's rank (0: the largest input rank) and must be 0 otherwise.
func Combine(in []Input, method string, rank int) (*format.PEFTAdapter, error) {
	if len(in) == 0 {
		return nil, errors.New("no adapters to combine")
	}
	if len(in) == 1 {
		// PEFT combines a single adapter linearly, whatever the method.
		method = "linear"
	}
	var newRank int
	switch method {
	case "linear":
		newRank = maxRank(&in[0].Adapter.Config)
		for _, a := range in[1:] {
			if r := maxRank(&a.Adapter.Config); r != newRank {
				return nil, fmt.Errorf("linear needs adapters of one rank: %s has %d, %s has %d; use cat or svd", in[0].Name, newRank, a.Name, r)
			}
		}
	case "cat":
		for _, a := range in {
			newRank += maxRank(&a.Adapter.Config)
		}
	case "svd":
		for _, a := range in {
			newRank = max(newRank, maxRank(&a.Adapter.Config))
		}
		if rank > 0 {
			newRank = rank
		}
	default:
		return nil, fmt.Errorf("unknown method %q; the methods are linear, cat and svd", method)
	}
	if rank != 0 && method != "svd" {
		return nil, fmt.Errorf("a rank applies to the svd method only, not %s", method)
	}
	cfg, err := combinedConfig(in, newRank)
	if err != nil {
		return nil, err
	}
	// Every module any adapter adapts, with its shape.
	type shape struct{ in, out int }
	shapes := map[string]shape{}
	for _, a := range in {
		for _, m := range a.Adapter.Modules {
			s := shape{m.In, m.Out}
			if prev, ok := shapes[m.Module]; ok && prev != s {
				return nil, fmt.Errorf("%s: %s is (%d in, %d out) there and (%d in, %d out) in an earlier adapter; adapters of different models do not combine", a.Name, m.Module, m.In, m.Out, prev.in, prev.out)
			}
			shapes[m.Module] = s
		}
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	out := &format.PEFTAdapter{Config: *cfg}
	for _, name := range names {
		s := shapes[name]
		var terms []term
		for _, a := range in {
			for i := range a.Adapter.Modules {
				if m := &a.Adapter.Modules[i]; m.Module == name {
					terms = append(terms, term{m, a.Weight * a.Adapter.Config.Scale(name)})
				}
			}
		}
		w := format.LoRAWeights{Module: name, Rank: newRank, In: s.in, Out: s.out,
			A: make([]float32, newRank*s.in), B: make([]float32, s.out*newRank)}
		switch method {
		case "linear":
			linear(&w, terms)
		case "cat":
			cat(&w, terms)
		case "svd":
			if newRank > min(s.in, s.out) {
				return nil, fmt.Errorf("svd rank %d is more than %s's smaller dimension %d", newRank, name, min(s.in, s.out))
			}
			svd(&w, terms)
		}
		out.Modules = append(out.Modules, w)
	}
	return out, nil
}

// term is one adapter's part of a module: its matrices and weight·scale.
type term struct {
	m  *format.LoRAWeights
	ws float64
}

func linear(w *format.LoRAWeights, terms []term) {
	for _, t := range terms {
		sa := math.Sqrt(math.Abs(t.ws))
		sb := sa
		if t.ws < 0 {
			sa = -sa
		}
		// The module's rank can be below the config's r (rank_pattern):
		// it fills the first rows of A and columns of B.
		r := t.m.Rank
		for i := range r * w.In {
			w.A[i] += float32(sa * float64(t.m.A[i]))
		}
		for o := range w.Out {
			for j := range r {
				w.B[o*w.Rank+j] += float32(sb * float64(t.m.B[o*r+j]))
			}
		}
	}
}

func cat(w *format.LoRAWeights, terms []term) {
	row := 0
	for _, t := range terms {
		r := t.m.Rank
		for i := range r * w.In {
			w.A[row*w.In+i] = float32(t.ws * float64(t.m.A[i]))
		}
		for o := range w.Out {
			for j := range r {
				w.B[o*w.Rank+row+j] = t.m.B[o*r+j]
			}
		}
		row += r
	}
}

// svd sets B·A to the best rank-w.Rank approximation of Σ ws·B·A. The sum
// is P·Q with P = [ws₁B₁ | ws₂B₂ | …] (out × R) and Q = [A₁; A₂; …]
// (R × in), R the sum of the ranks; with thin QR factorisations P = Qp·Rp
// and Qᵀ = Qq·Rq it is Qp·(Rp·Rqᵀ)·Qqᵀ, so the SVD of the small R × R
// matrix Rp·Rqᵀ gives the SVD of the sum: U = Qp·Um, V = Qq·Vm.
func svd(w *format.LoRAWeights, terms []term) {
	R := 0
	for _, t := range terms {
		R += t.m.Rank
	}
	P := newMat(w.Out, R) // columns: ws·B
	Qt := newMat(w.In, R) // columns: rows of A
	c := 0
	for _, t := range terms {
		r := t.m.Rank
		for j := range r {
			for o := range w.Out {
				P.set(o, c+j, t.ws*float64(t.m.B[o*r+j]))
			}
			for i := range w.In {
				Qt.set(i, c+j, float64(t.m.A[j*w.In+i]))
			}
		}
		c += r
	}
	Qp, Rp := qr(P)
	Qq, Rq := qr(Qt)
	M := newMat(R, R) // Rp·Rqᵀ
	for i := range R {
		for j := range R {
			var s float64
			for k := range R {
				s += Rp.at(i, k) * Rq.at(j, k)
			}
			M.set(i, j, s)
		}
	}
	Um, S, Vm := jacobiSVD(M)
	k := min(w.Rank, R)
	for j := range k {
		for o := range w.Out {
			var u float64
			for l := range R {
				u += Qp.at(o, l) * Um.at(l, j)
			}
			w.B[o*w.Rank+j] = float32(u * S[j])
		}
		for i := range w.In {
			var v float64
			for l := range R {
				v += Qq.at(i, l) * Vm.at(l, j)
			}
			w.A[j*w.In+i] = float32(v)
		}
	}
	// Ranks past R have singular value 0: their B columns and A rows stay
	// zero, which changes no product.
}

// mat is a dense row-major float64 matrix.
type mat struct {
	r, c int
	x    []float64
}

func newMat(r, c int) *mat             { return &mat{r, c, make([]float64, r*c)} }
func (m *mat) at(i, j int) float64     { return m.x[i*m.c+j] }
func (m *mat) set(i, j int, v float64) { m.x[i*m.c+j] = v }

// qr is the thin QR factorisation of a (m × n): Q (m × n) with
// orthonormal (or zero, for dependent columns) columns and R (n × n) upper
// triangular, by modified Gram-Schmidt with one reorthogonalisation pass.
func qr(a *mat) (*mat, *mat) {
	m, n := a.r, a.c
	q := newMat(m, n)
	copy(q.x, a.x)
	r := newMat(n, n)
	norm0 := 0.0
	for _, v := range a.x {
		norm0 = max(norm0, math.Abs(v))
	}
	for j := range n {
		for pass := 0; pass < 2; pass++ {
			for k := range j {
				var d float64
				for i := range m {
					d += q.at(i, k) * q.at(i, j)
				}
				r.set(k, j, r.at(k, j)+d)
				for i := range m {
					q.set(i, j, q.at(i, j)-d*q.at(i, k))
				}
			}
		}
		var nn float64
		for i := range m {
			nn += q.at(i, j) * q.at(i, j)
		}
		nn = math.Sqrt(nn)
		if nn <= 1e-12*norm0*float64(m) {
			// A dependent column: it adds nothing to the span.
			for i := range m {
				q.set(i, j, 0)
			}
			continue
		}
		r.set(j, j, nn)
		for i := range m {
			q.set(i, j, q.at(i, j)/nn)
		}
	}
	return q, r
}

// jacobiSVD returns U, the singular values in decreasing order and V of a
// square matrix a = U·diag(S)·Vᵀ, by one-sided Jacobi rotations.
func jacobiSVD(a *mat) (*mat, []float64, *mat) {
	n := a.r
	g := newMat(n, n)
	copy(g.x, a.x)
	v := newMat(n, n)
	for i := range n {
		v.set(i, i, 1)
	}
	for sweep := 0; sweep < 60; sweep++ {
		off := 0.0
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				var alpha, beta, gamma float64
				for i := range n {
					alpha += g.at(i, p) * g.at(i, p)
					beta += g.at(i, q) * g.at(i, q)
					gamma += g.at(i, p) * g.at(i, q)
				}
				if gamma == 0 || math.Abs(gamma) <= 1e-15*math.Sqrt(alpha*beta) {
					continue
				}
				off = max(off, math.Abs(gamma)/math.Sqrt(alpha*beta))
				zeta := (beta - alpha) / (2 * gamma)
				t := math.Copysign(1, zeta) / (math.Abs(zeta) + math.Sqrt(1+zeta*zeta))
				cs := 1 / math.Sqrt(1+t*t)
				sn := cs * t
				for i := range n {
					gp, gq := g.at(i, p), g.at(i, q)
					g.set(i, p, cs*gp-sn*gq)
					g.set(i, q, sn*gp+cs*gq)
					vp, vq := v.at(i, p), v.at(i, q)
					v.set(i, p, cs*vp-sn*vq)
					v.set(i, q, sn*vp+cs*vq)
				}
			}
		}
		if off < 1e-15 {
			break
		}
	}
	s := make([]float64, n)
	for j := range n {
		var nn float64
		for i := range n {
			nn += g.at(i, j) * g.at(i, j)
		}
		s[j] = math.Sqrt(nn)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		switch {
		case s[x] > s[y]:
			return -1
		case s[x] < s[y]:
			return 1
		}
		return 0
	})
	u, vs, ss := newMat(n, n), newMat(n, n), make([]float64, n)
	for k, j := range order {
		ss[k] = s[j]
		for i := range n {
			if s[j] > 0 {
				u.set(i, k, g.at(i, j)/s[j])
			}
			vs.set(i, k, v.at(i, j))
		}
	}
	return u, ss, vs
}

// combinedConfig is PEFT's config of the combined adapter.
func combinedConfig(in []Input, rank int) (*format.PEFTConfig, error) {
	cfg := in[0].Adapter.Config
	cfg.R, cfg.LoraAlpha = rank, float64(rank)
	cfg.RankPattern, cfg.AlphaPattern = nil, nil
	regex := cfg.TargetRegex != ""
	for _, a := range in[1:] {
		if (a.Adapter.Config.TargetRegex != "") != regex {
			return nil, fmt.Errorf("%s and %s: one gives target_modules as a regular expression, the other as a list; PEFT combines only adapters of one kind", in[0].Name, a.Name)
		}
	}
	if regex {
		cfg.TargetRegex = ""
		for i, a := range in {
			if i > 0 {
				cfg.TargetRegex += "|"
			}
			cfg.TargetRegex += "(" + a.Adapter.Config.TargetRegex + ")"
		}
		return &cfg, nil
	}
	set := map[string]bool{}
	for _, a := range in {
		for _, t := range a.Adapter.Config.TargetModules {
			set[t] = true
		}
	}
	cfg.TargetModules = nil
	for t := range set {
		cfg.TargetModules = append(cfg.TargetModules, t)
	}
	sort.Strings(cfg.TargetModules)
	return &cfg, nil
}
