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
// GPU, or, without one, fails with the driver's error; the other commands
// say the device path is not built.
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
	if code, _, errs := lorac(t, "train", model, "--device", "cuda"); code != 2 || !strings.Contains(errs, "not built yet") {
		t.Errorf("train --device cuda: exit %d, %q", code, errs)
	}
	if code, _, errs := lorac(t, "bench", model, "--device", "tpu"); code != 2 || !strings.Contains(errs, "want cpu or cuda") {
		t.Errorf("bench --device tpu: exit %d, %q", code, errs)
	}
}
