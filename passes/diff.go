package passes

import (
	"fmt"

	"lorac.dev/lorac/graph"
)

// Differentiate appends the backward graph of the loss and records the
// gradient of every trainable parameter in g.Grads.
//
// Requires: InferShapes, FreezeBase, InsertLoRA, FuseLoRA (where it runs); a
// training graph whose first output is a scalar loss. Guarantees: one gradient
// rule per op (Rules); gradients are computed only for values that depend on a
// trainable parameter, so a frozen weight never gets a weight-gradient matmul;
// a value used several times gets the sum of its gradients.
func Differentiate(g *graph.Graph, _ *Config) error {
	if len(g.Outputs) == 0 || !g.Outputs[0].Shape.Equal(graph.Shape{}) {
		return fmt.Errorf("the first output must be a scalar loss")
	}
	d := &diff{g: g, need: map[*graph.Value]bool{}, grad: map[*graph.Value]*graph.Value{}}
	for _, v := range g.Params {
		d.need[v] = v.Param.Trainable
	}
	forward := append([]*graph.Node{}, g.Nodes...)
	for _, n := range forward {
		for _, in := range n.In {
			if d.need[in] {
				for _, o := range n.Out {
					d.need[o] = true
				}
				break
			}
		}
	}
	loss := g.Outputs[0]
	if !d.need[loss] {
		return fmt.Errorf("the loss depends on no trainable parameter; add a lora block or train with --full")
	}
	d.grad[loss] = d.emit(graph.OpFill, graph.Attrs{Value: 1, Shape: graph.Shape{}}, "")[0]
	d.grad[loss].Name = "dloss"

	for i := len(forward) - 1; i >= 0; i-- {
		n := forward[i]
		dys := make([]*graph.Value, len(n.Out))
		any := false
		for j, o := range n.Out {
			dys[j] = d.grad[o]
			any = any || dys[j] != nil
		}
		needIn := false
		for _, in := range n.In {
			needIn = needIn || d.need[in]
		}
		if !any || !needIn {
			continue
		}
		rule := Rules[n.Op]
		if rule == nil {
			return fmt.Errorf("node %d: op %s has no gradient rule", n.ID, n.Op)
		}
		dxs, err := rule(d, n, dys)
		if err == nil {
			err = d.err
		}
		if err != nil {
			return fmt.Errorf("node %d %s: %w", n.ID, n.Op, err)
		}
		for j, in := range n.In {
			if j < len(dxs) && dxs[j] != nil && d.need[in] {
				d.accumulate(in, dxs[j])
			}
		}
	}
	g.Grads = nil
	for _, v := range g.Params {
		if !v.Param.Trainable {
			continue
		}
		dv := d.grad[v]
		if dv == nil {
			return fmt.Errorf("trainable parameter %s does not affect the loss", v.Param.Name)
		}
		if dv.GradOf != nil || dv.Producer == nil {
			return fmt.Errorf("gradient of %s is shared with %s", v.Param.Name, dv.GradOf.Name)
		}
		dv.GradOf = v.Param
		dv.Name = "d." + v.Param.Name
		g.Grads = append(g.Grads, dv)
	}
	g.RemoveDead()
	return nil
}

// diff is the state of one differentiation.
type diff struct {
	g    *graph.Graph
	need map[*graph.Value]bool // the value depends on a trainable parameter
	grad map[*graph.Value]*graph.Value
	err  error // the first ill-shaped node a rule built
}

// emit appends a backward node and returns its outputs, shaped.
func (d *diff) emit(op graph.Op, attr graph.Attrs, module string, in ...*graph.Value) []*graph.Value {
	return d.emitN(op, op.Info().MinOut, attr, module, in...)
}

func (d *diff) emitN(op graph.Op, nout int, attr graph.Attrs, module string, in ...*graph.Value) []*graph.Value {
	n := d.g.NewNode(op, attr, nout, in...)
	n.Module = module
	if err := d.g.Infer(n); err != nil && d.err == nil {
		// Rules only combine values whose shapes the forward pass already
		// checked, so this is a bug in a rule; report it, don't panic.
		d.err = fmt.Errorf("gradient rule built an ill-shaped %s: %w", op, err)
	}
	d.g.AppendNode(n)
	return n.Out
}

func (d *diff) accumulate(v, dv *graph.Value) {
	if old := d.grad[v]; old != nil {
		dv = d.emit(graph.OpAdd, graph.Attrs{}, "", old, dv)[0]
	}
	d.grad[v] = dv
}

func (d *diff) zeros(like *graph.Value) *graph.Value {
	return d.emit(graph.OpFill, graph.Attrs{Shape: like.Shape}, "")[0]
}

// A Rule returns the gradient of each input of n (nil where none is needed)
// given the gradients of its outputs (nil for outputs the loss ignores).
type Rule func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error)

