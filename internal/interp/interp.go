package interp

import (
	"fmt"
	"math"
	"reflect"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/lower"
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
	// NoDropout disables dropout in graphs that apply it (graph.Dropout:
	// training graphs with LoRA branches).
	NoDropout bool
	// RowParams are the adapters of a graph with per-row adapters
	// (graph.RowAdapters): row r's LoRA parameters by name, nil for a row
	// on the base alone. Rows past its end have none. Each is a branch of
	// weight 1; Branches, when set, replaces them.
	RowParams []map[string][]F
	// Branches are the weighted adapter mixes of such a graph's rows: each
	// adds Weight times its adapter's branch to row Row.
	Branches []Branch[F]
}

// Branch is one adapter of a row's weighted mix.
type Branch[F kern.Float] struct {
	Row    int
	Weight F
	Params map[string][]F
}

// AllBranches are env's branches: Branches, or RowParams as branches of
// weight 1.
func (e *Env[F]) AllBranches() []Branch[F] {
	if e.Branches != nil {
		return e.Branches
	}
	var out []Branch[F]
	for r, p := range e.RowParams {
		if p != nil {
			out = append(out, Branch[F]{Row: r, Weight: 1, Params: p})
		}
	}
	return out
}

// BranchRows returns each branch's row, which must be under rows.
func BranchRows[F kern.Float](brs []Branch[F], rows int) ([]int32, error) {
	out := make([]int32, len(brs))
	for j, br := range brs {
		if br.Row < 0 || br.Row >= rows {
			return nil, fmt.Errorf("branch %d is on row %d, outside the %d rows", j, br.Row, rows)
		}
		out[j] = int32(br.Row)
	}
	return out, nil
}

// BranchWeights returns each branch's weight.
func BranchWeights[F kern.Float](brs []Branch[F]) []F {
	out := make([]F, len(brs))
	for j, br := range brs {
		out[j] = br.Weight
	}
	return out
}

// Run executes the graph in node order and returns every float value it
// computed, by value. Missing or mis-sized parameters and out-of-range ids are
// errors, not panics.
func Run[F kern.Float](g *graph.Graph, env Env[F]) (map[*graph.Value][]F, error) {
	r := &run[F]{g: g, env: env, f: map[*graph.Value][]F{}, i: map[*graph.Value][]int32{}, refs: refs[F]()}
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
	// refs are the reference kernels by lowering-table name.
	refs map[string]reflect.Value
}

// checkIDs reports ids outside [0, limit); with ignorable, -1 (an ignored
// loss target, kern.IgnoreTarget) is allowed too.
func checkIDs(ids []int32, limit int, ignorable bool, what string) error {
	for j, id := range ids {
		if ignorable && id == kern.IgnoreTarget {
			continue
		}
		if id < 0 || int(id) >= limit {
			return fmt.Errorf("%s[%d] = %d is outside [0, %d)", what, j, id, limit)
		}
	}
	return nil
}

// mask returns the dropout multipliers of a LoRA branch, or nil.
func (r *run[F]) mask(n *graph.Node, size int) []F {
	if n.Attr.Dropout == 0 || !r.g.Dropout || r.env.NoDropout {
		return nil
	}
	m := make([]F, size)
	kern.DropoutMask(m, n.Attr.Dropout, n.Attr.Seed, r.env.Step)
	return m
}

// exec runs a node's calls from the lowering table on the reference
// kernels, checking ids against the bounds the table gives them first.
func (r *run[F]) exec(n *graph.Node) error {
	calls, err := lower.Lower(n)
	if err != nil {
		return err
	}
	for _, c := range calls {
		fn, ok := r.refs[c.Kernel]
		if !ok {
			return fmt.Errorf("the interpreter has no reference kernel for %s", c.Kernel)
		}
		ft := fn.Type()
		if ft.NumIn() != len(c.Args) {
			return fmt.Errorf("reference kernel for %s takes %d arguments, the lowering table gives %d", c.Kernel, ft.NumIn(), len(c.Args))
		}
		args := make([]reflect.Value, len(c.Args))
		for i, a := range c.Args {
			pt := ft.In(i)
			switch a.Kind {
			case lower.Slice:
				switch {
				case a.Value == nil:
					args[i] = reflect.Zero(pt)
				case a.Value.DType == graph.I32:
					ids := r.i[a.Value]
					limit := a.Int
					if limit == 0 {
						limit = math.MaxInt32
					}
					if err := checkIDs(ids, limit, a.Ignorable, a.Value.Ref()); err != nil {
						return err
					}
					args[i] = reflect.ValueOf(ids)
				default:
					args[i] = reflect.ValueOf(r.f[a.Value])
				}
			case lower.Mask:
				if m := r.mask(n, a.Value.Shape.Numel()); m != nil {
					args[i] = reflect.ValueOf(m)
				} else {
					args[i] = reflect.Zero(pt)
				}
			case lower.Scalar:
				args[i] = reflect.ValueOf(r.f[a.Value][0]).Convert(pt)
			case lower.Int:
				args[i] = reflect.ValueOf(a.Int)
			case lower.Float:
				args[i] = reflect.ValueOf(a.Float).Convert(pt)
			case lower.Bool:
				args[i] = reflect.ValueOf(a.Bool)
			case lower.RowSlices:
				brs := r.env.AllBranches()
				rs := make([][]F, len(brs))
				for j, br := range brs {
					data, ok := br.Params[a.Value.Param.Name]
					if !ok || len(data) != a.Value.Shape.Numel() {
						return fmt.Errorf("row %d's adapter has no %s of %d elements", br.Row, a.Value.Param.Name, a.Value.Shape.Numel())
					}
					rs[j] = data
				}
				args[i] = reflect.ValueOf(rs)
			case lower.BranchRows:
				rows, err := BranchRows(r.env.AllBranches(), a.Int)
				if err != nil {
					return err
				}
				args[i] = reflect.ValueOf(rows)
			case lower.BranchWeights:
				args[i] = reflect.ValueOf(BranchWeights(r.env.AllBranches()))
			}
			if args[i].Type() != pt {
				return fmt.Errorf("%s argument %s is %s, the reference kernel takes %s", c.Kernel, a.Name, args[i].Type(), pt)
			}
		}
		ret := fn.Call(args)
		if c.Result != nil {
			r.f[c.Result][0] = ret[0].Interface().(F)
		}
	}
	return nil
}

