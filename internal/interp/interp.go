package interp

import (
	"fmt"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/runtime/kern"
)

// Env is what a run reads besides the graph.
type Env[F kern.Float] struct {
	// Params maps parameter names to their data (row-major, len = numel).
	Params map[string][]F
	// Inputs maps input names (tokens, pos, targets) to token ids or positions.
	Inputs map[string][]int32
	// State maps float inputs (the KV caches of a decoding graph) to their
	// data, which stateful ops update in place.
	State map[string][]F
	// Step selects the dropout masks, which are fixed per (module, step).
	Step uint64
	// NoDropout disables dropout in training graphs (inference graphs never
	// apply it).
	NoDropout bool
}

// Run executes the graph in node order and returns every float value it
// computed, by value. Missing or mis-sized parameters and out-of-range ids are
// errors, not panics.
func Run[F kern.Float](g *graph.Graph, env Env[F]) (map[*graph.Value][]F, error) {
	r := &run[F]{g: g, env: env, f: map[*graph.Value][]F{}, i: map[*graph.Value][]int32{}}
	for _, v := range g.Params {
		data, ok := env.Params[v.Param.Name]
		if !ok {
			return nil, fmt.Errorf("parameter %s is missing", v.Param.Name)
		}
		if len(data) != v.Shape.Numel() {
			return nil, fmt.Errorf("parameter %s has %d elements, want %d for shape %s", v.Param.Name, len(data), v.Shape.Numel(), v.Shape)
		}
		r.f[v] = data
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			data, ok := env.State[v.Name]
			if !ok || len(data) != v.Shape.Numel() {
				return nil, fmt.Errorf("state input %s is missing or not %s", v.Name, v.Shape)
			}
			r.f[v] = data
			continue
		}
		data, ok := env.Inputs[v.Name]
		if !ok {
			return nil, fmt.Errorf("input %s is missing", v.Name)
		}
		if len(data) != v.Shape.Numel() {
			return nil, fmt.Errorf("input %s has %d elements, want %d for shape %s", v.Name, len(data), v.Shape.Numel(), v.Shape)
		}
		r.i[v] = data
	}
	for _, n := range g.Nodes {
		for _, v := range n.In {
			if v.Shape == nil {
				return nil, fmt.Errorf("node %d %s: input %s has no shape; run InferShapes first", n.ID, n.Op, v.Ref())
			}
		}
		for _, o := range n.Out {
			if o.Shape == nil {
				return nil, fmt.Errorf("node %d %s: output has no shape; run InferShapes first", n.ID, n.Op)
			}
			r.f[o] = make([]F, o.Shape.Numel())
		}
		if err := r.exec(n); err != nil {
			return nil, fmt.Errorf("node %d %s: %w", n.ID, n.Op, err)
		}
	}
	return r.f, nil
}

type run[F kern.Float] struct {
	g   *graph.Graph
	env Env[F]
	f   map[*graph.Value][]F
	i   map[*graph.Value][]int32
}

func checkIDs(ids []int32, limit int, what string) error {
	for j, id := range ids {
		if id < 0 || int(id) >= limit {
			return fmt.Errorf("%s[%d] = %d is outside [0, %d)", what, j, id, limit)
		}
	}
	return nil
}

// mask returns the dropout multipliers of a LoRA branch, or nil.
func (r *run[F]) mask(n *graph.Node, size int) []F {
	if n.Attr.Dropout == 0 || r.g.Mode != graph.Train || r.env.NoDropout {
		return nil
	}
	m := make([]F, size)
	kern.DropoutMask(m, n.Attr.Dropout, n.Attr.Seed, r.env.Step)
	return m
}

