// Package lower is the op → kernel contract, written once: for every graph
// op, the kernel calls that run one node and each call's argument list as
// data. Code generation renders the calls as Go source against the fast
// kernels of lorac.dev/lorac/runtime/kern; the reference interpreter
// (internal/interp) evaluates the same calls against the reference kernels.
// Neither re-derives a dimension on its own, so the two cannot drift apart.
//
// The package lives at the module root, next to graph and passes, and imports
// only graph: codegen (which pulls in jennifer) and the interpreter (which
// pulls in the kernels) both depend on it, and it depends on neither.
//
// Names: an op has one name. Graph op OpLayerNormGradParams prints as
// layernorm_grad_params; its fast kernel is kern.LayerNormGradParams and its
// reference kernel kern.LayerNormGradParamsRef. The kernel name is the op's
// name without underscores, in Go case; the reference adds the suffix Ref.
// Split, concat and lora_merge are the exceptions that are not one kernel:
// they lower to CopyCols (and lora_merge then to an in-place LoRAMerge).
//
// Arguments come in the kernels' order: outputs, inputs, weights, the
// dropout mask, then dimensions and attributes.
package lower

import (
	"fmt"

	"lorac.dev/lorac/graph"
)

// Kind says what an argument is.
type Kind uint8

const (
	// Slice is the data of Value: []float32 (the reference kernels: []F), or
	// []int32 for an i32 value. A nil Value is an absent optional operand,
	// passed as nil.
	Slice Kind = iota
	// Mask is the dropout mask of the node's LoRA branch, as long as Value;
	// nil when the node has no dropout or the graph does not apply it.
	Mask
	// Scalar is element 0 of Value (the loss gradient).
	Scalar
	// Int is a dimension.
	Int
	// Float is an attribute (eps, scale, theta, fill value).
	Float
	// Bool is a flag (conv1d).
	Bool
	// RowSlices is parameter Value (a LoRA A or B) in the adapter store of
	// each branch of the running rows step: [][]float32, one slice per
	// branch (serving many adapters at once). A row of the batch has one
	// branch per adapter of its weighted mix, none on the base alone;
	// BranchRows and BranchWeights say whose and how much.
	RowSlices
	// BranchRows is the row of the batch each branch adds to: []int32 with
	// elements in [0, Int).
	BranchRows
	// BranchWeights is each branch's weight in its row's mix: []float32
	// (the reference kernels: []F).
	BranchWeights
)

// Arg is one argument of a call, evaluated against a node.
type Arg struct {
	Name  string
	Kind  Kind
	Value *graph.Value // Slice, Mask, Scalar
	// Int is the dimension; for an i32 Slice, the bound its elements must
	// stay under (ids, targets, positions; 0 when only non-negative).
	Int   int
	Float float64
	Bool  bool
	// Ignorable marks an i32 Slice whose elements may also be -1: loss
	// targets the loss kernels skip (kern.IgnoreTarget), or the ids and
	// positions of padding rows in a prefill chunk (Embedding writes zeros,
	// RoPE rotates harmlessly, AttentionDecode skips them).
	Ignorable bool
}

// Call is one kernel call.
type Call struct {
	Kernel string
	Node   *graph.Node
	Args   []Arg
	// Result, when set, receives the kernel's return value in element 0.
	Result *graph.Value
}

// site is what a parameter is evaluated at: the node and, for a template
// repeated per operand (split, concat), the operand's index.
type site struct {
	n *graph.Node
	j int
}

// Param is one argument of a template: its name and kind, and how it is
// evaluated from the node.
type Param struct {
	Name string
	Kind Kind
	eval func(s site) (Arg, error)
}

// Template is one kernel call of a row.
type Template struct {
	Kernel string
	Params []Param
	// Result is the index of the output that receives the returned scalar,
	// or -1 for a kernel that returns nothing.
	Result int
	// Each, if set, repeats the call once per index in [0, Each(n)); the
	// parameters read the index (split: per output, concat: per input).
	Each func(n *graph.Node) int
}

// Row is how one op lowers: its calls, in order.
type Row struct {
	Op    graph.Op
	Calls []Template
}

