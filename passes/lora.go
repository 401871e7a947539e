package passes

import (
	"fmt"
	"hash/fnv"

	"lorac.dev/lorac/graph"
)

// InsertLoRA adds a LoRA branch to every module listed in g.Adapters:
// y = linear(x, W, b) becomes y' = y + lora(x, A, B) with A [R, in] and
// B [out, R], both trainable.
//
// Requires: InferShapes, FreezeBase. Guarantees: one lora node and one add
// per adapter, right after the linear; every former use of y reads y'.
// A training graph with branches gets g.Dropout. With Config.Full no
// adapters are inserted (the base itself trains).
func InsertLoRA(g *graph.Graph, c *Config) error {
	if c.Full && g.Mode == graph.Train {
		return nil
	}
	g.Dropout = g.Mode == graph.Train && len(g.Adapters) > 0
	linears := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		if n.Op == graph.OpLinear && n.Module != "" {
			linears[n.Module] = n
		}
	}
	for _, a := range g.Adapters {
		n := linears[a.Module]
		if n == nil {
			return fmt.Errorf("adapter for %s: the graph has no linear module of that name", a.Module)
		}
		if a.Rank <= 0 {
			return fmt.Errorf("adapter for %s: rank %d must be positive", a.Module, a.Rank)
		}
		in, out, err := graph.LinearDims(n)
		if err != nil {
			return err
		}
		pa := g.AddParam(&graph.Param{Name: a.Module + ".lora_A.weight", Role: graph.LoRA, Trainable: true,
			Shape: graph.Shape{a.Rank, in}, Init: a.InitA, Module: a.Module})
		pb := g.AddParam(&graph.Param{Name: a.Module + ".lora_B.weight", Role: graph.LoRA, Trainable: true,
			Shape: graph.Shape{out, a.Rank}, Init: a.InitB, Module: a.Module})
		br := g.NewNode(graph.OpLoRA, graph.Attrs{Scale: a.Scale(), Dropout: a.Dropout, Seed: moduleSeed(a.Module)}, 1, n.In[0], pa, pb)
		br.Module = a.Module
		sum := g.NewNode(graph.OpAdd, graph.Attrs{}, 1, n.Out[0], br.Out[0])
		sum.Module = a.Module
		g.InsertAfter(n, br)
		g.InsertAfter(br, sum)
		g.Replace(n.Out[0], sum.Out[0], sum)
		for _, m := range []*graph.Node{br, sum} {
			if err := g.Infer(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// moduleSeed names a module's dropout stream, so masks do not depend on
// the order adapters are listed in.
func moduleSeed(module string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(module))
	return h.Sum64()
}

// branch is a linear with its LoRA branch: sum = add(lin(x, W, b), lora(x, A, B)).
type branch struct{ lin, lora, sum *graph.Node }

// branches finds the patterns InsertLoRA creates whose intermediate values
// have no other use.
func branches(g *graph.Graph) []branch {
	uses := g.Uses()
	var bs []branch
	for _, n := range g.Nodes {
		if n.Op != graph.OpAdd {
			continue
		}
		lin, br := n.In[0].Producer, n.In[1].Producer
		if lin == nil || br == nil || lin.Op != graph.OpLinear || br.Op != graph.OpLoRA {
			continue
		}
		if lin.In[0] != br.In[0] || uses[lin.Out[0]] != 1 || uses[br.Out[0]] != 1 {
			continue
		}
		bs = append(bs, branch{lin, br, n})
	}
	return bs
}

// MergeLoRA folds every LoRA branch into its base weight for inference:
// W' = W + s·B·A, computed once by a lora_merge node that reads only
// parameters (so it runs at load time, in place of W).
//
// Requires: InsertLoRA. Guarantees: no lora node remains; each adapted linear
// reads its merged weight; outputs are unchanged up to rounding.
func MergeLoRA(g *graph.Graph, _ *Config) error {
	for _, b := range branches(g) {
		w, a, bm := b.lin.In[1], b.lora.In[1], b.lora.In[2]
		m := g.NewNode(graph.OpLoRAMerge, graph.Attrs{Scale: b.lora.Attr.Scale, Conv1D: b.lin.Attr.Conv1D}, 1, w, a, bm)
		m.Module = b.lin.Module
		m.Out[0].Name = "merged." + b.lin.Module
		if err := g.Infer(m); err != nil {
			return err
		}
		g.InsertAfter(nil, m)
		b.lin.In[1] = m.Out[0]
		g.Replace(b.sum.Out[0], b.lin.Out[0], nil)
	}
	g.RemoveDead()
	return nil
}

// FuseLoRA turns each linear and its LoRA branch into one lora_linear op,
// whose gradient rule (applied later by Differentiate) is one fused
// backward op: the branch rides inside the base matmul instead of costing
// two more kernels. In training graphs the op also outputs the branch's
// t = s·dropout(x)·Aᵀ (N×R, small), which the backward reads instead of
// computing it again.
//
// Requires: InsertLoRA, and MergeLoRA where it runs. Guarantees: no
// unfused linear+lora pair with a frozen W remains; values are unchanged.
func FuseLoRA(g *graph.Graph, _ *Config) error {
	for _, b := range branches(g) {
		w := b.lin.In[1]
		if w.Param != nil && w.Param.Trainable {
			// A trainable W needs its own dW; the fused backward has none.
			continue
		}
		in := []*graph.Value{b.lin.In[0], w, b.lora.In[1], b.lora.In[2]}
		if len(b.lin.In) == 3 {
			in = append(in, b.lin.In[2])
		}
		attr := b.lora.Attr
		attr.Conv1D = b.lin.Attr.Conv1D
		nout := 1
		if g.Mode == graph.Train {
			nout = 2
		}
		op := graph.OpLoRALinear
		if g.RowAdapters {
			if g.Mode != graph.Infer || attr.Dropout > 0 && g.Dropout {
				return fmt.Errorf("FuseLoRA: per-row adapters are for inference graphs only")
			}
			op, nout = graph.OpLoRALinearRows, 1
		}
		f := g.NewNode(op, attr, nout, in...)
		f.Module = b.lin.Module
		if err := g.Infer(f); err != nil {
			return err
		}
		g.InsertAfter(b.sum, f)
		g.Replace(b.sum.Out[0], f.Out[0], f)
	}
	g.RemoveDead()
	return nil
}