func (r *run[F]) exec(n *graph.Node) error {
	in := make([][]F, len(n.In))
	for j, v := range n.In {
		in[j] = r.f[v]
	}
	out := make([][]F, len(n.Out))
	for j, v := range n.Out {
		out[j] = r.f[v]
	}
	a := n.Attr
	var x *graph.Value
	rows, width := 0, 0
	if len(n.In) > 0 {
		x = n.In[0]
		rows, width = x.Shape.Rows(), x.Shape.Last()
	}
	switch n.Op {
	case graph.OpEmbedding:
		ids, table := r.i[n.In[0]], n.In[1]
		if err := checkIDs(ids, table.Shape[0], n.In[0].Ref()); err != nil {
			return err
		}
		kern.EmbeddingRef(out[0], ids, in[1], len(ids), table.Shape[1])
	case graph.OpEmbeddingGrad:
		ids, table := r.i[n.In[1]], n.In[2]
		if err := checkIDs(ids, table.Shape[0], n.In[1].Ref()); err != nil {
			return err
		}
		kern.EmbeddingGradRef(out[0], in[0], ids, len(ids), table.Shape[0], table.Shape[1])
	case graph.OpLinear, graph.OpLoRALinear:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			return err
		}
		var bias []F
		if n.Op == graph.OpLinear && len(in) == 3 {
			bias = in[2]
		}
		if n.Op == graph.OpLoRALinear && len(in) == 5 {
			bias = in[4]
		}
		kern.LinearRef(out[0], in[0], in[1], bias, rows, k, m, a.Conv1D)
		if n.Op == graph.OpLoRALinear {
			branch := make([]F, len(out[0]))
			kern.LoRARef(branch, in[0], in[2], in[3], r.mask(n, len(in[0])), rows, k, m, n.In[2].Shape[0], F(a.Scale))
			kern.AddRef(out[0], out[0], branch, len(branch))
		}
	case graph.OpLinearGradInput:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			return err
		}
		kern.LinearGradInputRef(out[0], in[0], in[1], rows, k, m, a.Conv1D)
	case graph.OpLinearGradWeight:
		kern.LinearGradWeightRef(out[0], in[0], in[1], rows, n.In[1].Shape.Last(), width, a.Conv1D)
	case graph.OpLinearGradBias:
		kern.LinearGradBiasRef(out[0], in[0], rows, width)
	case graph.OpLayerNorm:
		kern.LayerNormRef(out[0], in[0], in[1], in[2], rows, width, a.Eps)
	case graph.OpLayerNormGrad:
		kern.LayerNormGradRef(out[0], in[0], in[1], in[2], rows, width, a.Eps)
	case graph.OpLayerNormGradParm:
		kern.LayerNormGradParamsRef(out[0], out[1], in[0], in[1], rows, width, a.Eps)
	case graph.OpRMSNorm:
		kern.RMSNormRef(out[0], in[0], in[1], rows, width, a.Eps)
	case graph.OpRMSNormGrad:
		kern.RMSNormGradRef(out[0], in[0], in[1], in[2], rows, width, a.Eps)
	case graph.OpRMSNormGradGain:
		kern.RMSNormGradGainRef(out[0], in[0], in[1], rows, width, a.Eps)
	case graph.OpRoPE, graph.OpRoPEGrad:
		pos := r.i[n.In[1]]
		if err := checkIDs(pos, 1<<30, n.In[1].Ref()); err != nil {
			return err
		}
		hs := width / a.Heads
		if n.Op == graph.OpRoPE {
			kern.RoPERef(out[0], in[0], pos, rows, a.Heads, hs, a.Theta)
		} else {
			kern.RoPEGradRef(out[0], in[0], pos, rows, a.Heads, hs, a.Theta)
		}
	case graph.OpAttention:
		s := x.Shape
		kern.AttentionRef(out[0], in[0], in[1], in[2], s[0], s[1], a.Heads, a.KVHeads, s[2]/a.Heads)
	case graph.OpAttentionDecode:
		s, c := x.Shape, n.In[3].Shape
		pos := r.i[n.In[5]]
		if err := checkIDs(pos, c[1], n.In[5].Ref()); err != nil {
			return err
		}
		kern.AttentionDecodeRef(out[0], in[0], in[1], in[2], in[3], in[4], pos, s[0], c[1], a.Heads, a.KVHeads, s[2]/a.Heads)
	case graph.OpAttentionGrad:
		s := x.Shape
		kern.AttentionGradRef(out[0], out[1], out[2], in[0], in[1], in[2], in[3], s[0], s[1], a.Heads, a.KVHeads, s[2]/a.Heads)
	case graph.OpGELU:
		kern.GELURef(out[0], in[0], len(in[0]))
	case graph.OpGELUGrad:
		kern.GELUGradRef(out[0], in[0], in[1], len(in[0]))
	case graph.OpSiLU:
		kern.SiLURef(out[0], in[0], len(in[0]))
	case graph.OpSiLUGrad:
		kern.SiLUGradRef(out[0], in[0], in[1], len(in[0]))
	case graph.OpAdd:
		kern.AddRef(out[0], in[0], in[1], len(in[0]))
	case graph.OpMul:
		kern.MulRef(out[0], in[0], in[1], len(in[0]))
	case graph.OpSoftmax:
		kern.SoftmaxRef(out[0], in[0], rows, width)
	case graph.OpSoftmaxGrad:
		kern.SoftmaxGradRef(out[0], in[0], in[1], rows, width)
	case graph.OpCrossEntropy, graph.OpCrossEntropyGrad:
		logits := n.In[len(n.In)-2]
		targets := r.i[n.In[len(n.In)-1]]
		v := logits.Shape.Last()
		if err := checkIDs(targets, v, n.In[len(n.In)-1].Ref()); err != nil {
			return err
		}
		if n.Op == graph.OpCrossEntropy {
			out[0][0] = kern.CrossEntropyRef(in[0], targets, len(targets), v)
		} else {
			kern.CrossEntropyGradRef(out[0], in[0][0], in[1], targets, len(targets), v)
		}
	case graph.OpSplit:
		off := 0
		for j, s := range a.Sizes {
			for row := range rows {
				copy(out[j][row*s:(row+1)*s], in[0][row*width+off:row*width+off+s])
			}
			off += s
		}
	case graph.OpConcat:
		total := n.Out[0].Shape.Last()
		off := 0
		for j, v := range n.In {
			s := v.Shape.Last()
			for row := range rows {
				copy(out[0][row*total+off:row*total+off+s], in[j][row*s:(row+1)*s])
			}
			off += s
		}
	case graph.OpFill:
		for j := range out[0] {
			out[0][j] = F(a.Value)
		}
	case graph.OpLoRA:
		rank, m := n.In[1].Shape[0], n.In[2].Shape[0]
		kern.LoRARef(out[0], in[0], in[1], in[2], r.mask(n, len(in[0])), rows, width, m, rank, F(a.Scale))
	case graph.OpLoRAGrad, graph.OpLoRALinearGrad:
		xv := n.In[1]
		av, bv := n.In[len(n.In)-2], n.In[len(n.In)-1]
		var dx []F
		if len(out) == 3 {
			dx = out[2]
		}
		xr, k := xv.Shape.Rows(), xv.Shape.Last()
		m, rank := bv.Shape[0], av.Shape[0]
		kern.LoRAGradRef(out[0], out[1], dx, in[0], r.f[xv], r.f[av], r.f[bv], r.mask(n, len(r.f[xv])), xr, k, m, rank, F(a.Scale))
		if n.Op == graph.OpLoRALinearGrad && dx != nil {
			base := make([]F, len(dx))
			kern.LinearGradInputRef(base, in[0], in[2], xr, k, m, a.Conv1D)
			kern.AddRef(dx, dx, base, len(dx))
		}
	case graph.OpLoRAMerge:
		k, m, err := graph.LinearDims(n)
		if err != nil {
			return err
		}
		kern.LoRAMergeRef(out[0], in[0], in[1], in[2], k, m, n.In[1].Shape[0], F(a.Scale), a.Conv1D)
	default:
		return fmt.Errorf("the interpreter has no kernel for %s", n.Op)
	}
	return nil
}

// Loss runs a training graph and returns its loss (the first output).
func Loss[F kern.Float](g *graph.Graph, env Env[F]) (F, error) {
	vals, err := Run(g, env)
	if err != nil {
		return 0, err
	}
	return vals[g.Outputs[0]][0], nil
}

// NumericGrad is the central finite difference (L(θ+h) − L(θ−h)) / 2h of the
// loss with respect to element i of the named parameter. It restores the
// element before returning.
func NumericGrad[F kern.Float](g *graph.Graph, env Env[F], param string, i int, h F) (F, error) {
	data := env.Params[param]
	if i < 0 || i >= len(data) {
		return 0, fmt.Errorf("parameter %s has no element %d", param, i)
	}
	old := data[i]
	defer func() { data[i] = old }()
	data[i] = old + h
	up, err := Loss(g, env)
	if err != nil {
		return 0, err
	}
	data[i] = old - h
	down, err := Loss(g, env)
	if err != nil {
		return 0, err
	}
	return (up - down) / (2 * h), nil
}
