package graph

import (
	"fmt"
	"strconv"
)

// Op identifies an operation. Its behaviour is described by its OpInfo in the
// op table; passes and backends look ops up there rather than switching on
// names scattered through the code.
type Op uint8

const (
	OpInvalid Op = iota

	// Forward ops.
	OpEmbedding    // (ids [B,T] i32, table [V,C]) → [B,T,C]
	OpLinear       // (x [..,K], w [N,K] or Conv1D [K,N], bias? [N]) → [..,N]
	OpLayerNorm    // (x [..,C], gain [C], bias [C]) → [..,C]
	OpRMSNorm      // (x [..,C], gain [C]) → [..,C]
	OpRoPE         // (x [B,T,NH*HS], pos [B,T] i32) → [B,T,NH*HS]
	OpAttention    // (q [B,T,NH*HS], k [B,T,KVH*HS], v [B,T,KVH*HS]) → [B,T,NH*HS], causal
	OpGELU         // tanh approximation (Hugging Face gelu_new)
	OpSiLU         //
	OpAdd          // elementwise, equal shapes
	OpMul          // elementwise, equal shapes
	OpScale        // x·Attr.Scale, elementwise (Gemma's √dim embedding scale)
	OpSoftcap      // Attr.Softcap·tanh(x/Attr.Softcap), elementwise (Gemma 2's logits)
	OpSoftmax      // over the innermost dimension
	OpCrossEntropy // (logits [B,T,V], targets [B,T] i32) → [] mean loss
	OpSplit        // (x [..,ΣSizes]) → one output per entry of Sizes
	OpConcat       // (x₀ [..,S₀], x₁ [..,S₁], …) → [..,ΣS]
	OpFill         // () → Shape filled with Value
	OpLoRA         // (x [..,K], A [R,K], B [N,R]) → Scale·(dropout(x)·Aᵀ)·Bᵀ
	OpLoRALinear   // (x, w, A, B, bias?) → linear(x, w, bias) + lora(x, A, B), t? = s·dropout(x)·Aᵀ kept for the backward
	OpLoRAMerge    // (w, A, B) → w + Scale·B·A (layout of w)
	// OpAttentionDecode is attention for T new tokens per sequence with a
	// KV cache (T = 1 decoding, a prompt chunk prefilling): (q
	// [B,T,NH*HS], k, v [B,T,KVH*HS], kcache, vcache [B,Ctx,KVH*HS], pos
	// [B,T] i32) → [B,T,NH*HS]. It writes every token's k and v into the
	// caches at its position, then token t attends over positions
	// 0..pos[b,t]; a token at position −1 is padding (writes nothing,
	// outputs zeros). Inference only.
	OpAttentionDecode
	// OpLoRALinearRows is lora_linear for serving many adapters at once:
	// (x [B,1,K], w, A, B, bias?) → linear(x, w, bias) + each row's own
	// branch, Scale·(x_b·A_bᵀ)·B_bᵀ, with A_b and B_b the parameters A and
	// B in row b's adapter store (no branch for a row without one). A and
	// B give the shapes; their values come from the stores at run time.
	// Inference only, no dropout.
	OpLoRALinearRows
	// OpLastToken is the last position of each sequence: (x [B,T,C]) →
	// [B,1,C]. The prefill graph applies the head to its chunk's last
	// token only.
	OpLastToken

	// Backward ops: each takes the output gradient first.
	OpEmbeddingGrad       // (dy [B,T,C], ids, table) → dtable
	OpLinearGradInput     // (dy [..,N], w) → dx [..,K]
	OpLinearGradWeight    // (dy [..,N], x [..,K]) → dw (layout of w)
	OpLinearGradBias      // (dy [..,N]) → dbias [N]
	OpLayerNormGrad       // (dy, x, gain) → dx
	OpLayerNormGradParams // (dy, x) → dgain, dbias
	OpRMSNormGrad         // (dy, x, gain) → dx
	OpRMSNormGradGain     // (dy, x) → dgain
	OpRoPEGrad            // (dy, pos) → dx
	OpAttentionGrad       // (dy, q, k, v) → dq, dk, dv
	OpGELUGrad            // (dy, x) → dx
	OpSiLUGrad            // (dy, x) → dx
	OpSoftcapGrad         // (dy, x) → dx
	OpSoftmaxGrad         // (dy, y) → dx
	OpCrossEntropyGrad    // (dloss [], logits, targets) → dlogits
	OpLoRAGrad            // (dy, x, A, B) → dA, dB, dx?
	OpLoRALinearGrad      // (dy, x, w, A, B, t?) → dA, dB, dx?  (w frozen: no dw; t from the forward, else recomputed)

	numOps
)

