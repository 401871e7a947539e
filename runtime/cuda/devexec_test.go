package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/devexec"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/runtime/cuda"
)

// TestSimModels runs whole compiled graphs of the three small test models
// (internal/gen's GPT-2 with dropout and biases, LLaMA with RMSNorm, RoPE,
// SwiGLU and grouped-query attention, and llamaplus with every feature of
// the model families: llama3 RoPE scaling, sliding windows, per-head q/k
// norms, (1 + w) norms, scaled embeddings, its own attention scale,
// soft-capped scores and logits) on the PTX simulator through
// devexec, and compares every output — the loss and all adapter gradients
// of a LoRA training step, the logits of a forward pass, a decode step's
// logits and updated KV caches — with the reference interpreter.
func TestSimModels(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	checkModels(t, cuda.OpenSimulator)
}

// TestGPUModels is TestSimModels on GPU 0; it skips without one.
func TestGPUModels(t *testing.T) {
	if _, err := cuda.Open(0); err != nil {
		t.Skipf("no GPU to run on: %v", err)
	}
	checkModels(t, func() (*cuda.Device, error) { return cuda.Open(0) })
}

func checkModels(t *testing.T, open func() (*cuda.Device, error)) {
	for _, name := range []string{"gpt2", "llama", "llamaplus"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := compile.Load(filepath.Join("../../internal/gen", name+".lora"))
			if err != nil {
				t.Fatal(err)
			}
			spec, err := compile.Spec(cfg, name, name+".lora")
			if err != nil {
				t.Fatal(err)
			}
			d, err := open()
			if err != nil {
				t.Fatal(err)
			}
			l, err := d.Lorac()
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			rng := rand.New(rand.NewPCG(1, 2))
			for _, c := range []struct {
				name string
				g    *graph.Graph
			}{{"TrainLoRA", spec.TrainLoRA}, {"TrainFull", spec.TrainFull}, {"ForwardLoRA", spec.ForwardLoRA}, {"DecodeLoRA", spec.DecodeLoRA},
				{"DecodeRows", spec.DecodeRows}} {
				env := randomEnv(c.g, rng, cfg.Model.Vocab)
				compareRun(t, l, name+" "+c.name, c.g, env)
			}
		})
	}
}

func randomEnv(g *graph.Graph, rng *rand.Rand, vocab int) devexec.Env {
	env := devexec.Env{Params: map[string][]float32{}, Inputs: map[string][]int32{}, State: map[string][]float32{}, Step: 3}
	for _, v := range g.Params {
		data := make([]float32, v.Shape.Numel())
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.3)
			if v.Param.Init == graph.InitOnes {
				data[i] += 1
			}
		}
		env.Params[v.Param.Name] = data
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			data := make([]float32, v.Shape.Numel())
			for i := range data {
				data[i] = float32(rng.NormFloat64())
			}
			env.State[v.Name] = data
			continue
		}
		data := make([]int32, v.Shape.Numel())
		for i := range data {
			switch v.Name {
			case "pos":
				if len(v.Shape) == 1 {
					data[i] = int32(rng.IntN(4))
				} else {
					data[i] = int32(i % v.Shape[len(v.Shape)-1])
				}
			default:
				data[i] = int32(rng.IntN(vocab))
			}
		}
		env.Inputs[v.Name] = data
	}
	if g.RowAdapters {
		// Rows 0, 3, 6 … run adapter A, rows 1, 4, 7 … adapter B, the rest
		// the base alone; each adapter has its own random A and B.
		var names []string
		rows := 0
		for _, n := range g.Nodes {
			if n.Op == graph.OpLoRALinearRows {
				names = append(names, n.In[2].Param.Name, n.In[3].Param.Name)
				rows = n.In[0].Shape.Rows()
			}
		}
		adapters := [2]map[string][]float32{{}, {}}
		for _, ad := range adapters {
			for _, name := range names {
				data := make([]float32, len(env.Params[name]))
				for i := range data {
					data[i] = float32(rng.NormFloat64() * 0.3)
				}
				ad[name] = data
			}
		}
		// Rows on one adapter, on the base alone, and on a weighted mix.
		for r := range rows {
			switch r % 4 {
			case 0, 1:
				env.Branches = append(env.Branches, interp.Branch[float32]{Row: r, Weight: 1, Params: adapters[r%4]})
			case 2:
				env.Branches = append(env.Branches, interp.Branch[float32]{Row: r, Weight: 0.6, Params: adapters[0]},
					interp.Branch[float32]{Row: r, Weight: -0.3, Params: adapters[1]})
			}
		}
	}
	return env
}