// Rules is the gradient table: one rule per differentiable op.
var Rules = map[graph.Op]Rule{
	graph.OpEmbedding: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return []*graph.Value{nil, d.emit(graph.OpEmbeddingGrad, n.Attr, n.Module, dy[0], n.In[0], n.In[1])[0]}, nil
	},
	graph.OpLinear: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		dx := make([]*graph.Value, len(n.In))
		if d.need[n.In[0]] {
			dx[0] = d.emit(graph.OpLinearGradInput, n.Attr, n.Module, dy[0], n.In[1])[0]
		}
		if d.need[n.In[1]] {
			dx[1] = d.emit(graph.OpLinearGradWeight, n.Attr, n.Module, dy[0], n.In[0])[0]
		}
		if len(n.In) == 3 && d.need[n.In[2]] {
			dx[2] = d.emit(graph.OpLinearGradBias, n.Attr, n.Module, dy[0])[0]
		}
		return dx, nil
	},
	graph.OpLayerNorm: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		dx := make([]*graph.Value, 3)
		if d.need[n.In[0]] {
			dx[0] = d.emit(graph.OpLayerNormGrad, n.Attr, n.Module, dy[0], n.In[0], n.In[1])[0]
		}
		if d.need[n.In[1]] || d.need[n.In[2]] {
			p := d.emit(graph.OpLayerNormGradParams, n.Attr, n.Module, dy[0], n.In[0])
			dx[1], dx[2] = p[0], p[1]
		}
		return dx, nil
	},
	graph.OpRMSNorm: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		dx := make([]*graph.Value, 2)
		if d.need[n.In[0]] {
			dx[0] = d.emit(graph.OpRMSNormGrad, n.Attr, n.Module, dy[0], n.In[0], n.In[1])[0]
		}
		if d.need[n.In[1]] {
			dx[1] = d.emit(graph.OpRMSNormGradGain, n.Attr, n.Module, dy[0], n.In[0])[0]
		}
		return dx, nil
	},
	graph.OpRoPE: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return []*graph.Value{d.emit(graph.OpRoPEGrad, n.Attr, n.Module, dy[0], n.In[1])[0], nil}, nil
	},
	graph.OpAttention: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpAttentionGrad, n.Attr, n.Module, dy[0], n.In[0], n.In[1], n.In[2]), nil
	},
	graph.OpGELU: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpGELUGrad, n.Attr, n.Module, dy[0], n.In[0]), nil
	},
	graph.OpSiLU: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpSiLUGrad, n.Attr, n.Module, dy[0], n.In[0]), nil
	},
	graph.OpAdd: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return []*graph.Value{dy[0], dy[0]}, nil
	},
	graph.OpSoftcap: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpSoftcapGrad, n.Attr, n.Module, dy[0], n.In[0]), nil
	},
	graph.OpScale: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpScale, n.Attr, n.Module, dy[0]), nil
	},
	graph.OpMul: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		dx := make([]*graph.Value, 2)
		if d.need[n.In[0]] {
			dx[0] = d.emit(graph.OpMul, graph.Attrs{}, n.Module, dy[0], n.In[1])[0]
		}
		if d.need[n.In[1]] {
			dx[1] = d.emit(graph.OpMul, graph.Attrs{}, n.Module, dy[0], n.In[0])[0]
		}
		return dx, nil
	},
	graph.OpSoftmax: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return d.emit(graph.OpSoftmaxGrad, n.Attr, n.Module, dy[0], n.Out[0]), nil
	},
	graph.OpCrossEntropy: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return []*graph.Value{d.emit(graph.OpCrossEntropyGrad, n.Attr, n.Module, dy[0], n.In[0], n.In[1])[0], nil}, nil
	},
	graph.OpSplit: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		parts := make([]*graph.Value, len(dy))
		for i, g := range dy {
			if g == nil {
				g = d.zeros(n.Out[i])
			}
			parts[i] = g
		}
		return d.emit(graph.OpConcat, graph.Attrs{}, n.Module, parts...), nil
	},
	graph.OpConcat: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		sizes := make([]int, len(n.In))
		for i, v := range n.In {
			sizes[i] = v.Shape.Last()
		}
		return d.emitN(graph.OpSplit, len(sizes), graph.Attrs{Sizes: sizes}, n.Module, dy[0]), nil
	},
	graph.OpLoRA: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		nout := 2
		if d.need[n.In[0]] {
			nout = 3
		}
		g := d.emitN(graph.OpLoRAGrad, nout, n.Attr, n.Module, dy[0], n.In[0], n.In[1], n.In[2])
		dx := []*graph.Value{nil, g[0], g[1]}
		if nout == 3 {
			dx[0] = g[2]
		}
		return dx, nil
	},
	graph.OpLoRALinear: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		if d.need[n.In[1]] {
			return nil, fmt.Errorf("the fused op's base weight %s is trainable; FuseLoRA must not fuse it", n.In[1].Ref())
		}
		nout := 2
		if d.need[n.In[0]] {
			nout = 3
		}
		in := []*graph.Value{dy[0], n.In[0], n.In[1], n.In[2], n.In[3]}
		if len(n.Out) == 2 {
			in = append(in, n.Out[1]) // t from the forward
		}
		g := d.emitN(graph.OpLoRALinearGrad, nout, n.Attr, n.Module, in...)
		dx := make([]*graph.Value, len(n.In))
		dx[2], dx[3] = g[0], g[1]
		if nout == 3 {
			dx[0] = g[2]
		}
		if len(n.In) == 5 && d.need[n.In[4]] {
			dx[4] = d.emit(graph.OpLinearGradBias, n.Attr, n.Module, dy[0])[0]
		}
		return dx, nil
	},
	graph.OpLoRAMerge: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return nil, fmt.Errorf("a merged adapter cannot be trained; differentiate the unmerged graph")
	},
	graph.OpAttentionDecode: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return nil, fmt.Errorf("decoding with a KV cache is inference-only; differentiate a training graph")
	},
	graph.OpLoRALinearRows: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return nil, fmt.Errorf("per-row adapters are for serving, inference-only; differentiate a training graph")
	},
	graph.OpLastToken: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return nil, fmt.Errorf("the last token of a prefill chunk is inference-only; differentiate a training graph")
	},
	graph.OpFill: func(d *diff, n *graph.Node, dy []*graph.Value) ([]*graph.Value, error) {
		return nil, nil
	},
}