// OpInfo describes an op.
type OpInfo struct {
	Name string
	// MinIn..MaxIn inputs and MinOut..MaxOut outputs (MaxOut -1: any number).
	MinIn, MaxIn   int
	MinOut, MaxOut int
	// Backward is set on ops that only appear in a differentiated graph.
	Backward bool
	// Stateful ops also write to state inputs (KV caches); such graphs
	// are inference-only and are not differentiated.
	Stateful bool
	// Infer computes the output shapes and dtypes from the inputs' (all known).
	Infer func(n *Node) ([]Shape, []DType, error)
}

// Info returns the op's table entry.
func (o Op) Info() *OpInfo {
	if o <= OpInvalid || o >= numOps {
		return &OpInfo{Name: "op(" + strconv.Itoa(int(o)) + ")"}
	}
	return &opTable[o]
}

func (o Op) String() string { return o.Info().Name }

// Ops lists every valid op, in table order.
func Ops() []Op {
	ops := make([]Op, 0, numOps-1)
	for o := OpInvalid + 1; o < numOps; o++ {
		ops = append(ops, o)
	}
	return ops
}

// OpByName finds an op by its table name.
func OpByName(name string) (Op, bool) {
	for o := OpInvalid + 1; o < numOps; o++ {
		if opTable[o].Name == name {
			return o, true
		}
	}
	return OpInvalid, false
}

