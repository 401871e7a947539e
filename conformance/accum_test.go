package conformance

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/gen/hfgpt2"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
)

// TestLoRAGradAccumEqualsBigBatch: with the fixture's adapter, two
// micro-batches accumulated by the engine (each weighted by its share of
// the counted targets, some targets ignored) give the LoRA gradients of
// one batch of twice the rows, computed by the interpreter in float64.
func TestLoRAGradAccumEqualsBigBatch(t *testing.T) {
	f := load(t, "gpt2")
	B, T := hfgpt2.Batch, hfgpt2.Seq
	f.B, f.T = 2*B, T
	g := f.graph(t, graph.Train, true, passes.Config{})

	rng := rand.New(rand.NewPCG(5, 6))
	n := 2 * B * T
	tokens, targets := make([]int32, n), make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(hfgpt2.Vocab))
		targets[i] = int32(rng.IntN(hfgpt2.Vocab))
		// Few ignored in the first micro-batch, many in the second.
		if (i < n/2 && rng.IntN(6) == 0) || (i >= n/2 && rng.IntN(2) == 0) {
			targets[i] = kern.IgnoreTarget
		}
	}
	e := f.env(t, g)
	e.Inputs = map[string][]int32{"tokens": tokens, "targets": targets, "pos": engine.Positions(2*B, T)}
	ref, err := interp.Run(g, e)
	if err != nil {
		t.Fatal(err)
	}

	m := hfgpt2.New()
	if err := m.LoadBase(filepath.Join(f.dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := m.LoadAdapter(filepath.Join(f.dir, "adapter")); err != nil {
		t.Fatal(err)
	}
	spec := *m.Spec
	spec.Train.Clip = 0 // compare the gradients AdamW receives, unclipped
	m.Spec = &spec
	n1, n2 := kern.CountTargets(targets[:n/2]), kern.CountTargets(targets[n/2:])
	total := float32(n1 + n2)
	l1, err := m.Accumulate(tokens[:n/2], targets[:n/2], float32(n1)/total, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := m.Accumulate(tokens[n/2:], targets[n/2:], float32(n2)/total, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	loss := (float64(l1)*float64(n1) + float64(l2)*float64(n2)) / float64(total)
	if d := maxRel([]float64{loss}, ref[g.Outputs[0]]); d > 1e-6 {
		t.Errorf("token-weighted loss %g, the 2B batch's %g", loss, ref[g.Outputs[0]][0])
	}
	before := slices.Clone(m.LoRA)
	if _, err := m.ApplyGradients(false); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(before, m.LoRA) {
		t.Error("ApplyGradients did not update the adapter")
	}
	if len(g.Grads) == 0 {
		t.Fatal("the training graph has no gradients")
	}
	for _, dv := range g.Grads {
		name := dv.GradOf.Name
		var off int
		found := false
		for _, a := range m.Spec.Adapters {
			switch name {
			case a.Module + ".lora_A.weight":
				off, found = a.AOffset, true
			case a.Module + ".lora_B.weight":
				off, found = a.BOffset, true
			}
		}
		if !found {
			t.Fatalf("no adapter tensor %s", name)
		}
		got := make([]float64, dv.Shape.Numel())
		for i := range got {
			got[i] = float64(m.LoRAGrad[off+i])
		}
		if d := maxRel(got, ref[dv]); d > 3e-6 {
			t.Errorf("accumulated gradient of %s differs from the 2B batch's by %g", strings.TrimPrefix(name, "transformer."), d)
		}
	}
}
