package codegen

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"lorac.dev/lorac/graph"
)

// Import paths of the runtime packages generated code calls: the engine
// that holds a model's state and drives its graphs, and the float32 kernels
// the graphs are made of.
const (
	engine = "lorac.dev/lorac/runtime/engine"
	kern   = "lorac.dev/lorac/runtime/kern"
)

// layout places every parameter in one of two flat stores: base weights in
// m.Base, adapter weights in m.LoRA; gradients mirror them in m.BaseGrad and
// m.LoRAGrad.
type layout struct {
	base, lora []*graph.Param
	offset     map[string]int // parameter name → element offset in its store
	field      map[string]string
	baseSize   int
	loraSize   int
	// state places the KV caches of the decoding graphs in m.KV.
	state  map[string]int
	kvSize int
}

// addState places a graph's float inputs (KV caches) in the KV store; graphs
// that share a cache name share its place.
func (l *layout) addState(g *graph.Graph) {
	for _, v := range g.Inputs {
		if v.DType == graph.I32 {
			continue
		}
		if _, ok := l.state[v.Name]; !ok {
			l.state[v.Name] = l.kvSize
			l.kvSize += v.Shape.Numel()
		}
	}
}

func newLayout(g *graph.Graph) (*layout, error) {
	l := &layout{offset: map[string]int{}, field: map[string]string{}, state: map[string]int{}}
	used := map[string]bool{}
	for _, v := range g.Params {
		p := v.Param
		if p.DType != graph.F32 {
			return nil, fmt.Errorf("parameter %s is %s; generated code stores f32", p.Name, p.DType)
		}
		n := p.Shape.Numel()
		if p.Role == graph.LoRA {
			l.lora = append(l.lora, p)
			l.offset[p.Name] = l.loraSize
			l.loraSize += n
		} else {
			l.base = append(l.base, p)
			l.offset[p.Name] = l.baseSize
			l.baseSize += n
		}
		f := fieldName(p.Name)
		for i := 2; used[f]; i++ {
			f = fmt.Sprintf("%s%d", fieldName(p.Name), i)
		}
		used[f] = true
		l.field[p.Name] = f
	}
	return l, nil
}

// fieldName turns "transformer.h.0.attn.c_attn.weight" into
// "H0AttnCAttnWeight": the leading "transformer." / "model." says nothing.
func fieldName(name string) string {
	name = strings.TrimPrefix(strings.TrimPrefix(name, "transformer."), "model.")
	var b strings.Builder
	up := true
	for _, r := range name {
		switch {
		case r == '.' || r == '_':
			up = true
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	s := b.String()
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		s = "P" + s
	}
	return s
}

// emitter writes one graph as a method body.
type emitter struct {
	g *graph.Graph
	l *layout
	// dropout applies the LoRA dropout masks (training graphs only; the
	// method then takes the mask stream as its step parameter).
	dropout bool
	err     error
}

// val returns the Go expression of a float value's slice.
func (e *emitter) val(v *graph.Value) jen.Code {
	n := v.Shape.Numel()
	switch {
	case v.Param != nil:
		return jen.Id("m").Dot(e.l.field[v.Param.Name])
	case v.GradOf != nil:
		store := "LoRAGrad"
		if v.GradOf.Role == graph.Base {
			store = "BaseGrad"
		}
		off := e.l.offset[v.GradOf.Name]
		return jen.Id("m").Dot(store).Index(jen.Lit(off), jen.Lit(off+n))
	case v.Input && v.DType == graph.I32:
		return jen.Id(v.Name)
	case v.Input:
		off, ok := e.l.state[v.Name]
		if !ok {
			e.fail("state input %s has no place in the KV store", v.Name)
			return jen.Nil()
		}
		return jen.Id("m").Dot("KV").Index(jen.Lit(off), jen.Lit(off+n))
	}
	off, ok := e.g.Plan.Offsets[v]
	if !ok {
		e.fail("value %s has no place in the memory plan", v.Ref())
		return jen.Nil()
	}
	lo := int(off / 4)
	return jen.Id("a").Index(jen.Lit(lo), jen.Lit(lo+n))
}

// opt is val, or nil for an absent optional input.
func (e *emitter) opt(n *graph.Node, i int) jen.Code {
	if i < len(n.In) {
		return e.val(n.In[i])
	}
	return jen.Nil()
}

func (e *emitter) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, args...)
	}
}

func lit(v any) jen.Code { return jen.Lit(v) }

func f32(x float64) jen.Code { return jen.Lit(float32(x)) }

