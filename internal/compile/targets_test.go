package compile

import (
	"reflect"
	"testing"

	"lorac.dev/lorac/codegen"
)

// TestTargetsReachCodegen: the target blocks arrive in the codegen spec as
// data, a file without a cpu block allowing every variant.
func TestTargetsReachCodegen(t *testing.T) {
	for path, want := range map[string]codegen.Targets{
		"../../examples/bench-gpt2s/bench-gpt2s.lora": {ISAs: []string{"avx512", "avx2"}, CUDAArchs: []string{"sm_90"}},
		"../../examples/tiny/tiny.lora":               {ISAs: []string{"avx512", "avx2"}},
		"../gentest/testdata/gpt2.lora":               {ISAs: []string{"avx512", "avx2", "generic"}},
	} {
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Spec(cfg, "model", path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Targets, want) {
			t.Errorf("%s: targets %+v, want %+v", path, s.Targets, want)
		}
	}
}
