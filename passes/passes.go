package passes

import (
	"fmt"
	"slices"

	"lorac.dev/lorac/graph"
)

// Pass is one entry of the pass table.
type Pass struct {
	Name string
	Fn   func(g *graph.Graph, c *Config) error
	// Required passes cannot be disabled.
	Required bool
	// Modes lists the graph modes the pass runs in.
	Modes []graph.Mode
}

// Config controls a pipeline run.
type Config struct {
	// Disable names optional passes to skip (debug switch).
	Disable map[string]bool
	// StopAfter ends the pipeline after the named pass ("" runs them all).
	StopAfter string
	// Verify runs graph.Verify after every pass.
	Verify bool
	// Full trains every base parameter and inserts no adapters (training a
	// base model from scratch).
	Full bool
	// AfterPass, if set, is called after each pass that ran.
	AfterPass func(pass string, g *graph.Graph)
}

// every mode; evaluation graphs run the training pipeline up to the loss:
// adapters inserted and fused, no merge, no backward.
var every = []graph.Mode{graph.Train, graph.Infer, graph.Eval}

// Table is the pass pipeline, in order.
var Table = []Pass{
	{Name: "InferShapes", Fn: InferShapes, Required: true, Modes: every},
	{Name: "FreezeBase", Fn: FreezeBase, Required: true, Modes: every},
	{Name: "InsertLoRA", Fn: InsertLoRA, Required: true, Modes: every},
	{Name: "MergeLoRA", Fn: MergeLoRA, Modes: []graph.Mode{graph.Infer}},
	{Name: "FuseLoRA", Fn: FuseLoRA, Modes: every},
	{Name: "Differentiate", Fn: Differentiate, Required: true, Modes: []graph.Mode{graph.Train}},
	{Name: "Schedule", Fn: Schedule, Required: true, Modes: every},
	{Name: "PlanMemory", Fn: PlanMemory, Required: true, Modes: every},
}

// Constraint says pass Before must come before pass After in the table.
type Constraint struct {
	Before, After string
	Why           string
}

// Constraints are the ordering rules of Table.
var Constraints = []Constraint{
	{"InferShapes", "InsertLoRA", "A and B are sized from the linear's in and out features"},
	{"FreezeBase", "InsertLoRA", "FreezeBase freezes every parameter it sees; adapters created after it stay trainable"},
	{"InsertLoRA", "MergeLoRA", "merging folds the branches InsertLoRA creates"},
	{"MergeLoRA", "FuseLoRA", "a fused branch cannot be merged; inference graphs keep plain linears"},
	{"InsertLoRA", "FuseLoRA", "fusion needs the branches to exist"},
	{"FuseLoRA", "Differentiate", "the fused op's gradient rule emits the fused backward; fusing afterwards would have to pattern-match backward subgraphs"},
	{"FreezeBase", "Differentiate", "gradients flow only to trainable parameters, so trainability must be final"},
	{"InsertLoRA", "Differentiate", "LoRA parameters need gradients"},
	{"Differentiate", "Schedule", "backward nodes are scheduled too"},
	{"Schedule", "PlanMemory", "liveness depends on the final node order"},
}

func init() {
	if err := CheckOrder(Table, Constraints); err != nil {
		panic(err)
	}
}

// CheckOrder reports the first constraint the table violates.
func CheckOrder(table []Pass, cs []Constraint) error {
	idx := map[string]int{}
	for i, p := range table {
		if _, dup := idx[p.Name]; dup {
			return fmt.Errorf("passes: %s appears twice in the table", p.Name)
		}
		idx[p.Name] = i
	}
	for _, c := range cs {
		b, okb := idx[c.Before]
		a, oka := idx[c.After]
		if !okb || !oka {
			return fmt.Errorf("passes: constraint %s < %s names an unknown pass", c.Before, c.After)
		}
		if b >= a {
			return fmt.Errorf("passes: %s must run before %s: %s", c.Before, c.After, c.Why)
		}
	}
	return nil
}

// Lookup finds a pass by name.
func Lookup(name string) (Pass, bool) {
	for _, p := range Table {
		if p.Name == name {
			return p, true
		}
	}
	return Pass{}, false
}

// Names lists the pass names in order.
func Names() []string {
	var names []string
	for _, p := range Table {
		names = append(names, p.Name)
	}
	return names
}

// Run runs the pipeline on g.
func Run(g *graph.Graph, c Config) error {
	if c.StopAfter != "" {
		if _, ok := Lookup(c.StopAfter); !ok {
			return fmt.Errorf("unknown pass %q; passes are %v", c.StopAfter, Names())
		}
	}
	for name := range c.Disable {
		p, ok := Lookup(name)
		if !ok {
			return fmt.Errorf("unknown pass %q; passes are %v", name, Names())
		}
		if p.Required {
			return fmt.Errorf("pass %s is required and cannot be disabled", name)
		}
	}
	for _, p := range Table {
		if slices.Contains(p.Modes, g.Mode) && !c.Disable[p.Name] {
			if err := p.Fn(g, &c); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			g.Facts[p.Name] = true
			if c.Verify {
				if err := g.Verify(); err != nil {
					return fmt.Errorf("after %s: graph does not verify: %w", p.Name, err)
				}
			}
			if c.AfterPass != nil {
				c.AfterPass(p.Name, g)
			}
		}
		if p.Name == c.StopAfter {
			break
		}
	}
	return nil
}

// InferShapes sets the shape and dtype of every node output.
//
// Requires: parameters and inputs have shapes. Guarantees: every value has a
// shape consistent with the op table, or an error names the node.
func InferShapes(g *graph.Graph, _ *Config) error {
	for _, v := range append(append([]*graph.Value{}, g.Params...), g.Inputs...) {
		if err := v.CheckSize(); err != nil {
			return err
		}
	}
	for _, n := range g.Nodes {
		if err := g.Infer(n); err != nil {
			return err
		}
	}
	return nil
}

// FreezeBase fixes which parameters train.
//
// Requires: nothing. Guarantees: every parameter present is frozen, unless
// Config.Full, in which case every parameter trains. Parameters created later
// (LoRA A and B) are trainable.
func FreezeBase(g *graph.Graph, c *Config) error {
	for _, v := range g.Params {
		v.Param.Trainable = c.Full && g.Mode == graph.Train
	}
	return nil
}
