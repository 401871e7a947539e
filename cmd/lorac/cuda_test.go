package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/cuda"
)

func TestDeviceArg(t *testing.T) {
	for _, c := range []struct {
		in   []string
		dev  string
		rest []string
	}{
		{[]string{"--steps", "3"}, "", []string{"--steps", "3"}},
		{[]string{"--device", "cuda", "--steps", "3"}, "cuda", []string{"--steps", "3"}},
		{[]string{"--steps", "3", "--device=cpu"}, "cpu", []string{"--steps", "3"}},
	} {
		dev, rest, err := deviceArg(c.in)
		if err != nil || dev != c.dev || !slices.Equal(rest, c.rest) {
			t.Errorf("deviceArg(%q) = %q, %q, %v", c.in, dev, rest, err)
		}
	}
	for _, bad := range [][]string{{"--device"}, {"--device", "tpu"}} {
		if _, _, err := deviceArg(bad); !errors.Is(err, errUsage) {
			t.Errorf("deviceArg(%q) = %v, want a usage error", bad, err)
		}
	}
}

// TestBenchDeviceCUDA: bench --device cuda runs the compiled graphs on a
// GPU, or, without one, fails with the driver's error.
func TestBenchDeviceCUDA(t *testing.T) {
	model := writeFile(t, "m.lora", `model m {
  arch llama
  vocab 64
  context 16
  dim 32
  layers 1
  heads 4
  kv_heads 2
  ffn 48
}
lora { rank 4; alpha 8; targets q, v }
train { batch 2; seq 8; steps 1 }
`)
	code, out, errs := lorac(t, "bench", model, "--device", "cuda", "--steps", "1")
	if _, err := cuda.Devices(); err != nil {
		if code != 1 || !strings.Contains(errs, "no CUDA driver found") && !strings.Contains(errs, "cuda:") {
			t.Errorf("bench --device cuda without a GPU: exit %d, %q (want the driver's error; Devices says %v)", code, errs, err)
		}
	} else if code != 0 || !strings.Contains(out, "train step, LoRA") || !strings.Contains(out, "decode step") {
		t.Errorf("bench --device cuda: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := lorac(t, "bench", model, "--device", "tpu"); code != 2 || !strings.Contains(errs, "want cpu or cuda") {
		t.Errorf("bench --device tpu: exit %d, %q", code, errs)
	}
}

const deviceModel = `model m {
  arch llama
  vocab 256
  context 16
  dim 32
  layers 1
  heads 4
  kv_heads 2
  ffn 48
}
lora { rank 4; alpha 8; targets q, v }
train { batch 2; seq 8; steps 3 }
`

// TestDeviceCommands: train, generate, eval and merge --device cuda reach
// the device path with the GPU ordinal of --gpu (through the openDevice
// seam, so no GPU is needed); a graph with a kernel the device lacks is
// refused before the device is opened; commands without a device path
// and bad --gpu values are usage errors. The device path itself runs on
// the PTX simulator in runtime/cuda's TestSimDeviceCommands.
func TestDeviceCommands(t *testing.T) {
	model := writeFile(t, "m.lora", deviceModel)
	var opened []int
	defer func(f func(int) (*cuda.Device, error)) { openDevice = f }(openDevice)
	openDevice = func(gpu int) (*cuda.Device, error) {
		opened = append(opened, gpu)
		return nil, errors.New("test device: not opened")
	}
	for _, c := range []struct {
		args []string
		gpu  int
	}{
		{[]string{"train", model, "--device", "cuda", "--data", "d.txt", "--base", "b"}, 0},
		{[]string{"generate", model, "--device=cuda", "--gpu", "3", "--prompt", "hi"}, 3},
		{[]string{"eval", model, "--gpu=1", "--device", "cuda", "--tokens", "1", "--dump-logits", "x.safetensors"}, 1},
		{[]string{"merge", model, "--device", "cuda", "--base", "b", "--adapter", "a", "-o", "m.safetensors"}, 0},
	} {
		opened = nil
		code, out, errs := lorac(t, c.args...)
		if code != 1 || out != "" || errs != "lorac: "+c.args[0]+": test device: not opened\n" || len(opened) != 1 || opened[0] != c.gpu {
			t.Errorf("lorac %q: exit %d, stdout %q, stderr %q, opened %v; want exit 1, the device's error and GPU %d opened", c.args, code, out, errs, opened, c.gpu)
		}
	}
	// Help needs no device (nor Go): the flags with this model's defaults.
	opened = nil
	if code, out, errs := lorac(t, "train", model, "--device", "cuda", "--help"); code != 0 || errs != "" || !strings.Contains(out, "--gpu") || !strings.Contains(out, "unless given) (default 3)") || len(opened) != 0 {
		t.Errorf("train --device cuda --help: exit %d, stderr %q, opened %v\n%s", code, errs, opened, out)
	}
	opened = nil
	cuda.NotOnDevice["Embedding"] = "not on the device in this test"
	code, _, errs := lorac(t, "train", model, "--device", "cuda", "--data", "d.txt", "--base", "b")
	delete(cuda.NotOnDevice, "Embedding")
	if code != 1 || !strings.Contains(errs, "cannot run on the CUDA device") || !strings.Contains(errs, "not on the device in this test") || len(opened) != 0 {
		t.Errorf("a graph the device cannot run: exit %d, %q, opened %v; want exit 1, the reason, and no device opened", code, errs, opened)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", model, "--device", "cuda"}, "lorac: serve: lorac serve runs on the CPU; --device cuda is for train, generate, eval, merge, bench"},
		{[]string{"train", model, "--device", "cuda", "--gpu", "x"}, `lorac: train: --gpu "x": want a GPU ordinal`},
		{[]string{"generate", model, "--device", "cuda", "--gpu=-2"}, `lorac: generate: --gpu "-2": want a GPU ordinal`},
	} {
		opened = nil
		if code, _, errs := lorac(t, c.args...); code != 2 || !strings.HasPrefix(errs, c.want) || len(opened) != 0 {
			t.Errorf("lorac %q: exit %d, %q, opened %v; want exit 2 and %q", c.args, code, errs, opened, c.want)
		}
	}
}

// TestDeviceNoDriver: without a CUDA driver, --device cuda fails with
// exit 1 and the driver's message, never a crash. Skipped where a driver
// loads (a GPU machine).
func TestDeviceNoDriver(t *testing.T) {
	if _, err := cuda.Devices(); !errors.Is(err, cuda.ErrNoDriver) {
		t.Skipf("a CUDA driver is present (%v); this checks the error without one", err)
	}
	model := writeFile(t, "m.lora", deviceModel)
	for _, cmd := range [][]string{
		{"train", model, "--device", "cuda", "--data", "d.txt", "--base", "b"},
		{"generate", model, "--device", "cuda", "--prompt", "hi"},
	} {
		code, out, errs := lorac(t, cmd...)
		if code != 1 || out != "" || !strings.HasPrefix(errs, "lorac: "+cmd[0]+": no CUDA driver found: ") {
			t.Errorf("lorac %q without a driver: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
		}
	}
}
