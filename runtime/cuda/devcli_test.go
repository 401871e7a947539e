package cuda_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/internal/devmodel"
	"lorac.dev/lorac/internal/gen/gpt2"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/format"
)

// TestSimDeviceCommands runs lorac train, eval, generate and merge
// --device cuda as the lorac command runs them (devmodel.Run, the device
// opened through its seam as the PTX simulator) on the GPT-2 test model,
// and the same commands on the CPU through the generated package:
//
//   - a run stopped after 2 of 3 steps and resumed from its checkpoint
//     writes the same adapter, moments and trainer state, byte for byte,
//     as an uninterrupted run;
//   - the device run writes the CPU run's files (same names, tensors and
//     shapes), with losses and adapter within the tolerances;
//   - a checkpoint the CPU wrote resumes on the device;
//   - eval's loss agrees, generate's greedy text is the same, and the
//     merged weights agree.
func TestSimDeviceCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	checkDeviceCommands(t, cuda.OpenSimulator, simTol)
}

// TestGPUDeviceCommands is TestSimDeviceCommands on GPU 0; it skips
// without one.
func TestGPUDeviceCommands(t *testing.T) {
	if _, err := cuda.Open(0); err != nil {
		t.Skipf("no GPU to run on: %v", err)
	}
	checkDeviceCommands(t, func() (*cuda.Device, error) { return cuda.Open(0) }, gpuTol)
}