// Lookup returns the op's row.
func Lookup(op graph.Op) (Row, bool) {
	r, ok := table[op]
	return r, ok
}

// Rows lists the table in op order.
func Rows() []Row {
	var rows []Row
	for _, op := range graph.Ops() {
		if r, ok := table[op]; ok {
			rows = append(rows, r)
		}
	}
	return rows
}

// Lower evaluates the node's row: the calls that run it.
func Lower(n *graph.Node) ([]Call, error) {
	r, ok := table[n.Op]
	if !ok {
		return nil, fmt.Errorf("lower: no kernel for op %s", n.Op)
	}
	var calls []Call
	for _, t := range r.Calls {
		times := 1
		if t.Each != nil {
			times = t.Each(n)
		}
		for j := range times {
			c := Call{Kernel: t.Kernel, Node: n, Args: make([]Arg, len(t.Params))}
			for i, p := range t.Params {
				a, err := p.eval(site{n, j})
				if err != nil {
					return nil, fmt.Errorf("lower: %s: %s argument %s: %w", n.Op, t.Kernel, p.Name, err)
				}
				a.Name, a.Kind = p.Name, p.Kind
				c.Args[i] = a
			}
			if t.Result >= 0 {
				c.Result = n.Out[t.Result]
			}
			calls = append(calls, c)
		}
	}
	return calls, nil
}

// expr is a dimension of a node.
type expr func(s site) (int, error)

func pure(f func(s site) int) expr { return func(s site) (int, error) { return f(s), nil } }

func value(name string, kind Kind, f func(s site) *graph.Value) Param {
	return Param{name, kind, func(s site) (Arg, error) { return Arg{Value: f(s)}, nil }}
}

// out is output j; optOut is output j or nil when the node has fewer.
func out(name string, j int) Param {
	return value(name, Slice, func(s site) *graph.Value { return s.n.Out[j] })
}

func optOut(name string, j int) Param {
	return value(name, Slice, func(s site) *graph.Value {
		if j < len(s.n.Out) {
			return s.n.Out[j]
		}
		return nil
	})
}

func in(name string, j int) Param {
	return value(name, Slice, func(s site) *graph.Value { return s.n.In[j] })
}

func optIn(name string, j int) Param {
	return value(name, Slice, func(s site) *graph.Value {
		if j < len(s.n.In) {
			return s.n.In[j]
		}
		return nil
	})
}

// ids is i32 input j, whose elements must stay under bound.
func ids(name string, j int, bound expr) Param {
	return Param{name, Slice, func(s site) (Arg, error) {
		b, err := bound(s)
		return Arg{Value: s.n.In[j], Int: b}, err
	}}
}

// padIDs is i32 input j of ids under bound, or -1: a padding row (the
// positions of a prefill chunk's padding), which the kernel skips.
func padIDs(name string, j int, bound expr) Param {
	return Param{name, Slice, func(s site) (Arg, error) {
		b, err := bound(s)
		return Arg{Value: s.n.In[j], Int: b, Ignorable: true}, err
	}}
}

// targets is i32 input j of loss targets: under bound, or -1 (ignored).
func targets(name string, j int, bound expr) Param {
	return Param{name, Slice, func(s site) (Arg, error) {
		b, err := bound(s)
		return Arg{Value: s.n.In[j], Int: b, Ignorable: true}, err
	}}
}

// mask is the dropout mask of a LoRA branch whose input is input j.
func mask(j int) Param {
	return value("mask", Mask, func(s site) *graph.Value { return s.n.In[j] })
}

// rowParam is parameter input j in the adapter store of each branch of
// the rows of input 0.
func rowParam(name string, j int) Param {
	return Param{name, RowSlices, func(s site) (Arg, error) {
		if s.n.In[j].Param == nil {
			return Arg{}, fmt.Errorf("input %d is not a parameter", j)
		}
		return Arg{Value: s.n.In[j], Int: s.n.In[0].Shape.Rows()}, nil
	}}
}

// branches are the row and the weight of each branch of the rows of
// input 0.
func branchRows(name string) Param {
	return Param{name, BranchRows, func(s site) (Arg, error) { return Arg{Int: s.n.In[0].Shape.Rows()}, nil }}
}