// refs maps the kernel names of the lowering table to their reference
// kernels: kern's NameRef, or, for the fused and copying kernels that have
// none in kern, a composition of reference kernels.
func refs[F kern.Float]() map[string]reflect.Value {
	m := map[string]any{
		"Embedding":           kern.EmbeddingRef[F],
		"EmbeddingGrad":       kern.EmbeddingGradRef[F],
		"Linear":              kern.LinearRef[F],
		"LinearGradInput":     kern.LinearGradInputRef[F],
		"LinearGradWeight":    kern.LinearGradWeightRef[F],
		"LinearGradBias":      kern.LinearGradBiasRef[F],
		"LoRA":                kern.LoRARef[F],
		"LoRAGrad":            kern.LoRAGradRef[F],
		"LoRALinear":          loraLinear[F],
		"LoRALinearRows":      kern.LoRALinearRowsRef[F],
		"LoRALinearGrad":      loraLinearGrad[F],
		"LoRAMerge":           loraMerge[F],
		"LayerNorm":           kern.LayerNormRef[F],
		"LayerNormGrad":       kern.LayerNormGradRef[F],
		"LayerNormGradParams": kern.LayerNormGradParamsRef[F],
		"RMSNorm":             kern.RMSNormRef[F],
		"RMSNormGrad":         kern.RMSNormGradRef[F],
		"RMSNormGradGain":     kern.RMSNormGradGainRef[F],
		"RoPE":                kern.RoPERef[F],
		"RoPEGrad":            kern.RoPEGradRef[F],
		"Attention":           kern.AttentionRef[F],
		"AttentionDecode":     kern.AttentionDecodeRef[F],
		"AttentionGrad":       kern.AttentionGradRef[F],
		"GELU":                kern.GELURef[F],
		"GELUGrad":            kern.GELUGradRef[F],
		"SiLU":                kern.SiLURef[F],
		"SiLUGrad":            kern.SiLUGradRef[F],
		"Add":                 kern.AddRef[F],
		"Mul":                 kern.MulRef[F],
		"Scale":               kern.ScaleRef[F],
		"Softcap":             kern.SoftcapRef[F],
		"SoftcapGrad":         kern.SoftcapGradRef[F],
		"Softmax":             kern.SoftmaxRef[F],
		"SoftmaxGrad":         kern.SoftmaxGradRef[F],
		"CrossEntropy":        kern.CrossEntropyRef[F],
		"CrossEntropyGrad":    kern.CrossEntropyGradRef[F],
		"Fill":                fill[F],
		"CopyCols":            copyCols[F],
	}
	v := make(map[string]reflect.Value, len(m))
	for name, fn := range m {
		v[name] = reflect.ValueOf(fn)
	}
	return v
}

// loraLinear is Linear plus the LoRA branch, as the fused kernel computes it.
func loraLinear[F kern.Float](out, t, inp, w, bias, a, b, mask []F, N, K, M, R int, scale F, conv1d bool) {
	if t != nil {
		// t = scale·(inp⊙mask)·Aᵀ: the branch before B, as a linear with A
		// as the weight.
		x := inp
		if mask != nil {
			x = make([]F, len(inp))
			kern.MulRef(x, inp, mask, len(x))
		}
		kern.LinearRef(t, x, a, nil, N, K, R, false)
		for i := range t {
			t[i] *= scale
		}
	}
	kern.LinearRef(out, inp, w, bias, N, K, M, conv1d)
	branch := make([]F, len(out))
	kern.LoRARef(branch, inp, a, b, mask, N, K, M, R, scale)
	kern.AddRef(out, out, branch, len(branch))
}

// loraLinearGrad is the LoRA branch's backward plus, when dinp is wanted,
// the frozen linear's input gradient. The reference recomputes everything
// from the inputs, so the forward's t goes unused.
func loraLinearGrad[F kern.Float](da, db, dinp, dout, inp, w, a, b, _, mask []F, N, K, M, R int, scale F, conv1d bool) {
	kern.LoRAGradRef(da, db, dinp, dout, inp, a, b, mask, N, K, M, R, scale)
	if dinp != nil {
		base := make([]F, len(dinp))
		kern.LinearGradInputRef(base, dout, w, N, K, M, conv1d)
		kern.AddRef(dinp, dinp, base, len(dinp))
	}
}

// loraMerge adds scale·B·A to w in place, as the fast LoRAMerge does.
func loraMerge[F kern.Float](w, a, b []F, K, M, R int, scale F, conv1d bool) {
	kern.LoRAMergeRef(w, w, a, b, K, M, R, scale, conv1d)
}

func fill[F kern.Float](dst []F, v F) {
	for i := range dst {
		dst[i] = v
	}
}

// copyCols copies a rows × width block between row-major matrices of the
// given strides (row lengths), at the given column offsets.
func copyCols[F kern.Float](dst []F, dstStride, dstOff int, src []F, srcStride, srcOff int, rows, width int) {
	for row := range rows {
		copy(dst[row*dstStride+dstOff:row*dstStride+dstOff+width], src[row*srcStride+srcOff:row*srcStride+srcOff+width])
	}
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
