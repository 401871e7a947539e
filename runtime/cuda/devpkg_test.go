package cuda_test

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/device"
	"lorac.dev/lorac/internal/gen/gpt2cuda"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/engine"
)

// TestSimNewDevice runs a generated package's own device path — the
// NewDevice of internal/gen/gpt2cuda's cuda.go, what NewCUDA calls, on
// the PTX simulator — against the same package's New on the CPU:
// training steps (losses and the adapter after them within the device
// path's tolerances, the parameter fields viewing the synced stores), an
// adapter saved from the device and loaded on the CPU, greedy generation,
// and Forward after Merge. The rows and prefill graphs are refused by
// name, and after Close every call fails cleanly.
func TestSimNewDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	dev, err := gpt2cuda.NewDevice(device.Options{Open: func(int) (*cuda.Device, error) { return cuda.OpenSimulator() }})
	if err != nil {
		t.Fatal(err)
	}
	checkNewDevice(t, dev, simTol)
}

// TestGPUNewCUDA is TestSimNewDevice through NewCUDA on GPU 0; it skips
// without one.
func TestGPUNewCUDA(t *testing.T) {
	if _, err := cuda.Open(0); err != nil {
		t.Skipf("no GPU to run on: %v", err)
	}
	dev, err := gpt2cuda.NewCUDA(0)
	if err != nil {
		t.Fatal(err)
	}
	checkNewDevice(t, dev, gpuTol)
}

func checkNewDevice(t *testing.T, dev *gpt2cuda.Model, tl tolerance) {
	closed := false
	t.Cleanup(func() {
		if !closed {
			dev.Close()
		}
	})
	if dev.Spec != gpt2cuda.Spec {
		t.Error("the device model does not carry the package's Spec")
	}
	if d := device.Describe(dev.Core); d == "" {
		t.Error("Describe names no device")
	} else {
		t.Logf("device: %s", d)
	}
	cpu := gpt2cuda.New()
	for _, m := range []*gpt2cuda.Model{cpu, dev} {
		m.InitBase(1)
		m.InitAdapter(2)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for step := range 3 {
		tokens, targets := batch(rng, gpt2cuda.Batch*gpt2cuda.Seq, gpt2cuda.Vocab)
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
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	e := maxRelErr(dev.LoRA, cpu.LoRA)
	t.Logf("adapter after 3 steps: max difference %.2g of the largest value", e)
	if e > tl.adapter {
		t.Errorf("adapter after 3 steps: max difference %.3g of the largest value, want ≤ %g", e, tl.adapter)
	}
	if slices.Equal(dev.H0AttnCAttnLoraBWeight, make([]float32, len(dev.H0AttnCAttnLoraBWeight))) ||
		&dev.H0AttnCAttnLoraBWeight[0] != &dev.LoRA[gpt2cuda.Spec.Adapters[0].BOffset] ||
		maxRelErr(dev.H1AttnCProjLoraAWeight, cpu.H1AttnCProjLoraAWeight) > tl.adapter {
		t.Error("the device model's parameter fields do not view its synced adapter")
	}
	// The adapter saved from the device loads on the CPU, exactly.
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := dev.SaveAdapter(dir); err != nil {
		t.Fatal(err)
	}
	back := gpt2cuda.New()
	if err := back.LoadAdapter(dir); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.LoRA, dev.LoRA) {
		t.Error("the adapter saved from the device does not load back exactly")
	}
	// Greedy generation, then Forward on merged weights.
	prompt := []int32{5, 77, 200, 31}
	greedy := engine.Sampler{}
	want, err := cpu.Generate(prompt, 6, greedy, engine.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dev.Generate(prompt, 6, greedy, engine.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("greedy generation: %v on the device, %v on the CPU", got, want)
	}
	wantLogits, err := cpu.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits = slices.Clone(wantLogits)
	if err := dev.Merge(); err != nil {
		t.Fatal(err)
	}
	merged, err := dev.Forward(prompt)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(merged, wantLogits); e > tl.loss {
		t.Errorf("Forward after Merge on the device: max difference %.3g of the largest logit from the CPU's adapted Forward", e)
	}
	if err := dev.Unmerge(); err != nil {
		t.Fatal(err)
	}
	// lorac serve's graphs stay on the CPU: refused by name, no crash.
	if _, err := dev.DecodeRows(make([]int32, 8), make([]int32, 8), make([][]float32, 8)); err == nil || !strings.Contains(err.Error(), "DecodeRows") {
		t.Errorf("DecodeRows on the device: %v", err)
	}
	if _, err := dev.PrefillRows(0, prompt, 0, nil); err == nil || !strings.Contains(err.Error(), "PrefillRows") {
		t.Errorf("PrefillRows on the device: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := dev.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	tokens, targets := batch(rng, gpt2cuda.Batch*gpt2cuda.Seq, gpt2cuda.Vocab)
	if _, err := dev.TrainStep(tokens, targets); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("TrainStep after Close: %v", err)
	}
	if _, err := dev.Forward(prompt); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Forward after Close: %v", err)
	}
}
