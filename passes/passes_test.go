package passes_test

import (
	"strings"
	"testing"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/passes"
)

func TestTableOrder(t *testing.T) {
	if err := passes.CheckOrder(passes.Table, passes.Constraints); err != nil {
		t.Fatal(err)
	}
	// Each constraint must be able to fail: swapping its two passes breaks it.
	for _, c := range passes.Constraints {
		table := append([]passes.Pass{}, passes.Table...)
		var i, j int
		for k, p := range table {
			switch p.Name {
			case c.Before:
				i = k
			case c.After:
				j = k
			}
		}
		table[i], table[j] = table[j], table[i]
		err := passes.CheckOrder(table, passes.Constraints)
		if err == nil || !strings.Contains(err.Error(), "must run before") {
			t.Errorf("swapping %s and %s: CheckOrder = %v", c.Before, c.After, err)
		}
	}
}

func TestRunRejectsBadSwitches(t *testing.T) {
	g := graph.New("empty", graph.Infer)
	for _, c := range []passes.Config{
		{Disable: map[string]bool{"Differentiate": true}},
		{Disable: map[string]bool{"NoSuchPass": true}},
		{StopAfter: "NoSuchPass"},
	} {
		if err := passes.Run(g, c); err == nil {
			t.Errorf("Run accepted %+v", c)
		}
	}
}

// twoChains computes out = head(A) + head(B) where A and B are wide. In
// program order both wide values are live at once; a good schedule finishes
// one chain before starting the other.
func twoChains() *graph.Graph {
	g := graph.New("chains", graph.Infer)
	x := g.AddParam(&graph.Param{Name: "x", Shape: graph.Shape{1, 64, 8}})
	p := func(name string, s ...int) *graph.Value { return g.AddParam(&graph.Param{Name: name, Shape: s}) }
	a := g.Append(graph.OpLinear, graph.Attrs{}, x, p("wa", 256, 8))
	b := g.Append(graph.OpLinear, graph.Attrs{}, x, p("wb", 256, 8))
	ha := g.Append(graph.OpLinear, graph.Attrs{}, a, p("ha", 2, 256))
	hb := g.Append(graph.OpLinear, graph.Attrs{}, b, p("hb", 2, 256))
	g.Outputs = []*graph.Value{g.Append(graph.OpAdd, graph.Attrs{}, ha, hb)}
	return g
}

func TestScheduleLowersPeak(t *testing.T) {
	plain := twoChains()
	if err := passes.Run(plain, passes.Config{Verify: true, Disable: nil, StopAfter: "InferShapes"}); err != nil {
		t.Fatal(err)
	}
	if err := passes.PlanMemory(plain, &passes.Config{}); err != nil {
		t.Fatal(err)
	}
	scheduled := twoChains()
	if err := passes.Run(scheduled, passes.Config{Verify: true}); err != nil {
		t.Fatal(err)
	}
	wide := int64(64 * 256 * 4)
	if plain.Plan.ArenaBytes < 2*wide {
		t.Fatalf("program order arena %d: the test graph no longer has two wide values live", plain.Plan.ArenaBytes)
	}
	if scheduled.Plan.ArenaBytes >= 2*wide {
		t.Errorf("scheduled arena %d bytes, want below %d (one wide value at a time)", scheduled.Plan.ArenaBytes, 2*wide)
	}
}
