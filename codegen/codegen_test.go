package codegen

import (
	"strings"
	"testing"

	"lorac.dev/lorac/graph"
)

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"transformer.h.0.attn.c_attn.weight":             "H0AttnCAttnWeight",
		"model.layers.12.self_attn.q_proj.lora_A.weight": "Layers12SelfAttnQProjLoraAWeight",
		"lm_head.weight":         "LmHeadWeight",
		"transformer.wte.weight": "WteWeight",
		"0.weight":               "P0Weight",
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	g := graph.New("m", graph.Train)
	for _, s := range []*Spec{
		{Package: "not-an-ident"},
		{Package: "func2x", Graphs: Graphs{TrainFull: g}},
		{Package: "ok"},
	} {
		if _, err := Generate(s); err == nil {
			t.Errorf("Generate accepted %+v", s)
		}
	}
	if _, err := Generate(&Spec{Package: "ok", Graphs: Graphs{TrainFull: g, EvalBase: g, ForwardBase: g, DecodeBase: g}}); err == nil || !strings.Contains(err.Error(), "memory plan") {
		t.Errorf("a graph without a memory plan: %v", err)
	}
}

// TestInitNames: every init kind of the graph has a runtime constant name.
func TestInitNames(t *testing.T) {
	for i := graph.Init(0); !strings.HasPrefix(i.String(), "Init("); i++ {
		if _, ok := initNames[i]; !ok {
			t.Errorf("init kind %s has no runtime name", i)
		}
	}
}
