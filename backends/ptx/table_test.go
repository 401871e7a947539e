package ptx_test

import (
	"testing"

	"lorac.dev/lorac/backends/ptx"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/runtime/cuda"
)

// TestTableServesLowering: every kernel the PTX table says it serves is a
// kernel of the lowering table, every kernel of the lowering table is
// served — but for those runtime/cuda lists in NotOnDevice, which no entry
// may serve yet — and entries are unique.
func TestTableServesLowering(t *testing.T) {
	known := map[string]bool{}
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			known[c.Kernel] = true
		}
	}
	seen, served := map[string]bool{}, map[string]bool{}
	for _, k := range ptx.Kernels() {
		if seen[k.Entry] {
			t.Errorf("entry %s twice", k.Entry)
		}
		seen[k.Entry] = true
		for _, name := range k.Serves {
			if !known[name] {
				t.Errorf("%s serves %s, which the lowering table does not name", k.Entry, name)
			}
			served[name] = true
		}
		switch k.Launch {
		case "elementwise", "rows", "gemm", "gemv", "attention":
		default:
			t.Errorf("%s: unknown launch shape %q", k.Entry, k.Launch)
		}
	}
	for name := range known {
		why, notOn := cuda.NotOnDevice[name]
		switch {
		case notOn && served[name]:
			t.Errorf("%s is served but listed in cuda.NotOnDevice (%s)", name, why)
		case notOn:
			t.Logf("%s: %s", name, why)
		case !served[name]:
			t.Errorf("no PTX kernel serves %s", name)
		}
	}
	for name := range cuda.NotOnDevice {
		if !known[name] {
			t.Errorf("cuda.NotOnDevice lists %s, which the lowering table does not name", name)
		}
	}
}

// TestDSLArchs: every arch the emitter knows is one `target cuda { arch … }`
// accepts, and the compiled spec records it.
func TestDSLArchs(t *testing.T) {
	for _, a := range ptx.Archs {
		src := "model m { arch gpt2; vocab 16; context 8; dim 8; layers 1; heads 2; ffn 16 }\ntarget cuda { arch " + a.Name + " }\n"
		cfg, err := compile.LoadSource("m.lora", []byte(src))
		if err != nil {
			t.Errorf("%s: %v", a.Name, err)
			continue
		}
		spec, err := compile.Spec(cfg, "m", "m.lora")
		if err != nil {
			t.Fatal(err)
		}
		if len(spec.Targets.CUDAArchs) != 1 || spec.Targets.CUDAArchs[0] != a.Name {
			t.Errorf("%s: spec records %v", a.Name, spec.Targets.CUDAArchs)
		}
	}
}
