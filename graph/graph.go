package graph

import (
	"fmt"
	"math"
)

// Mode says what a graph is compiled for.
type Mode uint8

const (
	// Train graphs compute a loss from (tokens, pos, targets) and, after
	// Differentiate, the gradients of every trainable parameter.
	Train Mode = iota // train
	// Infer graphs compute logits from (tokens, pos).
	Infer // infer
	// Eval graphs are the forward half of a training graph: the loss from
	// (tokens, pos, targets) at the train block's batch and seq, with no
	// backward and no dropout.
	Eval // eval
)

// Adapter asks for a LoRA branch on one module.
type Adapter struct {
	Module  string // Hugging Face module name, "model.layers.0.self_attn.q_proj"
	Rank    int
	Alpha   float64
	RSLoRA  bool // scale alpha/√r instead of alpha/r
	Dropout float64
	InitA   Init // InitKaiming (PEFT's default) or InitGaussian
	InitB   Init // InitZeros, or InitSmallNormal so tests see the branch
}

// Scale is s in y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ.
func (a Adapter) Scale() float64 {
	if a.RSLoRA {
		return a.Alpha / math.Sqrt(float64(a.Rank))
	}
	return a.Alpha / float64(a.Rank)
}

// Graph is a program over tensors. Nodes are kept in an order where every
// value is defined before it is used; Verify checks this.
type Graph struct {
	Name   string
	Mode   Mode
	Nodes  []*Node
	Params []*Value // parameter values, in declaration order
	Inputs []*Value // run-time inputs: tokens, pos, targets
	// Outputs are what a run returns: the loss (train) or logits (infer).
	Outputs []*Value
	// Grads pairs each trainable parameter with its gradient, in Params order,
	// once Differentiate has run.
	Grads []*Value
	// Adapters lists the LoRA branches InsertLoRA will create.
	Adapters []Adapter
	// Dropout says the graph applies its LoRA branches' dropout masks,
	// which change every step (so its function takes the mask stream).
	// InsertLoRA sets it on training graphs that have branches.
	Dropout bool
	// RowAdapters says each row of the batch runs its own adapter
	// (serving): FuseLoRA emits lora_linear_rows, whose branches read
	// the rows' adapter stores instead of the graph's A and B.
	RowAdapters bool
	// Plan is set by PlanMemory.
	Plan *MemoryPlan
	// Facts records which passes have run, for ordering checks.
	Facts map[string]bool

	nextID int
}

// New returns an empty graph.
func New(name string, mode Mode) *Graph {
	return &Graph{Name: name, Mode: mode, Facts: map[string]bool{}}
}

func (g *Graph) newValue() *Value {
	g.nextID++
	return &Value{ID: g.nextID}
}

// AddParam declares a parameter.
func (g *Graph) AddParam(p *Param) *Value {
	if p.DType == Invalid {
		p.DType = F32
	}
	v := g.newValue()
	v.Param, v.Shape, v.DType = p, p.Shape, p.DType
	g.Params = append(g.Params, v)
	return v
}

// AddInput declares a run-time input.
func (g *Graph) AddInput(name string, shape Shape, dt DType) *Value {
	v := g.newValue()
	v.Name, v.Shape, v.DType, v.Input = name, shape, dt, true
	g.Inputs = append(g.Inputs, v)
	return v
}

// Param finds a parameter value by name.
func (g *Graph) Param(name string) *Value {
	for _, v := range g.Params {
		if v.Param.Name == name {
			return v
		}
	}
	return nil
}

// NewNode builds a node with nout fresh outputs (shapes unknown) without
// placing it in the graph; use Append or InsertAfter.
func (g *Graph) NewNode(op Op, attr Attrs, nout int, in ...*Value) *Node {
	g.nextID++
	n := &Node{ID: g.nextID, Op: op, In: in, Attr: attr}
	for range nout {
		o := g.newValue()
		o.Producer = n
		n.Out = append(n.Out, o)
	}
	return n
}

// Append adds a node at the end of the graph and returns its first output.
func (g *Graph) Append(op Op, attr Attrs, in ...*Value) *Value {
	n := g.NewNode(op, attr, 1, in...)
	g.Nodes = append(g.Nodes, n)
	return n.Out[0]
}

// AppendNode adds a built node at the end of the graph.
func (g *Graph) AppendNode(n *Node) { g.Nodes = append(g.Nodes, n) }