func compareRun(t *testing.T, l *cuda.Lorac, name string, g *graph.Graph, env devexec.Env) {
	t.Helper()
	// The interpreter updates state in place: give it copies.
	ienv := interp.Env[float32]{Params: env.Params, Inputs: env.Inputs, State: map[string][]float32{}, Step: env.Step, RowParams: env.RowParams, Branches: env.Branches}
	for k, v := range env.State {
		ienv.State[k] = append([]float32(nil), v...)
	}
	want, err := interp.Run(g, ienv)
	if err != nil {
		t.Fatal(err)
	}
	run, err := devexec.Execute(l, g, env)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer run.Free()
	if g.Plan != nil && g.Plan.ArenaBytes > 0 && run.ArenaBytes() == 0 {
		t.Errorf("%s: the memory plan's arena is not on the device", name)
	}
	check := func(what string, v *graph.Value, ref []float32) {
		got, err := run.Value(v)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		var scale float64
		for i := range ref {
			scale = math.Max(scale, math.Abs(float64(ref[i])))
		}
		for i := range ref {
			worst = math.Max(worst, math.Abs(float64(got[i])-float64(ref[i])))
		}
		if testing.Verbose() {
			t.Logf("%s %s: max error %.3g (values up to %.3g)", name, what, worst, scale)
		}
		// float32 kernels against float64-accumulating references through a
		// whole backward pass: layer 0's query and key adapter gradients
		// (through RoPE and attention backward) drift to about 1.5e-4 of
		// their largest value; a wrong kernel is off by 1e-2 or more.
		if !(worst <= 5e-4*math.Max(scale, 1e-3)) {
			t.Errorf("%s %s: max error %.3g (values up to %.3g)", name, what, worst, scale)
		}
	}
	for i, o := range g.Outputs {
		check(fmt.Sprintf("output %d (%s)", i, o.Ref()), o, want[o])
	}
	for i, gv := range g.Grads {
		if gv != nil {
			check(fmt.Sprintf("gradient %d (%s)", i, gv.Ref()), gv, want[gv])
		}
	}
	if g.Mode == graph.Train && len(g.Grads) == 0 {
		t.Errorf("%s: a training graph without gradients", name)
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			check("state "+v.Name, v, ienv.State[v.Name])
		}
	}
	if len(g.Outputs) == 0 {
		t.Errorf("%s has no outputs", name)
	}
}

// TestSimTime: devexec.Time, what lorac bench --device cuda measures — a
// training step with AdamW on every trainable parameter, repeated; a decode
// step — runs on the simulator and leaves the host's parameters alone.
func TestSimTime(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	cfg, err := compile.Load("../../internal/gen/gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := compile.Spec(cfg, "gpt2", "gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	d, err := cuda.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	g := spec.TrainLoRA
	env := devexec.RandomEnv(g, rand.New(rand.NewPCG(5, 6)), cfg.Model.Vocab)
	before := map[string][]float32{}
	for k, v := range env.Params {
		before[k] = append([]float32(nil), v...)
	}
	ms, err := devexec.Time(l, g, env, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !(ms > 0) {
		t.Errorf("Time = %v ms", ms)
	}
	// Time works on device copies; the host parameters are untouched.
	for k, v := range env.Params {
		for i := range v {
			if v[i] != before[k][i] {
				t.Fatalf("Time changed the host copy of %s", k)
			}
		}
	}
	if _, err := devexec.Time(l, spec.DecodeLoRA, devexec.RandomEnv(spec.DecodeLoRA, rand.New(rand.NewPCG(1, 1)), cfg.Model.Vocab), false, 1); err != nil {
		t.Fatal(err)
	}
}

// TestSimSetStep: the dropout masks a prepared run makes on the device
// follow SetStep: a LoRA training step of the GPT-2 test model (dropout
// 0.2) prepared at step 3 and moved to step 8 matches the interpreter at
// step 8 — its loss and every adapter gradient — and its loss is not
// step 3's, so the masks did change. Moving back to step 3 restores step
// 3's loss exactly.
func TestSimSetStep(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	cfg, err := compile.Load("../../internal/gen/gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := compile.Spec(cfg, "gpt2", "gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	d, err := cuda.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	g := spec.TrainLoRA
	if !g.Dropout {
		t.Fatal("the GPT-2 test model's training graph has no dropout")
	}
	env := randomEnv(g, rand.New(rand.NewPCG(11, 12)), cfg.Model.Vocab)
	ref := func(step uint64) map[*graph.Value][]float32 {
		out, err := interp.Run(g, interp.Env[float32]{Params: env.Params, Inputs: env.Inputs, State: map[string][]float32{}, Step: step})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want3, want8 := ref(3), ref(8)
	loss := g.Outputs[0]
	if want3[loss][0] == want8[loss][0] {
		t.Fatal("steps 3 and 8 give the same reference loss: the test would not see the masks")
	}
	env.Step = 3
	run, err := devexec.Prepare(l, g, env)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Free()
	step := func(s uint64) float32 {
		if err := run.SetStep(s); err != nil {
			t.Fatal(err)
		}
		if err := run.Step(); err != nil {
			t.Fatal(err)
		}
		got, err := run.Value(loss)
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	loss3 := step(3)
	got8 := step(8)
	near := func(what string, got, want float32, scale float64) bool {
		if d := math.Abs(float64(got) - float64(want)); !(d <= 5e-4*math.Max(scale, 1e-3)) {
			t.Errorf("%s: device %v, interpreter %v", what, got, want)
			return false
		}
		return true
	}
	near("loss at step 3", loss3, want3[loss][0], math.Abs(float64(want3[loss][0])))
	near("loss at step 8", got8, want8[loss][0], math.Abs(float64(want8[loss][0])))
	if math.Abs(float64(got8-want3[loss][0])) < 1e-4*math.Abs(float64(want3[loss][0])) {
		t.Errorf("loss at step 8 (%v) is step 3's (%v): SetStep did not remake the masks", got8, want3[loss][0])
	}
	grads := 0
	for _, gv := range g.Grads {
		if gv == nil {
			continue
		}
		got, err := run.Value(gv)
		if err != nil {
			t.Fatal(err)
		}
		var scale float64
		for _, x := range want8[gv] {
			scale = math.Max(scale, math.Abs(float64(x)))
		}
		for i := range got {
			if !near(fmt.Sprintf("gradient %s[%d] at step 8", gv.Ref(), i), got[i], want8[gv][i], scale) {
				break
			}
		}
		grads++
	}
	if grads == 0 {
		t.Error("no adapter gradients compared")
	}
	if again := step(3); math.Float32bits(again) != math.Float32bits(loss3) {
		t.Errorf("back at step 3 the loss is %v, was %v", again, loss3)
	}
}
