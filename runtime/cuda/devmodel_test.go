package cuda_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/devexec"
	"lorac.dev/lorac/internal/devmodel"
	"lorac.dev/lorac/internal/gen/gpt2"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
)

// Tolerances of the device path against the CPU's generated code: float32
// kernels that sum in other orders, through a few AdamW steps whose first
// updates are ±lr whatever the gradient's size (so a rounding-level
// difference in a tiny gradient can move a weight by up to lr). On the
// simulator (IEEE float32, exp2 exact to rounding) losses agree to about
// 1e-6 relative and adapters to about 1e-6 of their largest value; a GPU
// computes exp2, sin and cos with its approximate instructions, so its
// bound is looser.
type tolerance struct {
	loss    float64 // relative, also of logits and the gradient norm
	adapter float64 // of the largest value
}

var (
	simTol = tolerance{loss: 1e-4, adapter: 1e-4}
	gpuTol = tolerance{loss: 1e-3, adapter: 2e-3}
)

// deviceCore opens the device with open and returns a Core on it for the
// model of internal/gen/NAME.lora.
func deviceCore(t *testing.T, open func() (*cuda.Device, error), name string) *engine.Core {
	t.Helper()
	cfg, err := compile.Load(filepath.Join("../../internal/gen", name+".lora"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := compile.Spec(cfg, name, name+".lora")
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
	e, spec, err := devmodel.New(l, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("closing the executor: %v", err)
		}
		l.Release()
	})
	return engine.NewCoreOn(spec, e)
}

func relErr(a, b float32) float64 {
	return math.Abs(float64(a)-float64(b)) / math.Max(math.Abs(float64(b)), 1e-6)
}

// maxRelErr is the largest difference of got and want over want's
// largest magnitude.
func maxRelErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-30)
}

func batch(rng *rand.Rand, n, vocab int) (tokens, targets []int32) {
	tokens, targets = make([]int32, n), make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(vocab))
		targets[i] = int32(rng.IntN(vocab))
		if i%7 == 3 {
			targets[i] = kern.IgnoreTarget
		}
	}
	return tokens, targets
}

// TestSimDeviceCore drives the device path's Core (the executor on the PTX
// simulator) and the generated package's Core on the CPU through the same
// calls on the GPT-2 test model (dropout, Conv1D, two lora blocks):
// training steps with AdamW, weight decay, a warmup and cosine schedule
// and gradient clipping; a gradient-accumulation step; evaluation with and
// without the adapter; forward logits; greedy generation; merge and an
// exact unmerge. Losses, adapters and logits agree within the tolerances
// above, and the greedy tokens are the same.
func TestSimDeviceCore(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	checkDeviceCore(t, cuda.OpenSimulator, simTol)
}

// TestGPUDeviceCore is TestSimDeviceCore on GPU 0; it skips without one.
func TestGPUDeviceCore(t *testing.T) {
	if _, err := cuda.Open(0); err != nil {
		t.Skipf("no GPU to run on: %v", err)
	}
	checkDeviceCore(t, func() (*cuda.Device, error) { return cuda.Open(0) }, gpuTol)
}