func checkDeviceCommands(t *testing.T, open func() (*cuda.Device, error), tl tolerance) {
	dir := t.TempDir()
	file := "../../internal/gen/gpt2.lora"
	base := filepath.Join(dir, "base", "model.safetensors")
	m := gpt2.New()
	m.InitBase(7)
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveBase(base); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 24)), 0o644); err != nil {
		t.Fatal(err)
	}
	device := func(cmd string, args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		code, err := devmodel.Run(file, cmd, append([]string{"--device", "cuda"}, args...), open, &out, &errs)
		if err != nil || code != 0 {
			t.Fatalf("%s --device cuda %q: exit %d, %v\n%s", cmd, args, code, err, errs.String())
		}
		return out.String()
	}
	host := func(cmd string, args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		if code := driver.Main(gpt2.New(), append([]string{cmd}, args...), &out, &errs); code != 0 {
			t.Fatalf("%s %q on the CPU: exit %d\n%s", cmd, args, code, errs.String())
		}
		return out.String()
	}
	train := func(out string, extra ...string) []string {
		return append([]string{"--data", data, "--base", base, "--steps", "3", "--eval-every", "2", "--eval-batches", "1", "--out", filepath.Join(dir, out)}, extra...)
	}

	device("train", train("whole")...)
	driver.StopAfter = 2
	defer func() { driver.StopAfter = 0 }()
	device("train", train("resumed")...)
	driver.StopAfter = 0
	device("train", train("resumed", "--resume")...)
	host("train", train("cpu")...)

	for _, f := range []string{format.PEFTWeightsFile, format.PEFTConfigFile, "checkpoint/optimizer.safetensors", "checkpoint/trainer_state.json", "checkpoint/" + format.PEFTWeightsFile} {
		a, errA := os.ReadFile(filepath.Join(dir, "whole", f))
		b, errB := os.ReadFile(filepath.Join(dir, "resumed", f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", f, errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the resumed run's differs from the uninterrupted run's", f)
		}
		c, err := os.ReadFile(filepath.Join(dir, "cpu", f))
		if err != nil {
			t.Errorf("the CPU run wrote no %s: %v", f, err)
		} else if len(c) != len(a) && strings.HasSuffix(f, ".safetensors") {
			t.Errorf("%s: %d bytes on the device, %d on the CPU (the same tensors must give the same size)", f, len(a), len(c))
		}
	}
	type state struct {
		Step      int       `json:"step"`
		TrainLoss []float64 `json:"train_loss"`
		ValLoss   []float64 `json:"val_loss"`
	}
	read := func(run string) state {
		var s state
		b, err := os.ReadFile(filepath.Join(dir, run, "checkpoint", "trainer_state.json"))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gs, ws := read("whole"), read("cpu")
	if gs.Step != 3 || len(gs.TrainLoss) != 3 || len(gs.ValLoss) != len(ws.ValLoss) {
		t.Fatalf("device trainer state %+v, CPU %+v", gs, ws)
	}
	for i := range ws.TrainLoss {
		if relErr(float32(gs.TrainLoss[i]), float32(ws.TrainLoss[i])) > tl.loss {
			t.Errorf("train loss %d: %v on the device, %v on the CPU", i, gs.TrainLoss[i], ws.TrainLoss[i])
		}
	}
	for i := range ws.ValLoss {
		if relErr(float32(gs.ValLoss[i]), float32(ws.ValLoss[i])) > tl.loss {
			t.Errorf("validation loss %d: %v on the device, %v on the CPU", i, gs.ValLoss[i], ws.ValLoss[i])
		}
	}
	ga, err := format.ReadPEFT(filepath.Join(dir, "whole"))
	if err != nil {
		t.Fatal(err)
	}
	wa, err := format.ReadPEFT(filepath.Join(dir, "cpu"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want []float32
	for i := range wa.Modules {
		got = append(append(got, ga.Modules[i].A...), ga.Modules[i].B...)
		want = append(append(want, wa.Modules[i].A...), wa.Modules[i].B...)
	}
	if len(got) != len(want) {
		t.Fatalf("adapter: %d values on the device, %d on the CPU", len(got), len(want))
	}
	if e := maxRelErr(got, want); e > tl.adapter {
		t.Errorf("trained adapter: max difference %.3g of the largest value", e)
	} else {
		t.Logf("trained adapter: max difference %.2g of the largest value", e)
	}

	// The formats are the same both ways: the CPU's checkpoint resumes on
	// the device, one more step, as it resumes on the CPU.
	if err := os.CopyFS(filepath.Join(dir, "cpu2dev"), os.DirFS(filepath.Join(dir, "cpu"))); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "cpu2dev", ".lorac.lock"))
	device("train", train("cpu2dev", "--resume", "--steps", "4")...)
	host("train", train("cpu", "--resume", "--steps", "4")...)
	gs, ws = read("cpu2dev"), read("cpu")
	if gs.Step != 4 || ws.Step != 4 || relErr(float32(gs.TrainLoss[3]), float32(ws.TrainLoss[3])) > tl.loss {
		t.Errorf("the CPU's checkpoint resumed on the device: step %d, losses %v; on the CPU: step %d, %v", gs.Step, gs.TrainLoss, ws.Step, ws.TrainLoss)
	}

	adapter := filepath.Join(dir, "whole")
	// eval scores every full batch: a short text keeps the simulator's
	// share small (two batches).
	short := filepath.Join(dir, "short.txt")
	if err := os.WriteFile(short, []byte("the quick brown fox jumps over the lazy dog"), 0o644); err != nil {
		t.Fatal(err)
	}
	var gl, wl float32
	gotEval, wantEval := device("eval", "--base", base, "--adapter", adapter, "--data", short), host("eval", "--base", base, "--adapter", adapter, "--data", short)
	if _, err := fmt.Sscanf(gotEval, "loss %g", &gl); err != nil {
		t.Fatalf("eval --device cuda printed %q", gotEval)
	}
	if _, err := fmt.Sscanf(wantEval, "loss %g", &wl); err != nil {
		t.Fatalf("eval printed %q", wantEval)
	}
	if relErr(gl, wl) > 1e-3 { // printed to 4 decimals
		t.Errorf("eval: %q on the device, %q on the CPU", gotEval, wantEval)
	}
	gen := []string{"--base", base, "--adapter", adapter, "--prompt", "the", "--tokens", "4", "--temperature", "0"}
	if g, w := device("generate", gen...), host("generate", gen...); g != w {
		t.Errorf("greedy generate: %q on the device, %q on the CPU", g, w)
	}
	device("merge", "--base", base, "--adapter", adapter, "-o", filepath.Join(dir, "merged-dev.safetensors"))
	host("merge", "--base", base, "--adapter", adapter, "-o", filepath.Join(dir, "merged-cpu.safetensors"))
	a, b := gpt2.New(), gpt2.New()
	if err := a.LoadBase(filepath.Join(dir, "merged-dev.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := b.LoadBase(filepath.Join(dir, "merged-cpu.safetensors")); err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(a.Base, b.Base); e > 1e-6 {
		t.Errorf("merged weights: max difference %.3g of the largest", e)
	}
}
