package graph

import (
	"errors"
	"fmt"
)

// MemoryPlan is where every activation lives in one arena, and what the
// whole run needs, by kind of storage.
type MemoryPlan struct {
	// Offsets places each activation in the arena (bytes, 64-aligned).
	Offsets map[*Value]int64
	// ArenaBytes is the arena size: the peak of simultaneously live
	// activations after reuse.
	ArenaBytes int64
	// NaiveBytes is the sum of all activation sizes, without reuse.
	NaiveBytes int64

	WeightBytes    int64 // base parameters
	AdapterBytes   int64 // LoRA parameters
	GradBytes      int64 // gradients of trainable parameters
	OptimizerBytes int64 // AdamW moments (two per trainable parameter)
	InputBytes     int64 // token ids, positions, targets
}

// TotalBytes is the memory a run needs.
func (p *MemoryPlan) TotalBytes() int64 {
	return p.ArenaBytes + p.WeightBytes + p.AdapterBytes + p.GradBytes + p.OptimizerBytes + p.InputBytes
}

// Verify checks the graph's invariants: op arity, single definitions,
// definition before use, known and consistent shapes (once InferShapes has
// run), parameter roles, and that only trainable parameters have gradients.
func (g *Graph) Verify() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	defined := map[*Value]bool{}
	seenParam := map[string]bool{}
	for _, v := range g.Params {
		p := v.Param
		if p == nil {
			bad("parameter value %d has no Param", v.ID)
			continue
		}
		if seenParam[p.Name] {
			bad("parameter %s is declared twice", p.Name)
		}
		seenParam[p.Name] = true
		if v.Producer != nil || v.Input {
			bad("parameter %s is also a node output or input", p.Name)
		}
		if !v.Shape.Equal(p.Shape) || len(p.Shape) == 0 {
			bad("parameter %s has shape %s, value shape %s", p.Name, p.Shape, v.Shape)
		}
		if p.Role == LoRA && p.Module == "" {
			bad("LoRA parameter %s names no module", p.Name)
		}
		defined[v] = true
	}
	for _, v := range g.Inputs {
		if !v.Input || v.Producer != nil || v.Param != nil {
			bad("input %s is not a plain input", v.Ref())
		}
		defined[v] = true
	}
	shaped := g.Facts["InferShapes"]
	for _, n := range g.Nodes {
		info := n.Op.Info()
		if info.Infer == nil {
			bad("node %d: invalid op %s", n.ID, n.Op)
			continue
		}
		if len(n.In) < info.MinIn || (info.MaxIn >= 0 && len(n.In) > info.MaxIn) {
			bad("node %d %s: %d inputs, want %d..%d", n.ID, n.Op, len(n.In), info.MinIn, info.MaxIn)
			continue
		}
		if len(n.Out) < info.MinOut || (info.MaxOut >= 0 && len(n.Out) > info.MaxOut) {
			bad("node %d %s: %d outputs, want %d..%d", n.ID, n.Op, len(n.Out), info.MinOut, info.MaxOut)
			continue
		}
		if info.Backward && g.Mode != Train {
			bad("node %d: backward op %s in an inference graph", n.ID, n.Op)
		}
		for _, v := range n.In {
			if v == nil || !defined[v] {
				bad("node %d %s: input %s is used before it is defined", n.ID, n.Op, refOf(v))
			}
		}
		for _, o := range n.Out {
			if o.Producer != n {
				bad("node %d %s: output %s names another producer", n.ID, n.Op, o.Ref())
			}
			if defined[o] {
				bad("node %d %s: output %s is defined twice", n.ID, n.Op, o.Ref())
			}
			defined[o] = true
		}
		if shaped {
			verifyShapes(n, bad)
		}
	}
	for _, v := range g.Outputs {
		if !defined[v] {
			bad("output %s is not defined", refOf(v))
		}
	}
	seenGrad := map[*Param]bool{}
	for _, v := range g.Grads {
		p := v.GradOf
		switch {
		case !defined[v]:
			bad("gradient %s is not defined", refOf(v))
		case p == nil:
			bad("gradient %s names no parameter", v.Ref())
		case !p.Trainable:
			bad("frozen parameter %s has a gradient", p.Name)
		case seenGrad[p]:
			bad("parameter %s has two gradients", p.Name)
		case shaped && !v.Shape.Equal(p.Shape):
			bad("gradient of %s has shape %s, want %s", p.Name, v.Shape, p.Shape)
		}
		if p != nil {
			seenGrad[p] = true
		}
	}
	if g.Facts["Differentiate"] {
		for _, v := range g.Params {
			if v.Param.Trainable && !seenGrad[v.Param] {
				bad("trainable parameter %s has no gradient", v.Param.Name)
			}
		}
		// Weight gradients must end up in a parameter's gradient, possibly
		// summed with others (a tied embedding gets two).
		feeds := map[*Value]bool{}
		var walk func(v *Value)
		walk = func(v *Value) {
			if feeds[v] {
				return
			}
			feeds[v] = true
			if p := v.Producer; p != nil && p.Op == OpAdd {
				for _, in := range p.In {
					walk(in)
				}
			}
		}
		for _, v := range g.Grads {
			walk(v)
		}
		for _, n := range g.Nodes {
			if n.Op == OpLinearGradWeight || n.Op == OpEmbeddingGrad {
				if !feeds[n.Out[0]] {
					bad("node %d %s computes a weight gradient nobody trains", n.ID, n.Op)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func verifyShapes(n *Node, bad func(string, ...any)) {
	for _, v := range n.In {
		if v.Shape == nil {
			bad("node %d %s: input %s has no shape", n.ID, n.Op, v.Ref())
			return
		}
	}
	shapes, dts, err := n.Op.Info().Infer(n)
	if err != nil {
		bad("node %d: %v", n.ID, err)
		return
	}
	for i, o := range n.Out {
		if !o.Shape.Equal(shapes[i]) || o.DType != dts[i] {
			bad("node %d %s: output %d is %s %s, want %s %s", n.ID, n.Op, i, o.Shape, o.DType, shapes[i], dts[i])
		}
	}
}

func refOf(v *Value) string {
	if v == nil {
		return "<nil>"
	}
	return v.Ref()
}