func branchWeights(name string) Param {
	return Param{name, BranchWeights, func(s site) (Arg, error) { return Arg{Int: s.n.In[0].Shape.Rows()}, nil }}
}

func scalar(name string, j int) Param {
	return value(name, Scalar, func(s site) *graph.Value { return s.n.In[j] })
}

func dim(name string, e expr) Param {
	return Param{name, Int, func(s site) (Arg, error) {
		v, err := e(s)
		return Arg{Int: v}, err
	}}
}

func float(name string, f func(a graph.Attrs) float64) Param {
	return Param{name, Float, func(s site) (Arg, error) { return Arg{Float: f(s.n.Attr)}, nil }}
}

var (
	eps    = float("eps", func(a graph.Attrs) float64 { return a.Eps })
	scale  = float("scale", func(a graph.Attrs) float64 { return a.Scale })
	theta  = float("theta", func(a graph.Attrs) float64 { return a.Theta })
	offset = float("offset", func(a graph.Attrs) float64 { return a.Offset })
	// attnScale and softcap are attention's score scale (0: 1/√HS) and
	// soft-cap (0: none).
	attnScale = float("scale", func(a graph.Attrs) float64 { return a.AttnScale })
	softcap   = float("softcap", func(a graph.Attrs) float64 { return a.Softcap })
	conv1d    = Param{"conv1d", Bool, func(s site) (Arg, error) { return Arg{Bool: s.n.Attr.Conv1D}, nil }}
)

// RoPEScalingCode is the scaling argument of the RoPE kernels for each
// graph.RoPEScaling kind: kern.RoPEDefault, kern.RoPELinear, kern.RoPELlama3.
var RoPEScalingCode = map[string]int{"": 0, "linear": 1, "llama3": 2}

// ropeScaling are the RoPE kernels' scaling arguments: the kind's code,
// then factor, low and high frequency factors and the original context
// (zeros where the kind has none).
var ropeScaling = []Param{
	{"scaling", Int, func(s site) (Arg, error) {
		c, ok := RoPEScalingCode[s.n.Attr.Rope.Kind]
		if !ok {
			return Arg{}, fmt.Errorf("unknown rope scaling %q", s.n.Attr.Rope.Kind)
		}
		return Arg{Int: c}, nil
	}},
	float("factor", func(a graph.Attrs) float64 { return a.Rope.Factor }),
	float("lowFreq", func(a graph.Attrs) float64 { return a.Rope.LowFreq }),
	float("highFreq", func(a graph.Attrs) float64 { return a.Rope.HighFreq }),
	dim("origCtx", pure(func(s site) int { return s.n.Attr.Rope.OrigContext })),
}

// normWidth is what a norm normalises over: the last extent of input j, or
// one head of it (Attr.Heads > 0); normRows is how many such rows there are.
func normWidth(j int) expr {
	return pure(func(s site) int {
		if h := s.n.Attr.Heads; h > 0 {
			return s.n.In[j].Shape.Last() / h
		}
		return s.n.In[j].Shape.Last()
	})
}

func normRows(j int) expr {
	return pure(func(s site) int {
		if h := s.n.Attr.Heads; h > 0 {
			return s.n.In[j].Shape.Rows() * h
		}
		return s.n.In[j].Shape.Rows()
	})
}

// Dimensions of input j.
func rows(j int) expr  { return pure(func(s site) int { return s.n.In[j].Shape.Rows() }) }
func last(j int) expr  { return pure(func(s site) int { return s.n.In[j].Shape.Last() }) }
func numel(j int) expr { return pure(func(s site) int { return s.n.In[j].Shape.Numel() }) }
func axis(j, d int) expr {
	return pure(func(s site) int { return s.n.In[j].Shape[d] })
}

