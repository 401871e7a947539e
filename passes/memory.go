package passes

import (
	"fmt"
	"slices"

	"lorac.dev/lorac/graph"
)

// arenaAlign keeps every activation on a cache line (and an AVX-512 vector).
const arenaAlign = 64

// Schedule orders the nodes for a small activation peak: nodes that prepare
// weights (merged adapters) go first, then a greedy list schedule that
// prefers the ready node freeing the most bytes. The greedy order is kept
// only when its peak is below program order's, so Schedule never makes
// memory worse.
//
// Requires: InferShapes (and Differentiate in training graphs). Guarantees:
// g.Nodes is a topological order.
func Schedule(g *graph.Graph, _ *Config) error {
	greedy := greedyOrder(g)
	if peakOf(g, greedy) < peakOf(g, g.Nodes) {
		g.Nodes = greedy
	}
	return nil
}

// prep reports whether n prepares weights at load time (a merged adapter):
// such nodes go first and take no arena space.
func prep(n *graph.Node) bool { return n.Op == graph.OpLoRAMerge }

// planned reports whether a value lives in the activation arena.
func planned(v *graph.Value) bool {
	return v.Producer != nil && v.GradOf == nil && v.Producer.Op != graph.OpLoRAMerge
}

func greedyOrder(g *graph.Graph) []*graph.Node {
	pos := map[*graph.Node]int{}
	for i, n := range g.Nodes {
		pos[n] = i
	}
	waiting := map[*graph.Node]int{} // unscheduled producers each node waits on
	users := map[*graph.Node][]*graph.Node{}
	remaining := map[*graph.Value]int{} // unscheduled readers of each value
	for _, n := range g.Nodes {
		seen := map[*graph.Node]bool{}
		for _, v := range n.In {
			remaining[v]++
			if p := v.Producer; p != nil && !seen[p] {
				seen[p] = true
				waiting[n]++
				users[p] = append(users[p], n)
			}
		}
	}
	keep := map[*graph.Value]bool{}
	for _, v := range append(append([]*graph.Value{}, g.Outputs...), g.Grads...) {
		keep[v] = true
	}
	var ready []*graph.Node
	for _, n := range g.Nodes {
		if waiting[n] == 0 {
			ready = append(ready, n)
		}
	}
	score := func(n *graph.Node) int64 {
		if prep(n) {
			return 1 << 62
		}
		var s int64
		for _, o := range n.Out {
			if planned(o) {
				s -= o.Bytes()
			}
		}
		counted := map[*graph.Value]bool{}
		for _, v := range n.In {
			if planned(v) && !keep[v] && !counted[v] {
				counted[v] = true
				reads := 0
				for _, w := range n.In {
					if w == v {
						reads++
					}
				}
				if remaining[v] == reads {
					s += v.Bytes()
				}
			}
		}
		return s
	}
	order := make([]*graph.Node, 0, len(g.Nodes))
	for len(ready) > 0 {
		best := 0
		bs := score(ready[0])
		for i := 1; i < len(ready); i++ {
			s := score(ready[i])
			if s > bs || (s == bs && pos[ready[i]] < pos[ready[best]]) {
				best, bs = i, s
			}
		}
		n := ready[best]
		ready = slices.Delete(ready, best, best+1)
		order = append(order, n)
		for _, v := range n.In {
			remaining[v]--
		}
		for _, u := range users[n] {
			waiting[u]--
			if waiting[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return order
}

// lifetimes returns, for each planned value, the index of the last node that
// reads it (len(order) for values that outlive the run).
func lifetimes(g *graph.Graph, order []*graph.Node) map[*graph.Value]int {
	last := map[*graph.Value]int{}
	for i, n := range order {
		for _, o := range n.Out {
			if planned(o) {
				last[o] = i
			}
		}
		for _, v := range n.In {
			if planned(v) {
				last[v] = i
			}
		}
	}
	for _, v := range g.Outputs {
		last[v] = len(order)
	}
	return last
}

// peakOf is the largest sum of simultaneously live activations.
func peakOf(g *graph.Graph, order []*graph.Node) int64 {
	last := lifetimes(g, order)
	var live, peak int64
	for i, n := range order {
		for _, o := range n.Out {
			if planned(o) {
				live += align(o.Bytes())
			}
		}
		peak = max(peak, live)
		for _, v := range append(append([]*graph.Value{}, n.In...), n.Out...) {
			if planned(v) && last[v] == i {
				live -= align(v.Bytes())
				last[v] = -1
			}
		}
	}
	return peak
}

func align(n int64) int64 { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

// PlanMemory places every activation in one arena, reusing the space of
// values no later node reads (first fit by address), and totals what a run
// needs: weights, adapter, gradients, AdamW moments, inputs and the arena.
//
// Requires: Schedule. Guarantees: g.Plan is set; two activations share bytes
// only when their lifetimes do not overlap; a node's outputs never alias its
// inputs.
func PlanMemory(g *graph.Graph, _ *Config) error {
	p := &graph.MemoryPlan{Offsets: map[*graph.Value]int64{}}
	// Every sum is overflow-checked: sizes come from the user's file.
	overflow := false
	add := func(dst *int64, n int64) {
		s, ok := graph.AddInt64(*dst, n)
		overflow = overflow || !ok
		*dst = s
	}
	for _, v := range append(append([]*graph.Value{}, g.Params...), g.Inputs...) {
		if err := v.CheckSize(); err != nil {
			return err
		}
	}
	for _, v := range g.Params {
		if v.Param.Role == graph.LoRA {
			add(&p.AdapterBytes, v.Bytes())
		} else {
			add(&p.WeightBytes, v.Bytes())
		}
		if v.Param.Trainable && g.Mode == graph.Train {
			add(&p.GradBytes, v.Bytes())
			moments, ok := graph.MulInt64(int64(v.Shape.Numel()), 2*4)
			overflow = overflow || !ok
			add(&p.OptimizerBytes, moments)
		}
	}
	for _, v := range g.Inputs {
		add(&p.InputBytes, v.Bytes())
	}
	last := lifetimes(g, g.Nodes)
	type block struct{ off, size int64 }
	var live []block // sorted by offset
	owner := map[int64]*graph.Value{}
	for i, n := range g.Nodes {
		for _, o := range n.Out {
			if !planned(o) {
				continue
			}
			if o.Shape == nil {
				return fmt.Errorf("value %s has no shape", o.Ref())
			}
			if err := o.CheckSize(); err != nil {
				return err
			}
			size := align(o.Bytes())
			add(&p.NaiveBytes, size)
			off := int64(0)
			at := len(live)
			for j, b := range live {
				if b.off-off >= size {
					at = j
					break
				}
				off = b.off + b.size
			}
			live = slices.Insert(live, at, block{off, size})
			owner[off] = o
			p.Offsets[o] = off
			p.ArenaBytes = max(p.ArenaBytes, off+size)
		}
		kept := live[:0]
		for _, b := range live {
			if last[owner[b.off]] != i {
				kept = append(kept, b)
			}
		}
		live = kept
	}
	total := int64(0)
	for _, n := range []int64{p.ArenaBytes, p.WeightBytes, p.AdapterBytes, p.GradBytes, p.OptimizerBytes, p.InputBytes} {
		add(&total, n)
	}
	if overflow || total > graph.MaxBytes {
		return fmt.Errorf("a %s run needs more than %d bytes (128 TiB), more than a process can address", g.Mode, int64(graph.MaxBytes))
	}
	g.Plan = p
	return nil
}
