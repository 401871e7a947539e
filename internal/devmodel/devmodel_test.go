package devmodel

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/gen/gpt2"
	"lorac.dev/lorac/internal/gen/llama"
	"lorac.dev/lorac/internal/gen/llamaplus"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/engine"
)

// TestModelSpecIsGenerated: the ModelSpec the device path builds from
// codegen.Info is the one the generated package carries, field for field,
// so the driver sees the same model on either path.
func TestModelSpecIsGenerated(t *testing.T) {
	for _, c := range []struct {
		name string
		want *engine.ModelSpec
	}{{"gpt2", gpt2.Spec}, {"llama", llama.Spec}, {"llamaplus", llamaplus.Spec}} {
		cfg, err := compile.Load(filepath.Join("../gen", c.name+".lora"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := compile.Spec(cfg, c.name, c.name+".lora")
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ModelSpec(info)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: the device path's ModelSpec differs from the generated one:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if err := Supported(s); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestNoDriver: without a driver, opening the device is the driver's
// error, and Supported refuses nothing the test models use.
func TestNoDriver(t *testing.T) {
	t.Setenv("LORAC_CUDA_LIB", filepath.Join(t.TempDir(), "libcuda-missing.so"))
	_, err := cuda.Open(0)
	if !errors.Is(err, cuda.ErrNoDriver) || !strings.HasPrefix(err.Error(), "no CUDA driver found: ") {
		t.Fatalf("cuda.Open without a driver: %v", err)
	}
}
