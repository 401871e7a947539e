package compile

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/passes"
)

// tinyConfig is a checked config small enough for finite differences.
func tinyConfig(arch string, dropout float64) *dsl.Config {
	m := dsl.Model{Name: "tiny_" + arch, Arch: arch, Vocab: 11, Context: 6, Dim: 8, Layers: 2, Heads: 2,
		KVHeads: 2, FFN: 12, NormEps: 1e-5, TieEmbeddings: true, Bias: true}
	if arch == "llama" {
		m.KVHeads, m.NormEps, m.RopeTheta, m.TieEmbeddings, m.Bias = 1, 1e-6, 10000, false, false
	}
	cfg := &dsl.Config{Model: m, Train: dsl.Train{Batch: 2, Seq: 5, Steps: 1, LR: 1e-3, Schedule: "constant", Seed: 1}}
	var mods []string
	for i := range m.Layers {
		for _, l := range m.Linears() {
			if i == 0 || l.Group == "attn" {
				mods = append(mods, m.ModuleName(i, l))
			}
		}
	}
	// Two blocks with different ranks, like PEFT's rank_pattern.
	cfg.LoRA = []dsl.LoRA{
		{Rank: 2, Alpha: 4, Dropout: dropout, Init: "random", Modules: mods[:2]},
		{Rank: 3, Alpha: 3, RSLoRA: true, Dropout: dropout, Init: "random", Modules: mods[2:]},
	}
	return cfg
}

// randomEnv fills every parameter of g (and any LoRA parameter of extra) with
// random data and picks random tokens and targets.
func randomEnv(g *graph.Graph, rng *rand.Rand, vocab int) interp.Env[float64] {
	env := interp.Env[float64]{Params: map[string][]float64{}, Inputs: map[string][]int32{}, Step: 3}
	for _, v := range g.Params {
		data := make([]float64, v.Shape.Numel())
		for i := range data {
			data[i] = rng.NormFloat64() * 0.3
			if v.Param.Init == graph.InitOnes {
				data[i] += 1
			}
		}
		env.Params[v.Param.Name] = data
	}
	for _, v := range g.Inputs {
		data := make([]int32, v.Shape.Numel())
		for i := range data {
			switch v.Name {
			case "pos":
				data[i] = int32(i % v.Shape[1])
			default:
				data[i] = int32(rng.IntN(vocab))
			}
		}
		env.Inputs[v.Name] = data
	}
	return env
}

