package device_test

import (
	"errors"
	"strings"
	"testing"

	"lorac.dev/lorac/device"
	"lorac.dev/lorac/internal/gen/gpt2cuda"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/engine"
)

// noOpen is an Options.Open that fails the test: for errors that must come
// before the device is opened.
func noOpen(t *testing.T) func(int) (*cuda.Device, error) {
	return func(gpu int) (*cuda.Device, error) {
		t.Errorf("the device (GPU %d) was opened", gpu)
		return nil, errors.New("opened")
	}
}

// TestNoDriver: without a CUDA driver, Open and the generated NewCUDA
// fail with the driver's error, never a crash. Skipped where a driver
// loads (a GPU machine).
func TestNoDriver(t *testing.T) {
	if _, err := cuda.Devices(); !errors.Is(err, cuda.ErrNoDriver) {
		t.Skipf("a CUDA driver is present (%v); this checks the error without one", err)
	}
	if _, err := device.Open([]byte(gpt2cuda.LoraSource), device.Options{}); !errors.Is(err, cuda.ErrNoDriver) || !strings.HasPrefix(err.Error(), "no CUDA driver found: ") {
		t.Errorf("Open without a driver: %v", err)
	}
	m, err := gpt2cuda.NewCUDA(0)
	if m != nil || !errors.Is(err, cuda.ErrNoDriver) || !strings.HasPrefix(err.Error(), "no CUDA driver found: ") {
		t.Errorf("NewCUDA without a driver: %v, %v", m, err)
	}
}

// TestRefusedBeforeOpening: a model with an op the device does not run, a
// source that does not check, a package Spec that is not what the source
// compiles to, and a negative GPU are refused before the device is
// opened, each with an error that says why; the device's own error passes
// through with the ordinal asked for.
func TestRefusedBeforeOpening(t *testing.T) {
	src := []byte(gpt2cuda.LoraSource)
	cuda.NotOnDevice["Embedding"] = "not on the device in this test"
	_, err := device.Open(src, device.Options{Name: "m.lora", Open: noOpen(t)})
	delete(cuda.NotOnDevice, "Embedding")
	if err == nil || !strings.HasPrefix(err.Error(), "m.lora: the model cannot run on the CUDA device: ") || !strings.Contains(err.Error(), "Embedding: not on the device in this test") {
		t.Errorf("an op not on the device: %v", err)
	}
	if _, err := device.Open([]byte("model m { arch gpt3 }"), device.Options{Name: "bad.lora", Open: noOpen(t)}); err == nil || !strings.Contains(err.Error(), "bad.lora:1:") {
		t.Errorf("a source that does not check: %v", err)
	}
	other := *gpt2cuda.Spec
	other.Train.Steps++
	if _, err := device.Open(src, device.Options{Spec: &other, Open: noOpen(t)}); err == nil || !strings.Contains(err.Error(), "regenerate it") {
		t.Errorf("a Spec that is not the source's: %v", err)
	}
	if _, err := device.Open(src, device.Options{GPU: -1, Open: noOpen(t)}); err == nil || !strings.Contains(err.Error(), "GPU -1") {
		t.Errorf("GPU -1: %v", err)
	}
	var asked []int
	m, err := gpt2cuda.NewDevice(device.Options{GPU: 3, Open: func(gpu int) (*cuda.Device, error) {
		asked = append(asked, gpu)
		return nil, errors.New("test device: not opened")
	}})
	if m != nil || err == nil || err.Error() != "test device: not opened" || len(asked) != 1 || asked[0] != 3 {
		t.Errorf("NewDevice with a failing device: %v, %v, asked %v", m, err, asked)
	}
	// The package's Spec is what its source compiles to (else NewDevice
	// would refuse it): the check above passes for the real one.
	if device.Describe(engine.NewCore(gpt2cuda.Spec)) != "" {
		t.Error("Describe names a device for a Core on the CPU")
	}
}