func checkDeviceCore(t *testing.T, open func() (*cuda.Device, error), tl tolerance) {
	cpu := gpt2.New().State()
	dev := deviceCore(t, open, "gpt2")
	for _, c := range []*engine.Core{cpu, dev} {
		ms := *c.Spec
		ms.Train.Clip, ms.Train.WeightDecay, ms.Train.Warmup, ms.Train.Schedule = 0.05, 0.01, 2, "cosine"
		c.Spec = &ms
		c.InitBase(1)
		c.InitAdapter(2)
	}
	B, T, V := cpu.Spec.Train.Batch, cpu.Spec.Train.Seq, cpu.Spec.Vocab
	rng := rand.New(rand.NewPCG(3, 4))
	for step := range 3 {
		tokens, targets := batch(rng, B*T, V)
		want, err := cpu.TrainStep(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.TrainStep(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d: loss %.7f on the device, %.7f on the CPU", step, got, want)
		if relErr(got, want) > tl.loss {
			t.Errorf("step %d: loss %v on the device, %v on the CPU", step, got, want)
		}
	}
	// One step of two micro-batches, its gradients clipped.
	var norms []float64
	for _, c := range []*engine.Core{cpu, dev} {
		r := rand.New(rand.NewPCG(5, 6))
		for k := range 2 {
			tokens, targets := batch(r, B*T, V)
			if _, err := c.Accumulate(tokens, targets, 0.5, k, false); err != nil {
				t.Fatal(err)
			}
		}
		norm, err := c.ApplyGradients(false)
		if err != nil {
			t.Fatal(err)
		}
		norms = append(norms, norm)
	}
	if math.Abs(norms[1]-norms[0]) > tl.loss*norms[0] || norms[0] <= cpu.Spec.Train.Clip {
		t.Errorf("gradient norm %v on the device, %v on the CPU (want equal, above the clip %v)", norms[1], norms[0], cpu.Spec.Train.Clip)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.Opt.Step != cpu.Opt.Step || dev.Opt.Step != 4 {
		t.Errorf("optimizer steps: %d on the device, %d on the CPU, want 4", dev.Opt.Step, cpu.Opt.Step)
	}
	e := maxRelErr(dev.LoRA, cpu.LoRA)
	t.Logf("adapter after 4 steps: max difference %.2g of the largest value", e)
	if e > tl.adapter {
		t.Errorf("adapter after 4 steps: max difference %.3g of the largest value, want ≤ %g", e, tl.adapter)
	}
	if e := maxRelErr(dev.Opt.V, cpu.Opt.V); e > 1e-3 {
		t.Errorf("AdamW second moments: max difference %.3g of the largest value", e)
	}
	// Evaluation, adapter on and detached.
	tokens, targets := batch(rng, B*T, V)
	for _, detach := range []bool{false, true} {
		for _, c := range []*engine.Core{cpu, dev} {
			if detach {
				c.Detach()
			} else {
				c.Attach()
			}
		}
		want, err := cpu.Eval(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.Eval(tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		if relErr(got, want) > tl.loss {
			t.Errorf("eval (detached %t): %v on the device, %v on the CPU", detach, got, want)
		}
	}
	cpu.Attach()
	dev.Attach()
	// Forward logits and greedy generation.
	prompt := []int32{5, 77, 200, 31}
	wantLogits, err := cpu.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits = slices.Clone(wantLogits)
	gotLogits, err := dev.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(gotLogits, wantLogits); e > tl.loss {
		t.Errorf("forward logits: max difference %.3g of the largest", e)
	}
	greedy := engine.Sampler{}
	want, err := cpu.Generate(prompt, 8, greedy, engine.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dev.Generate(prompt, 8, greedy, engine.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("greedy generation: %v on the device, %v on the CPU", got, want)
	}
	// Merge on the device: the base graphs on merged weights give the
	// adapted logits; unmerge restores the base bit for bit.
	before := slices.Clone(dev.Base)
	if err := dev.Merge(); err != nil {
		t.Fatal(err)
	}
	merged, err := dev.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(merged, wantLogits); e > tl.loss {
		t.Errorf("merged logits: max difference %.3g of the largest", e)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(dev.Base, before) {
		t.Error("merging changed no base weight")
	}
	if err := dev.Unmerge(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dev.Base, before) {
		t.Error("unmerge did not restore the base exactly")
	}
	// Training the base (--full): its gradients and moments on the device,
	// a fresh optimizer for the other store, as on the CPU.
	tokens, targets = batch(rng, B*T, V)
	wantFull, err := cpu.TrainStepFull(tokens, targets)
	if err != nil {
		t.Fatal(err)
	}
	gotFull, err := dev.TrainStepFull(tokens, targets)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(gotFull, wantFull) > tl.loss {
		t.Errorf("full training step: loss %v on the device, %v on the CPU", gotFull, wantFull)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(dev.Base, cpu.Base); e > tl.adapter || dev.Opt.Step != 1 || cpu.Opt.Step != 1 {
		t.Errorf("base after a full step: max difference %.3g of the largest value, steps %d and %d", e, dev.Opt.Step, cpu.Opt.Step)
	}
}

// TestSimSetInputs: a prepared run takes new id inputs only when every id
// is in range and every input is the graph's, with its size; a bad batch
// is refused before anything is uploaded, and the run still steps.
func TestSimSetInputs(t *testing.T) {
	cfg, err := compile.Load("../../internal/gen/gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	s, err := compile.Spec(cfg, "gpt2", "gpt2.lora")
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
	g := s.DecodeBase
	r, err := devexec.Prepare(l, g, devexec.RandomEnv(g, rand.New(rand.NewPCG(1, 1)), cfg.Model.Vocab))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	for _, bad := range []map[string][]int32{
		{"tokens": {256}},
		{"tokens": {3}, "pos": {16}},
		{"tokens": {1, 2}},
		{"targets": {1}},
	} {
		if err := r.SetInputs(bad); err == nil {
			t.Errorf("SetInputs(%v) accepted", bad)
		}
	}
	if err := r.SetInputs(map[string][]int32{"tokens": {7}, "pos": {2}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Step(); err != nil {
		t.Fatal(err)
	}
}
