package compile

import (
	"reflect"
	"testing"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/graph"
)

// TestTargetsReachCodegen: the target blocks arrive in the codegen spec as
// data, a file without a cpu block allowing every variant.
func TestTargetsReachCodegen(t *testing.T) {
	for path, want := range map[string]codegen.Targets{
		"../../examples/bench-gpt2s/bench-gpt2s.lora": {ISAs: []string{"avx512", "avx2"}, CUDAArchs: []string{"sm_90"}},
		"../../examples/tiny/tiny.lora":               {ISAs: []string{"avx512", "avx2"}},
		"../gen/gpt2.lora":                            {ISAs: []string{"avx512", "avx2", "generic"}},
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

// TestEvalAndDropout: the evaluation graphs come out of the pass table in
// Eval mode (adapters fused, no merge, no backward, scheduled and planned),
// and only the LoRA training graph applies dropout.
func TestEvalAndDropout(t *testing.T) {
	cfg, err := Load("../../examples/tiny/tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(cfg, "model", "tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*graph.Graph{s.EvalLoRA, s.EvalBase} {
		if g.Mode != graph.Eval {
			t.Errorf("eval graph is %s", g.Mode)
		}
		for pass, want := range map[string]bool{"FuseLoRA": true, "Schedule": true, "PlanMemory": true, "MergeLoRA": false, "Differentiate": false} {
			if g.Facts[pass] != want {
				t.Errorf("eval graph: %s ran = %v, want %v", pass, g.Facts[pass], want)
			}
		}
	}
	for name, g := range map[string]*graph.Graph{"TrainLoRA": s.TrainLoRA, "TrainFull": s.TrainFull, "EvalLoRA": s.EvalLoRA, "ForwardLoRA": s.ForwardLoRA, "DecodeLoRA": s.DecodeLoRA} {
		if g.Dropout != (name == "TrainLoRA") {
			t.Errorf("%s: Dropout = %v", name, g.Dropout)
		}
	}
}