// mask returns the dropout mask expression of a LoRA node (nil without
// dropout or outside training) and the statement that fills it.
func (e *emitter) mask(n *graph.Node, x *graph.Value) (jen.Code, jen.Code) {
	if n.Attr.Dropout == 0 || !e.dropout {
		return jen.Nil(), nil
	}
	size := x.Shape.Numel()
	m := jen.Id("m").Dot("Mask").Index(jen.Empty(), jen.Lit(size))
	fill := jen.Qual(kern, "DropoutMask").Call(jen.Id("m").Dot("Mask").Index(jen.Empty(), jen.Lit(size)),
		jen.Lit(n.Attr.Dropout), jen.Lit(n.Attr.Seed), jen.Id("step"))
	return m, fill
}

// node returns the statements that run one node.
func (e *emitter) node(n *graph.Node) []jen.Code {
	a := n.Attr
	call := func(fn string, args ...jen.Code) []jen.Code { return []jen.Code{jen.Qual(kern, fn).Call(args...)} }
	var x *graph.Value
	rows, width := 0, 0
	if len(n.In) > 0 {
		x = n.In[0]
		rows, width = x.Shape.Rows(), x.Shape.Last()
	}
	out := func(i int) jen.Code { return e.val(n.Out[i]) }
	in := func(i int) jen.Code { return e.val(n.In[i]) }
	switch n.Op {
	case graph.OpEmbedding:
		t := n.In[1].Shape
		return call("Embedding", out(0), in(0), in(1), lit(rows*width), lit(t[1]))
	case graph.OpEmbeddingGrad:
		t := n.In[2].Shape
		return call("EmbeddingGrad", out(0), in(0), in(1), lit(n.In[1].Shape.Numel()), lit(t[0]), lit(t[1]))
	case graph.OpLinear:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			e.fail("%v", err)
		}
		return call("Linear", out(0), in(0), in(1), e.opt(n, 2), lit(rows), lit(k), lit(m), lit(a.Conv1D))
	case graph.OpLinearGradInput:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			e.fail("%v", err)
		}
		return call("LinearGradInput", out(0), in(0), in(1), lit(rows), lit(k), lit(m), lit(a.Conv1D))
	case graph.OpLinearGradWeight:
		return call("LinearGradWeight", out(0), in(0), in(1), lit(rows), lit(n.In[1].Shape.Last()), lit(width), lit(a.Conv1D))
	case graph.OpLinearGradBias:
		return call("LinearGradBias", out(0), in(0), lit(rows), lit(width))
	case graph.OpLoRALinear:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			e.fail("%v", err)
		}
		mask, fill := e.mask(n, x)
		c := call("LoRALinear", out(0), in(0), in(1), e.opt(n, 4), in(2), in(3), mask,
			lit(rows), lit(k), lit(m), lit(n.In[2].Shape[0]), f32(a.Scale), lit(a.Conv1D))
		return prepend(fill, c)
	case graph.OpLoRALinearGrad:
		xv, w, av, bv := n.In[1], n.In[2], n.In[3], n.In[4]
		mask, fill := e.mask(n, xv)
		dx := jen.Code(jen.Nil())
		if len(n.Out) == 3 {
			dx = out(2)
		}
		k, m := xv.Shape.Last(), bv.Shape[0]
		c := call("LoRALinearGrad", out(0), out(1), dx, in(0), e.val(xv), e.val(w), e.val(av), e.val(bv), mask,
			lit(xv.Shape.Rows()), lit(k), lit(m), lit(av.Shape[0]), f32(a.Scale), lit(a.Conv1D))
		return prepend(fill, c)
	case graph.OpLoRA:
		mask, fill := e.mask(n, x)
		c := call("LoRA", out(0), in(0), in(1), in(2), mask,
			lit(rows), lit(width), lit(n.In[2].Shape[0]), lit(n.In[1].Shape[0]), f32(a.Scale))
		return prepend(fill, c)
	case graph.OpLoRAGrad:
		xv, av, bv := n.In[1], n.In[2], n.In[3]
		mask, fill := e.mask(n, xv)
		dx := jen.Code(jen.Nil())
		if len(n.Out) == 3 {
			dx = out(2)
		}
		c := call("LoRAGrad", out(0), out(1), dx, in(0), e.val(xv), e.val(av), e.val(bv), mask,
			lit(xv.Shape.Rows()), lit(xv.Shape.Last()), lit(bv.Shape[0]), lit(av.Shape[0]), f32(a.Scale))
		return prepend(fill, c)
	case graph.OpLayerNorm:
		return call("LayerNorm", out(0), in(0), in(1), in(2), lit(rows), lit(width), f32(a.Eps))
	case graph.OpLayerNormGrad:
		return call("LayerNormGrad", out(0), in(0), in(1), in(2), lit(rows), lit(width), f32(a.Eps))
	case graph.OpLayerNormGradParm:
		return call("LayerNormGradParams", out(0), out(1), in(0), in(1), lit(rows), lit(width), f32(a.Eps))
	case graph.OpRMSNorm:
		return call("RMSNorm", out(0), in(0), in(1), lit(rows), lit(width), f32(a.Eps))
	case graph.OpRMSNormGrad:
		return call("RMSNormGrad", out(0), in(0), in(1), in(2), lit(rows), lit(width), f32(a.Eps))
	case graph.OpRMSNormGradGain:
		return call("RMSNormGradGain", out(0), in(0), in(1), lit(rows), lit(width), f32(a.Eps))
	case graph.OpRoPE:
		return call("RoPE", out(0), in(0), in(1), lit(rows), lit(a.Heads), lit(width/a.Heads), f32(a.Theta))
	case graph.OpRoPEGrad:
		return call("RoPEGrad", out(0), in(0), in(1), lit(rows), lit(a.Heads), lit(width/a.Heads), f32(a.Theta))
	case graph.OpAttention:
		s := x.Shape
		return call("Attention", out(0), in(0), in(1), in(2), lit(s[0]), lit(s[1]), lit(a.Heads), lit(a.KVHeads), lit(s[2]/a.Heads))
	case graph.OpAttentionDecode:
		s, c := x.Shape, n.In[3].Shape
		return call("AttentionDecode", out(0), in(0), in(1), in(2), in(3), in(4), in(5),
			lit(s[0]), lit(c[1]), lit(a.Heads), lit(a.KVHeads), lit(s[2]/a.Heads))
	case graph.OpAttentionGrad:
		s := n.In[1].Shape
		return call("AttentionGrad", out(0), out(1), out(2), in(0), in(1), in(2), in(3),
			lit(s[0]), lit(s[1]), lit(a.Heads), lit(a.KVHeads), lit(s[2]/a.Heads))
	case graph.OpGELU:
		return call("GELU", out(0), in(0), lit(x.Shape.Numel()))
	case graph.OpGELUGrad:
		return call("GELUGrad", out(0), in(0), in(1), lit(x.Shape.Numel()))
	case graph.OpSiLU:
		return call("SiLU", out(0), in(0), lit(x.Shape.Numel()))
	case graph.OpSiLUGrad:
		return call("SiLUGrad", out(0), in(0), in(1), lit(x.Shape.Numel()))
	case graph.OpAdd:
		return call("Add", out(0), in(0), in(1), lit(x.Shape.Numel()))
	case graph.OpMul:
		return call("Mul", out(0), in(0), in(1), lit(x.Shape.Numel()))
	case graph.OpSoftmax:
		return call("Softmax", out(0), in(0), lit(rows), lit(width))
	case graph.OpSoftmaxGrad:
		return call("SoftmaxGrad", out(0), in(0), in(1), lit(rows), lit(width))
	case graph.OpCrossEntropy:
		lo := e.val(n.Out[0])
		return []jen.Code{jen.Add(lo).Index(jen.Lit(0)).Op("=").Qual(kern, "CrossEntropy").Call(in(0), in(1), lit(rows), lit(width))}
	case graph.OpCrossEntropyGrad:
		l := n.In[1]
		return call("CrossEntropyGrad", out(0), jen.Add(in(0)).Index(jen.Lit(0)), e.val(l), e.val(n.In[2]), lit(l.Shape.Rows()), lit(l.Shape.Last()))
	case graph.OpFill:
		return call("Fill", out(0), f32(a.Value))
	case graph.OpSplit:
		var stmts []jen.Code
		off := 0
		for i, s := range a.Sizes {
			stmts = append(stmts, jen.Qual(kern, "CopyCols").Call(out(i), lit(s), lit(0), in(0), lit(width), lit(off), lit(rows), lit(s)))
			off += s
		}
		return stmts
	case graph.OpConcat:
		var stmts []jen.Code
		total := n.Out[0].Shape.Last()
		off := 0
		for i, v := range n.In {
			s := v.Shape.Last()
			stmts = append(stmts, jen.Qual(kern, "CopyCols").Call(out(0), lit(total), lit(off), in(i), lit(s), lit(0), lit(rows), lit(s)))
			off += s
		}
		return stmts
	}
	e.fail("codegen: no kernel for op %s", n.Op)
	return nil
}

func prepend(first jen.Code, rest []jen.Code) []jen.Code {
	if first == nil {
		return rest
	}
	return append([]jen.Code{first}, rest...)
}

// body returns the statements of a graph function: one kernel call per node,
// each under a comment with the node it runs.
func (e *emitter) body() []jen.Code {
	stmts := []jen.Code{jen.Id("a").Op(":=").Id("m").Dot("Arena")}
	for _, n := range e.g.Nodes {
		code := e.node(n)
		if len(code) == 0 {
			continue
		}
		comment := n.Op.String()
		if n.Module != "" {
			comment += " " + n.Module
		}
		stmts = append(stmts, jen.Comment(comment))
		stmts = append(stmts, code...)
	}
	return stmts
}