func build(t *testing.T, cfg *dsl.Config, mode graph.Mode, pc passes.Config) *graph.Graph {
	t.Helper()
	pc.Verify = true
	g, err := Build(cfg, mode, pc)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func relErr(a, b []float64) float64 {
	var num, den float64
	for i := range a {
		num = max(num, math.Abs(a[i]-b[i]))
		den = max(den, math.Abs(b[i]))
	}
	return num / max(den, 1e-30)
}

// TestPassesPreserveOutputs runs the graph after every pass of the pipeline
// and checks that the loss (train) or logits (infer) never change — except at
// InsertLoRA, which adds the adapter: with B = 0 it must not change them, and
// with a non-zero B the adapted output is the reference for later passes.
func TestPassesPreserveOutputs(t *testing.T) {
	for _, arch := range []string{"gpt2", "llama"} {
		for _, mode := range []graph.Mode{graph.Train, graph.Infer} {
			t.Run(arch+"/"+mode.String(), func(t *testing.T) {
				cfg := tinyConfig(arch, 0.25)
				full := build(t, cfg, mode, passes.Config{})
				env := randomEnv(full, rand.New(rand.NewPCG(7, 7)), cfg.Model.Vocab)
				zeroB := interp.Env[float64]{Params: map[string][]float64{}, Inputs: env.Inputs, Step: env.Step}
				for name, data := range env.Params {
					if strings.HasSuffix(name, ".lora_B.weight") {
						data = make([]float64, len(data))
					}
					zeroB.Params[name] = data
				}
				output := func(stop string, env interp.Env[float64]) []float64 {
					g := build(t, cfg, mode, passes.Config{StopAfter: stop})
					vals, err := interp.Run(g, env)
					if err != nil {
						t.Fatalf("after %s: %v", stop, err)
					}
					return vals[g.Outputs[0]]
				}
				base := output("InferShapes", env)
				if e := relErr(output("InsertLoRA", zeroB), base); e > 1e-12 {
					t.Errorf("InsertLoRA with B = 0 changed the output by %g", e)
				}
				adapted := output("InsertLoRA", env)
				if e := relErr(adapted, base); e < 1e-6 {
					t.Fatalf("a non-zero B changed the output by only %g: the branch is not wired in", e)
				}
				for _, p := range passes.Table {
					if !runsIn(p, mode) {
						continue
					}
					ref := adapted
					if p.Name == "InferShapes" || p.Name == "FreezeBase" {
						ref = base
					}
					if e := relErr(output(p.Name, env), ref); e > 1e-12 {
						t.Errorf("after %s: output changed by %g (relative)", p.Name, e)
					}
				}
			})
		}
	}
}

func runsIn(p passes.Pass, m graph.Mode) bool {
	for _, pm := range p.Modes {
		if pm == m {
			return true
		}
	}
	return false
}

// TestModelGradients checks the gradients of a whole model (fused and
// unfused, LoRA and full training) against finite differences.
func TestModelGradients(t *testing.T) {
	cases := []struct {
		name string
		arch string
		pc   passes.Config
	}{
		{"gpt2/fused", "gpt2", passes.Config{}},
		{"gpt2/unfused", "gpt2", passes.Config{Disable: map[string]bool{"FuseLoRA": true}}},
		{"llama/fused", "llama", passes.Config{}},
		{"llama/full", "llama", passes.Config{Full: true}},
		{"gpt2/full", "gpt2", passes.Config{Full: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyConfig(c.arch, 0.2)
			g := build(t, cfg, graph.Train, c.pc)
			rng := rand.New(rand.NewPCG(3, 9))
			env := randomEnv(g, rng, cfg.Model.Vocab)
			vals, err := interp.Run(g, env)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Grads) == 0 {
				t.Fatal("no gradients")
			}
			checked := 0
			for _, dv := range g.Grads {
				p := dv.GradOf
				data, grad := env.Params[p.Name], vals[dv]
				// A few elements of every trainable tensor keep the test fast.
				for range 3 {
					i := rng.IntN(len(data))
					num, err := interp.NumericGrad(g, env, p.Name, i, 1e-5)
					if err != nil {
						t.Fatal(err)
					}
					if d := math.Abs(num - grad[i]); d > 1e-7+1e-5*math.Abs(num) {
						t.Errorf("d loss / d %s[%d] = %g analytically, %g numerically", p.Name, i, grad[i], num)
					}
					checked++
				}
			}
			t.Logf("%d gradient elements of %d tensors checked", checked, len(g.Grads))
		})
	}
}

// TestFusedAndUnfusedGradientsAgree: FuseLoRA changes no number.
func TestFusedAndUnfusedGradientsAgree(t *testing.T) {
	cfg := tinyConfig("llama", 0.3)
	fused := build(t, cfg, graph.Train, passes.Config{})
	plain := build(t, cfg, graph.Train, passes.Config{Disable: map[string]bool{"FuseLoRA": true}})
	env := randomEnv(fused, rand.New(rand.NewPCG(5, 5)), cfg.Model.Vocab)
	fv, err := interp.Run(fused, env)
	if err != nil {
		t.Fatal(err)
	}
	pv, err := interp.Run(plain, env)
	if err != nil {
		t.Fatal(err)
	}
	nf := 0
	for _, n := range fused.Nodes {
		if n.Op == graph.OpLoRALinear || n.Op == graph.OpLoRALinearGrad {
			nf++
		}
		if n.Op == graph.OpLoRA || n.Op == graph.OpLoRAGrad {
			t.Errorf("unfused %s left in the fused graph", n)
		}
	}
	if nf != 2*len(cfg.LoRA[0].Modules)+2*len(cfg.LoRA[1].Modules) {
		t.Errorf("%d fused nodes, want forward and backward per adapter", nf)
	}
	for _, dv := range fused.Grads {
		other := plain.GradOf(plain.Param(dv.GradOf.Name).Param)
		if other == nil {
			t.Fatalf("the unfused graph has no gradient of %s", dv.GradOf.Name)
		}
		if e := relErr(fv[dv], pv[other]); e > 1e-12 {
			t.Errorf("gradient of %s: fused and unfused differ by %g", dv.GradOf.Name, e)
		}
	}
}

