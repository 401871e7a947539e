package devmodel

import (
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/gen/gpt2"
	"lorac.dev/lorac/internal/gen/llama"
	"lorac.dev/lorac/internal/gen/llamaplus"
	"lorac.dev/lorac/runtime/driver"
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

// TestDriverDeviceFlags: a model program (the generated package, on the
// CPU) refuses --device cuda and --gpu without it as usage errors, naming
// the lorac command that runs the device path.
func TestDriverDeviceFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--device", "cuda", "--tokens", "1", "--dump-logits", "x.safetensors"}, "lorac: eval: --device cuda: this program runs the model on the CPU; the lorac command runs it on a GPU"},
		{[]string{"generate", "--gpu", "1", "--prompt", "hi"}, "lorac: generate: --gpu needs --device cuda"},
		{[]string{"train", "--device", "tpu", "--data", "x"}, `lorac: train: --device "tpu": want cpu or cuda`},
		{[]string{"merge", "--device", "cuda", "--gpu", "-1"}, "lorac: merge: --gpu -1: want a GPU ordinal"},
	} {
		var out, errs strings.Builder
		code := driver.Main(gpt2.New(), c.args, &out, &errs)
		if code != 2 || !strings.HasPrefix(errs.String(), c.want) {
			t.Errorf("%q: exit %d, %q; want exit 2 and %q", c.args, code, errs.String(), c.want)
		}
	}
	// On a core with an executor the driver accepts --device cuda, and
	// refuses --device cpu.
	c := engine.NewCoreOn(gpt2.Spec, (*Executor)(nil)) // never called: the flags fail first
	var errs strings.Builder
	if code := driver.Main(c, []string{"eval", "--device", "cpu", "--tokens", "1"}, io.Discard, &errs); code != 2 || !strings.Contains(errs.String(), "the model is on a CUDA device") {
		t.Errorf("--device cpu on a device core: exit %d, %q", code, errs.String())
	}
}