var opTable = [numOps]OpInfo{
	OpEmbedding:       {Name: "embedding", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferEmbedding},
	OpLinear:          {Name: "linear", MinIn: 2, MaxIn: 3, MinOut: 1, MaxOut: 1, Infer: inferLinear},
	OpLayerNorm:       {Name: "layernorm", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Infer: inferNorm},
	OpRMSNorm:         {Name: "rmsnorm", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferNorm},
	OpRoPE:            {Name: "rope", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferRoPE},
	OpAttention:       {Name: "attention", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Infer: inferAttention},
	OpGELU:            {Name: "gelu", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpSiLU:            {Name: "silu", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpAdd:             {Name: "add", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpMul:             {Name: "mul", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpScale:           {Name: "scale", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpSoftcap:         {Name: "softcap", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferSoftcap},
	OpSoftmax:         {Name: "softmax", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferSame},
	OpCrossEntropy:    {Name: "cross_entropy", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Infer: inferCrossEntropy},
	OpSplit:           {Name: "split", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: -1, Infer: inferSplit},
	OpConcat:          {Name: "concat", MinIn: 1, MaxIn: -1, MinOut: 1, MaxOut: 1, Infer: inferConcat},
	OpFill:            {Name: "fill", MinIn: 0, MaxIn: 0, MinOut: 1, MaxOut: 1, Infer: inferFill},
	OpLoRA:            {Name: "lora", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Infer: inferLoRA},
	OpLoRALinear:      {Name: "lora_linear", MinIn: 4, MaxIn: 5, MinOut: 1, MaxOut: 2, Infer: inferLoRALinear},
	OpLoRALinearRows:  {Name: "lora_linear_rows", MinIn: 4, MaxIn: 5, MinOut: 1, MaxOut: 1, Infer: inferLoRALinear},
	OpLoRAMerge:       {Name: "lora_merge", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Infer: inferLoRAMerge},
	OpLastToken:       {Name: "last_token", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Infer: inferLastToken},
	OpAttentionDecode: {Name: "attention_decode", MinIn: 6, MaxIn: 6, MinOut: 1, MaxOut: 1, Stateful: true, Infer: inferAttentionDecode},

	OpEmbeddingGrad:       {Name: "embedding_grad", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferEmbeddingGrad},
	OpLinearGradInput:     {Name: "linear_grad_input", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferLinearGradInput},
	OpLinearGradWeight:    {Name: "linear_grad_weight", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferLinearGradWeight},
	OpLinearGradBias:      {Name: "linear_grad_bias", MinIn: 1, MaxIn: 1, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferLinearGradBias},
	OpLayerNormGrad:       {Name: "layernorm_grad", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferNormGrad},
	OpLayerNormGradParams: {Name: "layernorm_grad_params", MinIn: 2, MaxIn: 2, MinOut: 2, MaxOut: 2, Backward: true, Infer: inferNormGradParams},
	OpRMSNormGrad:         {Name: "rmsnorm_grad", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferNormGrad},
	OpRMSNormGradGain:     {Name: "rmsnorm_grad_gain", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferNormGradParams},
	OpRoPEGrad:            {Name: "rope_grad", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferRoPE},
	OpAttentionGrad:       {Name: "attention_grad", MinIn: 4, MaxIn: 4, MinOut: 3, MaxOut: 3, Backward: true, Infer: inferAttentionGrad},
	OpGELUGrad:            {Name: "gelu_grad", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferSame},
	OpSiLUGrad:            {Name: "silu_grad", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferSame},
	OpSoftcapGrad:         {Name: "softcap_grad", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferSoftcap},
	OpSoftmaxGrad:         {Name: "softmax_grad", MinIn: 2, MaxIn: 2, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferSame},
	OpCrossEntropyGrad:    {Name: "cross_entropy_grad", MinIn: 3, MaxIn: 3, MinOut: 1, MaxOut: 1, Backward: true, Infer: inferCrossEntropyGrad},
	OpLoRAGrad:            {Name: "lora_grad", MinIn: 4, MaxIn: 4, MinOut: 2, MaxOut: 3, Backward: true, Infer: inferLoRAGrad},
	OpLoRALinearGrad:      {Name: "lora_linear_grad", MinIn: 5, MaxIn: 6, MinOut: 2, MaxOut: 3, Backward: true, Infer: inferLoRAGrad},
}

func shapeErr(n *Node, format string, args ...any) error {
	return fmt.Errorf("%s: %s", n.Op, fmt.Sprintf(format, args...))
}

func one(s Shape, d DType) ([]Shape, []DType, error) { return []Shape{s}, []DType{d}, nil }

func wantFloat(n *Node, vs ...*Value) error {
	for _, v := range vs {
		if v.DType != F32 && v.DType != BF16 && v.DType != F16 {
			return shapeErr(n, "%s is %s, want a float tensor", v.Ref(), v.DType)
		}
	}
	return nil
}

func wantInt(n *Node, v *Value, rank int) error {
	if v.DType != I32 {
		return shapeErr(n, "%s is %s, want i32", v.Ref(), v.DType)
	}
	if len(v.Shape) != rank {
		return shapeErr(n, "%s has shape %s, want rank %d", v.Ref(), v.Shape, rank)
	}
	return nil
}

func inferSame(n *Node) ([]Shape, []DType, error) {
	x := n.In[0]
	if err := wantFloat(n, n.In...); err != nil {
		return nil, nil, err
	}
	for _, v := range n.In[1:] {
		if !v.Shape.Equal(x.Shape) {
			return nil, nil, shapeErr(n, "operands %s %s and %s %s differ in shape", x.Ref(), x.Shape, v.Ref(), v.Shape)
		}
	}
	return one(x.Shape, x.DType)
}

func inferEmbedding(n *Node) ([]Shape, []DType, error) {
	ids, table := n.In[0], n.In[1]
	if err := wantInt(n, ids, 2); err != nil {
		return nil, nil, err
	}
	if len(table.Shape) != 2 {
		return nil, nil, shapeErr(n, "table %s has shape %s, want [V, C]", table.Ref(), table.Shape)
	}
	return one(Shape{ids.Shape[0], ids.Shape[1], table.Shape[1]}, table.DType)
}

// weightDims returns (in, out) of a linear weight in the node's layout.
func weightDims(n *Node, w *Value) (k, m int, err error) {
	if len(w.Shape) != 2 {
		return 0, 0, shapeErr(n, "weight %s has shape %s, want rank 2", w.Ref(), w.Shape)
	}
	if n.Attr.Conv1D {
		return w.Shape[0], w.Shape[1], nil
	}
	return w.Shape[1], w.Shape[0], nil
}

func inferLinear(n *Node) ([]Shape, []DType, error) {
	x, w := n.In[0], n.In[1]
	if err := wantFloat(n, x, w); err != nil {
		return nil, nil, err
	}
	k, out, err := weightDims(n, w)
	if err != nil {
		return nil, nil, err
	}
	if len(x.Shape) == 0 || x.Shape.Last() != k {
		return nil, nil, shapeErr(n, "input %s %s does not match weight %s %s (in = %d)", x.Ref(), x.Shape, w.Ref(), w.Shape, k)
	}
	if len(n.In) == 3 && !n.In[2].Shape.Equal(Shape{out}) {
		return nil, nil, shapeErr(n, "bias %s has shape %s, want [%d]", n.In[2].Ref(), n.In[2].Shape, out)
	}
	return one(x.Shape.WithLast(out), x.DType)
}

func inferNorm(n *Node) ([]Shape, []DType, error) {
	x := n.In[0]
	if err := wantFloat(n, n.In...); err != nil {
		return nil, nil, err
	}
	if len(x.Shape) == 0 {
		return nil, nil, shapeErr(n, "input %s is a scalar", x.Ref())
	}
	c, err := normWidth(n, x)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range n.In[1:] {
		if !p.Shape.Equal(Shape{c}) {
			return nil, nil, shapeErr(n, "%s has shape %s, want [%d]", p.Ref(), p.Shape, c)
		}
	}
	if n.Attr.Eps <= 0 {
		return nil, nil, shapeErr(n, "eps %g must be positive", n.Attr.Eps)
	}
	return one(x.Shape, x.DType)
}

func inferSoftcap(n *Node) ([]Shape, []DType, error) {
	if n.Attr.Softcap <= 0 {
		return nil, nil, shapeErr(n, "softcap %g must be positive", n.Attr.Softcap)
	}
	return inferSame(n)
}

// normWidth is the width a norm normalises over: the row, or with
// Attr.Heads > 0 (rmsnorm per head) one of Heads equal parts of it.
func normWidth(n *Node, x *Value) (int, error) {
	c := x.Shape.Last()
	h := n.Attr.Heads
	switch {
	case h == 0:
		return c, nil
	case n.Op != OpRMSNorm && n.Op != OpRMSNormGrad && n.Op != OpRMSNormGradGain:
		return 0, shapeErr(n, "only rmsnorm normalises per head")
	case h < 0 || c%h != 0:
		return 0, shapeErr(n, "width %d is not %d heads", c, h)
	}
	return c / h, nil
}

func inferRoPE(n *Node) ([]Shape, []DType, error) {
	x, pos := n.In[0], n.In[1]
	if err := wantInt(n, pos, 2); err != nil {
		return nil, nil, err
	}
	if len(x.Shape) != 3 || x.Shape[0] != pos.Shape[0] || x.Shape[1] != pos.Shape[1] {
		return nil, nil, shapeErr(n, "input %s %s does not match positions %s", x.Ref(), x.Shape, pos.Shape)
	}
	h := n.Attr.Heads
	if h <= 0 || x.Shape[2]%h != 0 || (x.Shape[2]/h)%2 != 0 {
		return nil, nil, shapeErr(n, "width %d is not %d heads of an even head size", x.Shape[2], h)
	}
	if n.Attr.Theta <= 0 {
		return nil, nil, shapeErr(n, "theta %g must be positive", n.Attr.Theta)
	}
	switch r := n.Attr.Rope; r.Kind {
	case "":
	case "linear":
		if r.Factor <= 0 {
			return nil, nil, shapeErr(n, "rope scaling factor %g must be positive", r.Factor)
		}
	case "llama3":
		if r.Factor <= 0 || r.LowFreq <= 0 || r.HighFreq <= r.LowFreq || r.OrigContext <= 0 {
			return nil, nil, shapeErr(n, "llama3 rope scaling wants factor > 0, 0 < low_freq < high_freq and original_context > 0, got %g, %g, %g, %d",
				r.Factor, r.LowFreq, r.HighFreq, r.OrigContext)
		}
	default:
		return nil, nil, shapeErr(n, "unknown rope scaling %q", r.Kind)
	}
	return one(x.Shape, x.DType)
}

func attentionDims(n *Node, q, k, v *Value) error {
	if err := wantFloat(n, q, k, v); err != nil {
		return err
	}
	a := n.Attr
	if a.Heads <= 0 || a.KVHeads <= 0 || a.Heads%a.KVHeads != 0 {
		return shapeErr(n, "heads %d must be a positive multiple of kv heads %d", a.Heads, a.KVHeads)
	}
	if a.Window < 0 {
		return shapeErr(n, "sliding window %d is negative", a.Window)
	}
	if len(q.Shape) != 3 || q.Shape[2]%a.Heads != 0 {
		return shapeErr(n, "query %s %s is not [B, T, %d heads × head size]", q.Ref(), q.Shape, a.Heads)
	}
	hs := q.Shape[2] / a.Heads
	want := Shape{q.Shape[0], q.Shape[1], a.KVHeads * hs}
	if !k.Shape.Equal(want) || !v.Shape.Equal(want) {
		return shapeErr(n, "key %s and value %s must both be %s", k.Shape, v.Shape, want)
	}
	return nil
}

func inferAttention(n *Node) ([]Shape, []DType, error) {
	if err := attentionDims(n, n.In[0], n.In[1], n.In[2]); err != nil {
		return nil, nil, err
	}
	return one(n.In[0].Shape, n.In[0].DType)
}

func inferAttentionGrad(n *Node) ([]Shape, []DType, error) {
	dy, q, k, v := n.In[0], n.In[1], n.In[2], n.In[3]
	if err := attentionDims(n, q, k, v); err != nil {
		return nil, nil, err
	}
	if !dy.Shape.Equal(q.Shape) {
		return nil, nil, shapeErr(n, "gradient %s does not match query %s", dy.Shape, q.Shape)
	}
	return []Shape{q.Shape, k.Shape, v.Shape}, []DType{q.DType, k.DType, v.DType}, nil
}

func inferCrossEntropy(n *Node) ([]Shape, []DType, error) {
	logits, targets := n.In[0], n.In[1]
	if err := wantInt(n, targets, 2); err != nil {
		return nil, nil, err
	}
	if len(logits.Shape) != 3 || logits.Shape[0] != targets.Shape[0] || logits.Shape[1] != targets.Shape[1] {
		return nil, nil, shapeErr(n, "logits %s do not match targets %s", logits.Shape, targets.Shape)
	}
	return one(Shape{}, F32)
}

func inferCrossEntropyGrad(n *Node) ([]Shape, []DType, error) {
	dl := n.In[0]
	if len(dl.Shape) != 0 || dl.Shape == nil {
		return nil, nil, shapeErr(n, "loss gradient %s must be a scalar", dl.Shape)
	}
	if _, _, err := inferCrossEntropy(&Node{Op: OpCrossEntropy, In: n.In[1:]}); err != nil {
		return nil, nil, err
	}
	return one(n.In[1].Shape, n.In[1].DType)
}

func inferSplit(n *Node) ([]Shape, []DType, error) {
	x := n.In[0]
	if len(n.Attr.Sizes) != len(n.Out) {
		return nil, nil, shapeErr(n, "%d sizes for %d outputs", len(n.Attr.Sizes), len(n.Out))
	}
	sum := 0
	var shapes []Shape
	var dts []DType
	for _, s := range n.Attr.Sizes {
		if s <= 0 {
			return nil, nil, shapeErr(n, "size %d must be positive", s)
		}
		sum += s
		shapes = append(shapes, x.Shape.WithLast(s))
		dts = append(dts, x.DType)
	}
	if len(x.Shape) == 0 || sum != x.Shape.Last() {
		return nil, nil, shapeErr(n, "sizes %v do not add up to the width of %s", n.Attr.Sizes, x.Shape)
	}
	return shapes, dts, nil
}

func inferConcat(n *Node) ([]Shape, []DType, error) {
	x := n.In[0]
	if len(x.Shape) == 0 {
		return nil, nil, shapeErr(n, "cannot concatenate scalars")
	}
	sum := 0
	for _, v := range n.In {
		if len(v.Shape) != len(x.Shape) || !v.Shape[:len(v.Shape)-1].Equal(x.Shape[:len(x.Shape)-1]) {
			return nil, nil, shapeErr(n, "operand %s %s does not match %s", v.Ref(), v.Shape, x.Shape)
		}
		sum += v.Shape.Last()
	}
	return one(x.Shape.WithLast(sum), x.DType)
}

func inferFill(n *Node) ([]Shape, []DType, error) {
	if n.Attr.Shape == nil {
		return nil, nil, shapeErr(n, "no shape")
	}
	return one(append(Shape{}, n.Attr.Shape...), F32)
}

// loraDims checks A [R,K] and B [N,R] and returns (K, N).
func loraDims(n *Node, a, b *Value) (k, out int, err error) {
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != b.Shape[1] {
		return 0, 0, shapeErr(n, "A %s and B %s are not [R, in] and [out, R]", a.Shape, b.Shape)
	}
	return a.Shape[1], b.Shape[0], nil
}

func inferLoRA(n *Node) ([]Shape, []DType, error) {
	x, a, b := n.In[0], n.In[1], n.In[2]
	k, out, err := loraDims(n, a, b)
	if err != nil {
		return nil, nil, err
	}
	if len(x.Shape) == 0 || x.Shape.Last() != k {
		return nil, nil, shapeErr(n, "input %s does not match A %s", x.Shape, a.Shape)
	}
	return one(x.Shape.WithLast(out), x.DType)
}

func inferLoRALinear(n *Node) ([]Shape, []DType, error) {
	lin := &Node{Op: OpLinear, In: []*Value{n.In[0], n.In[1]}, Attr: n.Attr}
	if len(n.In) == 5 {
		lin.In = append(lin.In, n.In[4])
	}
	s, d, err := inferLinear(lin)
	if err != nil {
		return nil, nil, err
	}
	k, out, err := loraDims(n, n.In[2], n.In[3])
	if err != nil {
		return nil, nil, err
	}
	if k != n.In[0].Shape.Last() || out != s[0].Last() {
		return nil, nil, shapeErr(n, "A %s and B %s do not match the linear's %d → %d", n.In[2].Shape, n.In[3].Shape, k, out)
	}
	if len(n.Out) == 2 {
		// t = s·dropout(x)·Aᵀ, (…, R), kept for the fused backward.
		s = append(s, n.In[0].Shape.WithLast(n.In[2].Shape[0]))
		d = append(d, n.In[0].DType)
	}
	return s, d, nil
}

func inferLoRAMerge(n *Node) ([]Shape, []DType, error) {
	w := n.In[0]
	k, out, err := weightDims(n, w)
	if err != nil {
		return nil, nil, err
	}
	ak, bout, err := loraDims(n, n.In[1], n.In[2])
	if err != nil {
		return nil, nil, err
	}
	if ak != k || bout != out {
		return nil, nil, shapeErr(n, "A %s and B %s do not match weight %s", n.In[1].Shape, n.In[2].Shape, w.Shape)
	}
	return one(w.Shape, w.DType)
}

func inferEmbeddingGrad(n *Node) ([]Shape, []DType, error) {
	dy, ids, table := n.In[0], n.In[1], n.In[2]
	s, _, err := inferEmbedding(&Node{Op: OpEmbedding, In: []*Value{ids, table}})
	if err != nil {
		return nil, nil, err
	}
	if !dy.Shape.Equal(s[0]) {
		return nil, nil, shapeErr(n, "gradient %s does not match %s", dy.Shape, s[0])
	}
	return one(table.Shape, table.DType)
}

func inferLinearGradInput(n *Node) ([]Shape, []DType, error) {
	dy, w := n.In[0], n.In[1]
	k, out, err := weightDims(n, w)
	if err != nil {
		return nil, nil, err
	}
	if len(dy.Shape) == 0 || dy.Shape.Last() != out {
		return nil, nil, shapeErr(n, "gradient %s does not match weight %s", dy.Shape, w.Shape)
	}
	return one(dy.Shape.WithLast(k), dy.DType)
}

func inferLinearGradWeight(n *Node) ([]Shape, []DType, error) {
	dy, x := n.In[0], n.In[1]
	if len(dy.Shape) == 0 || len(x.Shape) != len(dy.Shape) || dy.Shape.Rows() != x.Shape.Rows() {
		return nil, nil, shapeErr(n, "gradient %s does not match input %s", dy.Shape, x.Shape)
	}
	if n.Attr.Conv1D {
		return one(Shape{x.Shape.Last(), dy.Shape.Last()}, x.DType)
	}
	return one(Shape{dy.Shape.Last(), x.Shape.Last()}, x.DType)
}

func inferLinearGradBias(n *Node) ([]Shape, []DType, error) {
	dy := n.In[0]
	if len(dy.Shape) == 0 {
		return nil, nil, shapeErr(n, "gradient is a scalar")
	}
	return one(Shape{dy.Shape.Last()}, dy.DType)
}

func inferNormGrad(n *Node) ([]Shape, []DType, error) {
	dy, x := n.In[0], n.In[1]
	if !dy.Shape.Equal(x.Shape) {
		return nil, nil, shapeErr(n, "gradient %s does not match input %s", dy.Shape, x.Shape)
	}
	c, err := normWidth(n, x)
	if err != nil {
		return nil, nil, err
	}
	if !n.In[2].Shape.Equal(Shape{c}) {
		return nil, nil, shapeErr(n, "gain %s does not match input %s", n.In[2].Shape, x.Shape)
	}
	return one(x.Shape, x.DType)
}

func inferNormGradParams(n *Node) ([]Shape, []DType, error) {
	dy, x := n.In[0], n.In[1]
	if len(x.Shape) == 0 || !dy.Shape.Equal(x.Shape) {
		return nil, nil, shapeErr(n, "gradient %s does not match input %s", dy.Shape, x.Shape)
	}
	c, err := normWidth(n, x)
	if err != nil {
		return nil, nil, err
	}
	var s []Shape
	var d []DType
	for range n.Out {
		s = append(s, Shape{c})
		d = append(d, x.DType)
	}
	return s, d, nil
}

func inferLoRAGrad(n *Node) ([]Shape, []DType, error) {
	dy, x := n.In[0], n.In[1]
	a, b := n.In[2], n.In[3] // lora_grad: (dy, x, A, B)
	if n.Op == OpLoRALinearGrad {
		a, b = n.In[3], n.In[4] // (dy, x, w, A, B, t?)
	}
	k, out, err := loraDims(n, a, b)
	if err != nil {
		return nil, nil, err
	}
	if len(n.In) == 6 {
		if t := n.In[5]; !t.Shape.Equal(x.Shape.WithLast(a.Shape[0])) {
			return nil, nil, shapeErr(n, "kept t %s does not match input %s and rank %d", t.Shape, x.Shape, a.Shape[0])
		}
	}
	if len(x.Shape) == 0 || x.Shape.Last() != k || !dy.Shape.Equal(x.Shape.WithLast(out)) {
		return nil, nil, shapeErr(n, "gradient %s and input %s do not match A %s, B %s", dy.Shape, x.Shape, a.Shape, b.Shape)
	}
	s := []Shape{a.Shape, b.Shape, x.Shape}[:len(n.Out)]
	d := []DType{a.DType, b.DType, x.DType}[:len(n.Out)]
	return s, d, nil
}

// LinearDims returns the in and out features of a linear-like node (linear,
// lora_linear, lora_merge, linear_grad_input) from its weight's layout.
func LinearDims(n *Node) (in, out int, err error) {
	return weightDims(n, n.In[1-boolInt(n.Op == OpLoRAMerge)])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func inferLastToken(n *Node) ([]Shape, []DType, error) {
	x := n.In[0]
	if len(x.Shape) != 3 {
		return nil, nil, shapeErr(n, "input %s must be [B, T, C]", x.Shape)
	}
	if err := wantFloat(n, x); err != nil {
		return nil, nil, err
	}
	return one(Shape{x.Shape[0], 1, x.Shape[2]}, x.DType)
}

func inferAttentionDecode(n *Node) ([]Shape, []DType, error) {
	q, k, v, kc, vc, pos := n.In[0], n.In[1], n.In[2], n.In[3], n.In[4], n.In[5]
	if err := attentionDims(n, q, k, v); err != nil {
		return nil, nil, err
	}
	if err := wantInt(n, pos, 2); err != nil {
		return nil, nil, err
	}
	if !pos.Shape.Equal(Shape{q.Shape[0], q.Shape[1]}) {
		return nil, nil, shapeErr(n, "positions %s, want [%d, %d]", pos.Shape, q.Shape[0], q.Shape[1])
	}
	if len(kc.Shape) != 3 || !kc.Shape.Equal(vc.Shape) || kc.Shape[0] != k.Shape[0] || kc.Shape[2] != k.Shape[2] {
		return nil, nil, shapeErr(n, "caches %s and %s must both be [%d, context, %d]", kc.Shape, vc.Shape, k.Shape[0], k.Shape[2])
	}
	if err := wantFloat(n, kc, vc); err != nil {
		return nil, nil, err
	}
	return one(q.Shape, q.DType)
}
