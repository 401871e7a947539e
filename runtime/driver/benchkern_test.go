package driver

import (
	"slices"
	"testing"

	"lorac.dev/lorac/runtime/engine"
)

func TestLinearShapes(t *testing.T) {
	spec := &engine.ModelSpec{
		Arch: "gpt2",
		Base: []engine.ParamSpec{
			{Name: "transformer.wte.weight", Shape: []int{256, 64}},
			{Name: "transformer.h.0.attn.c_attn.weight", Shape: []int{64, 192}},
			{Name: "transformer.h.0.attn.c_attn.bias", Shape: []int{192}},
			{Name: "transformer.h.1.attn.c_attn.weight", Shape: []int{64, 192}},
			{Name: "transformer.h.0.mlp.c_fc.weight", Shape: []int{64, 256}},
			{Name: "lm_head.weight", Shape: []int{256, 64}},
		},
		Adapters: []engine.AdapterSpec{{In: 64, Out: 192, Rank: 4, Conv1D: true}, {In: 64, Out: 192, Rank: 8, Conv1D: true}},
	}
	got := linearShapes(spec)
	want := []linearShape{{K: 64, M: 192, R: 8, conv1d: true}, {K: 64, M: 256, conv1d: true}, {K: 64, M: 256}}
	if !slices.Equal(got, want) {
		t.Fatalf("linearShapes = %+v, want %+v", got, want)
	}
}