var (
	heads   = pure(func(s site) int { return s.n.Attr.Heads })
	kvHeads = pure(func(s site) int { return s.n.Attr.KVHeads })
	// window is attention's sliding window (0: none).
	window = dim("W", pure(func(s site) int { return s.n.Attr.Window }))
	// headSize of input j, whose innermost extent is heads·head size.
	headSize = func(j int) expr { return pure(func(s site) int { return s.n.In[j].Shape.Last() / s.n.Attr.Heads }) }
	// linIn and linOut are the in and out features of the node's weight.
	linIn  = func(s site) (int, error) { k, _, err := graph.LinearDims(s.n); return k, err }
	linOut = func(s site) (int, error) { _, m, err := graph.LinearDims(s.n); return m, err }
	// zero is a zero offset, or the bound of positions, which have no
	// upper bound the node knows.
	zero = pure(func(site) int { return 0 })
)

func one(kernel string, params ...Param) []Template {
	return []Template{{Kernel: kernel, Params: params, Result: -1}}
}

// elementwise is out = f(x) or out = f(dy, x) over N elements.
func elementwise(kernel string, inputs int) []Template {
	ps := []Param{out("out", 0)}
	for j := range inputs {
		ps = append(ps, in(fmt.Sprintf("in%d", j), j))
	}
	return one(kernel, append(ps, dim("N", numel(0)))...)
}

// table is the contract. Each row's kernel signatures are checked against
// runtime/kern by this package's tests.
var table = map[graph.Op]Row{}

