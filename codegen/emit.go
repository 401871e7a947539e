package codegen

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/lower"
)

// Import paths of the runtime packages generated code calls: the engine
// that holds a model's state and drives its graphs, and the float32 kernels
// the graphs are made of.
const (
	engine = "lorac.dev/lorac/runtime/engine"
	kern   = "lorac.dev/lorac/runtime/kern"
	// device runs the model on a GPU; only cuda.go imports it.
	device = "lorac.dev/lorac/device"
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
	// state places the KV caches of the decoding graphs in m.KV, and
	// those of the rows graph (names with RowsPrefix) in m.KVRows.
	state      map[string]int
	kvSize     int
	kvRowsSize int
}

// RowsPrefix starts the names of the rows graph's KV caches: that graph
// decodes a batch of rows, each with its own cache, in a store of its own
// (m.KVRows), which the runtime allocates only when a server uses it.
const RowsPrefix = "rows."

// SlotPrefix starts the names of the prefill graph's KV caches: cache
// SlotPrefix+X is one row's slot of the rows graph's cache RowsPrefix+X,
// which the runtime picks per call (m.SlotKV), so a prompt prefilled in
// chunks lands where DecodeRows continues it, with no copy.
const SlotPrefix = "slot."

// addState places a graph's float inputs (KV caches) in the KV store; graphs
// that share a cache name share its place.
func (l *layout) addState(g *graph.Graph) {
	for _, v := range g.Inputs {
		if v.DType == graph.I32 {
			continue
		}
		if _, ok := l.state[v.Name]; ok || strings.HasPrefix(v.Name, SlotPrefix) {
			continue // placed already, or a slot of a rows cache
		}
		if strings.HasPrefix(v.Name, RowsPrefix) {
			l.state[v.Name] = l.kvRowsSize
			l.kvRowsSize += v.Shape.Numel()
			continue
		}
		l.state[v.Name] = l.kvSize
		l.kvSize += v.Shape.Numel()
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
	case v.Input && strings.HasPrefix(v.Name, SlotPrefix):
		off, ok := e.l.state[RowsPrefix+strings.TrimPrefix(v.Name, SlotPrefix)]
		if !ok {
			e.fail("slot input %s has no rows cache in the KV store", v.Name)
			return jen.Nil()
		}
		return jen.Id("m").Dot("SlotKV").Call(jen.Lit(off), jen.Lit(n))
	case v.Input:
		off, ok := e.l.state[v.Name]
		if !ok {
			e.fail("state input %s has no place in the KV store", v.Name)
			return jen.Nil()
		}
		store := "KV"
		if strings.HasPrefix(v.Name, RowsPrefix) {
			store = "KVRows"
		}
		return jen.Id("m").Dot(store).Index(jen.Lit(off), jen.Lit(off+n))
	}
	off, ok := e.g.Plan.Offsets[v]
	if !ok {
		e.fail("value %s has no place in the memory plan", v.Ref())
		return jen.Nil()
	}
	lo := int(off / 4)
	return jen.Id("a").Index(jen.Lit(lo), jen.Lit(lo+n))
}

func (e *emitter) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, args...)
	}
}

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

// node returns the statements that run one node: its calls from the
// lowering table, each preceded by the dropout mask fill it needs.
func (e *emitter) node(n *graph.Node) []jen.Code {
	calls, err := lower.Lower(n)
	if err != nil {
		e.fail("codegen: %v", err)
		return nil
	}
	var stmts []jen.Code
	for _, c := range calls {
		args := make([]jen.Code, len(c.Args))
		for i, a := range c.Args {
			switch a.Kind {
			case lower.Slice:
				if a.Value == nil {
					args[i] = jen.Nil()
				} else {
					args[i] = e.val(a.Value)
				}
			case lower.Mask:
				m, fill := e.mask(n, a.Value)
				if fill != nil {
					stmts = append(stmts, fill)
				}
				args[i] = m
			case lower.Scalar:
				args[i] = jen.Add(e.val(a.Value)).Index(jen.Lit(0))
			case lower.Int:
				args[i] = jen.Lit(a.Int)
			case lower.Float:
				args[i] = jen.Lit(float32(a.Float))
			case lower.Bool:
				args[i] = jen.Lit(a.Bool)
			case lower.RowSlices:
				// Each row's view of the parameter in its adapter store,
				// laid out as m.LoRA is.
				off, ok := e.l.offset[a.Value.Param.Name]
				if !ok || a.Value.Param.Role != graph.LoRA {
					e.fail("per-row parameter %s is not an adapter parameter", a.Value.Param.Name)
				}
				args[i] = jen.Id("m").Dot("RowParam").Call(jen.Lit(off), jen.Lit(off+a.Value.Shape.Numel()))
			case lower.BranchRows:
				args[i] = jen.Id("m").Dot("BranchRows").Call()
			case lower.BranchWeights:
				args[i] = jen.Id("m").Dot("BranchWeights").Call()
			}
		}
		call := jen.Qual(kern, c.Kernel).Call(args...)
		if c.Result != nil {
			call = jen.Add(e.val(c.Result)).Index(jen.Lit(0)).Op("=").Add(call)
		}
		stmts = append(stmts, call)
	}
	return stmts
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