// InsertAfter places n right after anchor (at the front when anchor is nil).
func (g *Graph) InsertAfter(anchor, n *Node) {
	i := 0
	if anchor != nil {
		i = g.index(anchor) + 1
	}
	g.Nodes = append(g.Nodes, nil)
	copy(g.Nodes[i+1:], g.Nodes[i:])
	g.Nodes[i] = n
}

func (g *Graph) index(n *Node) int {
	for i, m := range g.Nodes {
		if m == n {
			return i
		}
	}
	panic(fmt.Sprintf("graph: node %d is not in the graph", n.ID))
}

// Replace substitutes new for every use of old (node inputs and outputs),
// except in the node skip.
func (g *Graph) Replace(old, new *Value, skip *Node) {
	for _, n := range g.Nodes {
		if n == skip {
			continue
		}
		for i, v := range n.In {
			if v == old {
				n.In[i] = new
			}
		}
	}
	for i, v := range g.Outputs {
		if v == old {
			g.Outputs[i] = new
		}
	}
}

// Uses counts how many node inputs and graph outputs refer to each value.
func (g *Graph) Uses() map[*Value]int {
	u := map[*Value]int{}
	for _, n := range g.Nodes {
		for _, v := range n.In {
			u[v]++
		}
	}
	for _, v := range g.Outputs {
		u[v]++
	}
	for _, v := range g.Grads {
		u[v]++
	}
	return u
}

// RemoveDead deletes nodes none of whose outputs is used, repeatedly.
func (g *Graph) RemoveDead() {
	for {
		uses := g.Uses()
		kept := g.Nodes[:0]
		removed := false
		for _, n := range g.Nodes {
			live := false
			for _, o := range n.Out {
				if uses[o] > 0 {
					live = true
				}
			}
			if live {
				kept = append(kept, n)
			} else {
				removed = true
			}
		}
		g.Nodes = kept
		if !removed {
			return
		}
	}
}

// Values lists every value of the graph: params, inputs, then node outputs in
// node order.
func (g *Graph) Values() []*Value {
	vs := append(append([]*Value{}, g.Params...), g.Inputs...)
	for _, n := range g.Nodes {
		vs = append(vs, n.Out...)
	}
	return vs
}

// GradOf returns the gradient value of a parameter, or nil.
func (g *Graph) GradOf(p *Param) *Value {
	for _, v := range g.Grads {
		if v.GradOf == p {
			return v
		}
	}
	return nil
}

// ParamCount sums the elements of the parameters that satisfy keep.
func (g *Graph) ParamCount(keep func(*Param) bool) int64 {
	var n int64
	for _, v := range g.Params {
		if keep == nil || keep(v.Param) {
			c, ok := v.Param.Shape.CheckedNumel()
			if n, ok = AddInt64(n, c); !ok {
				return math.MaxInt64 // only for shapes CheckSize rejects
			}
		}
	}
	return n
}

// Infer sets the shapes and dtypes of n's outputs from its inputs.
func (g *Graph) Infer(n *Node) error {
	info := n.Op.Info()
	if info.Infer == nil {
		return fmt.Errorf("node %d: invalid op %s", n.ID, n.Op)
	}
	for _, v := range n.In {
		if v.Shape == nil {
			return fmt.Errorf("node %d %s: input %s has no shape", n.ID, n.Op, v.Ref())
		}
	}
	shapes, dts, err := info.Infer(n)
	if err != nil {
		return fmt.Errorf("node %d: %w", n.ID, err)
	}
	for i, o := range n.Out {
		o.Shape, o.DType = shapes[i], dts[i]
		if err := o.CheckSize(); err != nil {
			return fmt.Errorf("node %d %s: %w", n.ID, n.Op, err)
		}
	}
	return nil
}

// CheckSize reports a value whose storage does not fit in MaxBytes (or whose
// element count overflows int64), so that Numel and Bytes are exact for
// every value that passes it.
func (v *Value) CheckSize() error {
	if v.Shape == nil {
		return nil
	}
	if _, ok := v.Shape.CheckedBytes(v.DType); !ok {
		return fmt.Errorf("%s of shape %s needs more than %d bytes (128 TiB), more than a process can address", v.Ref(), v.Shape, int64(MaxBytes))
	}
	return nil
}