func init() {
	for _, r := range []Row{
		{graph.OpEmbedding, one("Embedding", out("out", 0), padIDs("ids", 0, axis(1, 0)), in("table", 1),
			dim("N", numel(0)), dim("C", axis(1, 1)))},
		{graph.OpEmbeddingGrad, one("EmbeddingGrad", out("dtable", 0), in("dout", 0), ids("ids", 1, axis(2, 0)),
			dim("N", numel(1)), dim("V", axis(2, 0)), dim("C", axis(2, 1)))},
		{graph.OpLinear, one("Linear", out("out", 0), in("inp", 0), in("w", 1), optIn("bias", 2),
			dim("N", rows(0)), dim("K", linIn), dim("M", linOut), conv1d)},
		{graph.OpLinearGradInput, one("LinearGradInput", out("dinp", 0), in("dout", 0), in("w", 1),
			dim("N", rows(0)), dim("K", linIn), dim("M", linOut), conv1d)},
		{graph.OpLinearGradWeight, one("LinearGradWeight", out("dw", 0), in("dout", 0), in("inp", 1),
			dim("N", rows(0)), dim("K", last(1)), dim("M", last(0)), conv1d)},
		{graph.OpLinearGradBias, one("LinearGradBias", out("dbias", 0), in("dout", 0), dim("N", rows(0)), dim("M", last(0)))},
		{graph.OpLoRALinear, one("LoRALinear", out("out", 0), optOut("t", 1), in("inp", 0), in("w", 1), optIn("bias", 4), in("a", 2), in("b", 3), mask(0),
			dim("N", rows(0)), dim("K", linIn), dim("M", linOut), dim("R", axis(2, 0)), scale, conv1d)},
		// Serving: the base product over every row, then each branch of
		// each row's adapter mix with its own adapter's A and B.
		{graph.OpLoRALinearRows, one("LoRALinearRows", out("out", 0), in("inp", 0), in("w", 1), optIn("bias", 4),
			rowParam("a", 2), rowParam("b", 3), branchRows("row"), branchWeights("weight"),
			dim("N", rows(0)), dim("K", linIn), dim("M", linOut), dim("R", axis(2, 0)), scale, conv1d)},
		{graph.OpLoRALinearGrad, one("LoRALinearGrad", out("da", 0), out("db", 1), optOut("dinp", 2),
			in("dout", 0), in("inp", 1), in("w", 2), in("a", 3), in("b", 4), optIn("t", 5), mask(1),
			dim("N", rows(1)), dim("K", last(1)), dim("M", axis(4, 0)), dim("R", axis(3, 0)), scale, conv1d)},
		{graph.OpLoRA, one("LoRA", out("out", 0), in("inp", 0), in("a", 1), in("b", 2), mask(0),
			dim("N", rows(0)), dim("K", last(0)), dim("M", axis(2, 0)), dim("R", axis(1, 0)), scale)},
		{graph.OpLoRAGrad, one("LoRAGrad", out("da", 0), out("db", 1), optOut("dinp", 2),
			in("dout", 0), in("inp", 1), in("a", 2), in("b", 3), mask(1),
			dim("N", rows(1)), dim("K", last(1)), dim("M", axis(3, 0)), dim("R", axis(2, 0)), scale)},
		// The merged weight starts as a copy of w; LoRAMerge then adds
		// scale·B·A in place, as the runtime's Merge does.
		{graph.OpLoRAMerge, []Template{
			{Kernel: "CopyCols", Result: -1, Params: []Param{out("dst", 0), dim("dstStride", numel(0)), dim("dstOff", zero),
				in("src", 0), dim("srcStride", numel(0)), dim("srcOff", zero), dim("rows", pure(func(site) int { return 1 })), dim("width", numel(0))}},
			{Kernel: "LoRAMerge", Result: -1, Params: []Param{out("w", 0), in("a", 1), in("b", 2),
				dim("K", linIn), dim("M", linOut), dim("R", axis(1, 0)), scale, conv1d}},
		}},
		{graph.OpLayerNorm, one("LayerNorm", out("out", 0), in("inp", 0), in("gain", 1), in("bias", 2), dim("N", rows(0)), dim("C", last(0)), eps)},
		{graph.OpLayerNormGrad, one("LayerNormGrad", out("dinp", 0), in("dout", 0), in("inp", 1), in("gain", 2), dim("N", rows(0)), dim("C", last(0)), eps)},
		{graph.OpLayerNormGradParams, one("LayerNormGradParams", out("dgain", 0), out("dbias", 1), in("dout", 0), in("inp", 1), dim("N", rows(0)), dim("C", last(0)), eps)},
		// An rmsnorm per head (Attr.Heads > 0, Qwen3's q_norm and k_norm)
		// is the same kernel on rows·heads rows of one head each.
		{graph.OpRMSNorm, one("RMSNorm", out("out", 0), in("inp", 0), in("gain", 1), dim("N", normRows(0)), dim("C", normWidth(0)), eps, offset)},
		{graph.OpRMSNormGrad, one("RMSNormGrad", out("dinp", 0), in("dout", 0), in("inp", 1), in("gain", 2), dim("N", normRows(0)), dim("C", normWidth(0)), eps, offset)},
		{graph.OpRMSNormGradGain, one("RMSNormGradGain", out("dgain", 0), in("dout", 0), in("inp", 1), dim("N", normRows(0)), dim("C", normWidth(0)), eps)},
		{graph.OpRoPE, one("RoPE", append([]Param{out("out", 0), in("inp", 0), padIDs("pos", 1, zero), dim("N", rows(0)), dim("NH", heads), dim("HS", headSize(0)), theta}, ropeScaling...)...)},
		{graph.OpRoPEGrad, one("RoPEGrad", append([]Param{out("dinp", 0), in("dout", 0), ids("pos", 1, zero), dim("N", rows(0)), dim("NH", heads), dim("HS", headSize(0)), theta}, ropeScaling...)...)},
		{graph.OpAttention, one("Attention", out("out", 0), in("q", 0), in("k", 1), in("v", 2),
			dim("B", axis(0, 0)), dim("T", axis(0, 1)), dim("NH", heads), dim("KVH", kvHeads), dim("HS", headSize(0)), window, attnScale, softcap)},
		{graph.OpAttentionDecode, one("AttentionDecode", out("out", 0), in("q", 0), in("k", 1), in("v", 2), in("kcache", 3), in("vcache", 4), padIDs("pos", 5, axis(3, 1)),
			dim("B", axis(0, 0)), dim("T", axis(0, 1)), dim("Ctx", axis(3, 1)), dim("NH", heads), dim("KVH", kvHeads), dim("HS", headSize(0)), window, attnScale, softcap)},
		{graph.OpAttentionGrad, one("AttentionGrad", out("dq", 0), out("dk", 1), out("dv", 2), in("dout", 0), in("q", 1), in("k", 2), in("v", 3),
			dim("B", axis(1, 0)), dim("T", axis(1, 1)), dim("NH", heads), dim("KVH", kvHeads), dim("HS", headSize(1)), window, attnScale, softcap)},
		{graph.OpGELU, elementwise("GELU", 1)},
		{graph.OpGELUGrad, elementwise("GELUGrad", 2)},
		{graph.OpSiLU, elementwise("SiLU", 1)},
		{graph.OpSiLUGrad, elementwise("SiLUGrad", 2)},
		{graph.OpAdd, elementwise("Add", 2)},
		{graph.OpMul, elementwise("Mul", 2)},
		{graph.OpScale, one("Scale", out("out", 0), in("inp", 0), dim("N", numel(0)), scale)},
		{graph.OpSoftcap, one("Softcap", out("out", 0), in("inp", 0), dim("N", numel(0)), softcap)},
		{graph.OpSoftcapGrad, one("SoftcapGrad", out("dinp", 0), in("dout", 0), in("inp", 1), dim("N", numel(0)), softcap)},
		{graph.OpSoftmax, one("Softmax", out("out", 0), in("inp", 0), dim("N", rows(0)), dim("C", last(0)))},
		{graph.OpSoftmaxGrad, one("SoftmaxGrad", out("dinp", 0), in("dout", 0), in("out", 1), dim("N", rows(0)), dim("C", last(0)))},
		{graph.OpCrossEntropy, []Template{{Kernel: "CrossEntropy", Result: 0, Params: []Param{in("logits", 0), targets("targets", 1, last(0)),
			dim("N", rows(0)), dim("V", last(0))}}}},
		{graph.OpCrossEntropyGrad, one("CrossEntropyGrad", out("dlogits", 0), scalar("dloss", 0), in("logits", 1), targets("targets", 2, last(1)),
			dim("N", rows(1)), dim("V", last(1)))},
		{graph.OpFill, one("Fill", out("dst", 0), float("v", func(a graph.Attrs) float64 { return a.Value }))},
		// The last token of each sequence is a row T·C floats from the
		// next, the last C of them.
		{graph.OpLastToken, one("CopyCols", out("dst", 0), dim("dstStride", last(0)), dim("dstOff", zero),
			in("src", 0), dim("srcStride", pure(func(s site) int { return s.n.In[0].Shape[1] * s.n.In[0].Shape[2] })),
			dim("srcOff", pure(func(s site) int { return (s.n.In[0].Shape[1] - 1) * s.n.In[0].Shape[2] })),
			dim("rows", axis(0, 0)), dim("width", last(0)))},
		// Split copies each output's columns out of the input; concat each
		// input's columns into the output.
		{graph.OpSplit, []Template{{Kernel: "CopyCols", Result: -1, Each: func(n *graph.Node) int { return len(n.Out) }, Params: []Param{
			value("dst", Slice, func(s site) *graph.Value { return s.n.Out[s.j] }),
			dim("dstStride", pure(func(s site) int { return s.n.Out[s.j].Shape.Last() })), dim("dstOff", zero),
			in("src", 0), dim("srcStride", last(0)),
			dim("srcOff", pure(func(s site) int {
				off := 0
				for _, sz := range s.n.Attr.Sizes[:s.j] {
					off += sz
				}
				return off
			})),
			dim("rows", rows(0)), dim("width", pure(func(s site) int { return s.n.Out[s.j].Shape.Last() }))}}}},
		{graph.OpConcat, []Template{{Kernel: "CopyCols", Result: -1, Each: func(n *graph.Node) int { return len(n.In) }, Params: []Param{
			out("dst", 0), dim("dstStride", pure(func(s site) int { return s.n.Out[0].Shape.Last() })),
			dim("dstOff", pure(func(s site) int {
				off := 0
				for _, v := range s.n.In[:s.j] {
					off += v.Shape.Last()
				}
				return off
			})),
			value("src", Slice, func(s site) *graph.Value { return s.n.In[s.j] }),
			dim("srcStride", pure(func(s site) int { return s.n.In[s.j].Shape.Last() })), dim("srcOff", zero),
			dim("rows", rows(0)), dim("width", pure(func(s site) int { return s.n.In[s.j].Shape.Last() }))}}}},
	} {
		table[r.Op] = r
	}
}