// TestLoRATrainingSkipsFrozenWork: no weight gradient, no gradient for any
// base parameter, and no backward work before the first adapted layer.
func TestLoRATrainingSkipsFrozenWork(t *testing.T) {
	cfg := tinyConfig("gpt2", 0)
	g := build(t, cfg, graph.Train, passes.Config{})
	for _, n := range g.Nodes {
		switch n.Op {
		case graph.OpLinearGradWeight, graph.OpEmbeddingGrad, graph.OpLayerNormGradParams, graph.OpRMSNormGradGain, graph.OpLinearGradBias:
			t.Errorf("%s computes a gradient of a frozen parameter", n)
		}
	}
	for _, dv := range g.Grads {
		if dv.GradOf.Role != graph.LoRA {
			t.Errorf("base parameter %s has a gradient", dv.GradOf.Name)
		}
	}
	want := 0
	for _, b := range cfg.LoRA {
		want += 2 * len(b.Modules)
	}
	if len(g.Grads) != want {
		t.Errorf("%d gradients, want %d (A and B per adapter)", len(g.Grads), want)
	}
}

// TestMemoryPlanNoOverlap: two activations share bytes only when their
// lifetimes are disjoint, and reuse makes the arena smaller than the sum.
func TestMemoryPlanNoOverlap(t *testing.T) {
	for _, arch := range []string{"gpt2", "llama"} {
		cfg := tinyConfig(arch, 0)
		g := build(t, cfg, graph.Train, passes.Config{})
		p := g.Plan
		first, last := map[*graph.Value]int{}, map[*graph.Value]int{}
		for i, n := range g.Nodes {
			for _, o := range n.Out {
				first[o], last[o] = i, i
			}
			for _, v := range n.In {
				last[v] = i
			}
		}
		for _, v := range g.Outputs {
			last[v] = len(g.Nodes)
		}
		type span struct {
			v         *graph.Value
			off, size int64
		}
		var spans []span
		for v, off := range p.Offsets {
			spans = append(spans, span{v, off, v.Bytes()})
			if off+v.Bytes() > p.ArenaBytes {
				t.Errorf("%s ends past the arena", v.Ref())
			}
		}
		for i := range spans {
			for j := i + 1; j < len(spans); j++ {
				a, b := spans[i], spans[j]
				bytes := a.off < b.off+b.size && b.off < a.off+a.size
				// A node's outputs are allocated while its inputs are live.
				time := first[a.v] <= last[b.v] && first[b.v] <= last[a.v]
				if bytes && time {
					t.Fatalf("%s: %s and %s overlap in memory and in time", arch, a.v.Ref(), b.v.Ref())
				}
			}
		}
		if p.ArenaBytes >= p.NaiveBytes {
			t.Errorf("%s: arena %d is not smaller than the naive %d", arch, p.ArenaBytes, p.NaiveBytes)
		}
	}
}

func TestMemTotal(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"MemTotal:       24683652 kB\nMemFree:  1 kB\n", 24683652 * 1024},
		{"MemFree: 1 kB\nMemTotal: 2 kB\n", 2048},
		{"MemTotal: 2 MB\n", 0},
		{"MemTotal: x kB\n", 0},
		{"", 0},
	} {
		if got := memTotal(c.in); got != c.want {
			t.Errorf("memTotal(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
