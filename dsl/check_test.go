package dsl

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The models the table tests adapt: a gpt2 and a llama of 4 layers.
const (
	gpt2Model  = "model { arch gpt2; vocab 256; context 128; dim 128; layers 4; heads 4 }\n"
	llamaModel = "model { arch llama; vocab 256; context 128; dim 128; layers 4; heads 4; kv_heads 2; ffn 344 }\n"
)

// modules names module suffixes in the given layers, in model order.
func modules(prefix string, layers []int, suffixes ...string) []string {
	var out []string
	for _, i := range layers {
		for _, s := range suffixes {
			out = append(out, fmt.Sprintf("%s.%d.%s", prefix, i, s))
		}
	}
	return out
}

var all4 = []int{0, 1, 2, 3}

func TestCheckDefaults(t *testing.T) {
	cfg, err := parseCheck("t.lora", []byte(gpt2Model+"lora { rank 8; targets qkv }\n"))
	if err != nil {
		t.Fatal(err)
	}
	stripPositions(reflect.ValueOf(cfg))
	want := &Config{
		File: "t.lora",
		Model: Model{
			Name: "model", Arch: "gpt2", Vocab: 256, Context: 128, Dim: 128, Layers: 4, Heads: 4,
			KVHeads: 4, FFN: 512, NormEps: 1e-5, TieEmbeddings: true, Bias: true,
		},
		LoRA: []LoRA{{
			Rank: 8, Alpha: 8, Init: "default", Targets: []string{"qkv"}, Layers: all4,
			Modules: modules("transformer.h", all4, "attn.c_attn"),
		}},
		Train:   Train{Batch: 8, Seq: 128, Steps: 100, LR: 3e-4, Schedule: "cosine", Clip: 1, Seed: 1},
		Targets: []Target{{Kind: "cpu", ISA: []string{"avx512", "avx2", "generic"}}},
		Serve:   Serve{Rows: 8, Prefill: 32},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}

	cfg, err = parseCheck("t.lora", []byte(llamaModel+"target cuda {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	stripPositions(reflect.ValueOf(cfg))
	want = &Config{
		File: "t.lora",
		Model: Model{
			Name: "model", Arch: "llama", Vocab: 256, Context: 128, Dim: 128, Layers: 4, Heads: 4,
			KVHeads: 2, FFN: 344, NormEps: 1e-6, RopeTheta: 10000,
		},
		Train: Train{Batch: 8, Seq: 128, Steps: 100, LR: 3e-4, Schedule: "cosine", Clip: 1, Seed: 1},
		// A cuda target alone still runs on the CPU, with any variant.
		Targets: []Target{{Kind: "cuda", Arch: []string{"sm_90"}}, {Kind: "cpu", ISA: []string{"avx512", "avx2", "generic"}}},
		Serve:   Serve{Rows: 8, Prefill: 32},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestCheckSample(t *testing.T) {
	cfg, err := parseCheck("tiny.lora", readFile(t, "testdata/good/tiny_gpt2.lora"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Model.Pos.Line != 2 || cfg.LoRA[0].Pos.Line != 12 || cfg.Train.Pos.Line != 20 || cfg.Targets[1].Pos.Line != 22 {
		t.Errorf("block positions are wrong: %v %v %v %v", cfg.Model.Pos, cfg.LoRA[0].Pos, cfg.Train.Pos, cfg.Targets[1].Pos)
	}
	stripPositions(reflect.ValueOf(cfg))
	want := &Config{
		File: "tiny.lora",
		Model: Model{
			Name: "tiny", Arch: "gpt2", Vocab: 256, Context: 128, Dim: 128, Layers: 4, Heads: 4,
			KVHeads: 4, FFN: 512, NormEps: 1e-5, TieEmbeddings: true, Bias: true,
		},
		LoRA: []LoRA{{
			Rank: 8, Alpha: 16, Dropout: 0.05, Init: "default", Targets: []string{"qkv"}, Layers: all4,
			Modules: modules("transformer.h", all4, "attn.c_attn"),
		}},
		Train: Train{Batch: 16, Seq: 128, Steps: 500, LR: 3e-4, Warmup: 20, Schedule: "cosine", Clip: 1, Seed: 1},
		Targets: []Target{
			{Kind: "cpu", ISA: []string{"avx512", "avx2"}},
			{Kind: "cuda", Arch: []string{"sm_90"}},
		},
		Serve: Serve{Rows: 16, Prefill: 24},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestCheckLoRA checks target resolution, layer lists and per-block
// hyper-parameters. Each case is a model and lora blocks; want lists each
// block's modules.
func TestCheckLoRA(t *testing.T) {
	gh := func(layers []int, s ...string) []string { return modules("transformer.h", layers, s...) }
	ll := func(layers []int, s ...string) []string { return modules("model.layers", layers, s...) }
	llamaAll := []string{
		"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
		"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
	}
	for _, tc := range []struct {
		name, src string
		want      [][]string
	}{
		{"gpt2 short names", gpt2Model + "lora { rank 8; targets down, qkv }",
			[][]string{gh(all4, "attn.c_attn", "mlp.c_proj")}},
		{"gpt2 groups", gpt2Model + "lora { rank 8; targets mlp }\nlora { rank 4; targets attn }",
			[][]string{gh(all4, "mlp.c_fc", "mlp.c_proj"), gh(all4, "attn.c_attn", "attn.c_proj")}},
		{"gpt2 all-linear", gpt2Model + "lora { rank 8; targets all-linear; layers 1 }",
			[][]string{gh([]int{1}, "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}},
		{"gpt2 ambiguous suffix", gpt2Model + "lora { rank 8; targets c_proj }",
			[][]string{gh(all4, "attn.c_proj", "mlp.c_proj")}},
		{"gpt2 qualified suffix", gpt2Model + `lora { rank 8; targets mlp.c_proj, "attn.c_attn" }`,
			[][]string{gh(all4, "attn.c_attn", "mlp.c_proj")}},
		{"gpt2 full name", gpt2Model + "lora { rank 8; targets transformer.h.2.mlp.c_fc, \"3.mlp.c_fc\" }",
			[][]string{gh([]int{2, 3}, "mlp.c_fc")}},
		{"full name intersected with layers", gpt2Model + "lora { rank 8; targets transformer.h.2.mlp.c_fc, o; layers 1..2 }",
			[][]string{{"transformer.h.1.attn.c_proj", "transformer.h.2.attn.c_proj", "transformer.h.2.mlp.c_fc"}}},
		{"llama short names", llamaModel + "lora { rank 8; targets v, q, gate }",
			[][]string{ll(all4, "self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj")}},
		{"llama groups", llamaModel + "lora { rank 8; targets attn }",
			[][]string{ll(all4, llamaAll[:4]...)}},
		{"llama all-linear", llamaModel + "lora { rank 8; targets all-linear }",
			[][]string{ll(all4, llamaAll...)}},
		{"llama hf names", llamaModel + "lora { rank 8; targets q_proj, self_attn.v_proj, model.layers.3.mlp.down_proj }",
			[][]string{append(ll([]int{0, 1, 2}, "self_attn.q_proj", "self_attn.v_proj"),
				ll([]int{3}, "self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")...)}},
		{"duplicates collapse", llamaModel + "lora { rank 8; targets q, q_proj, attn; layers 2 }",
			[][]string{ll([]int{2}, llamaAll[:4]...)}},
		{"layer list", llamaModel + "lora { rank 8; targets o; layers 3, 0, 1..2, 2 }",
			[][]string{ll(all4, "self_attn.o_proj")}},
		{"layer mix", llamaModel + "lora { rank 8; targets o; layers 0, 2..3 }",
			[][]string{ll([]int{0, 2, 3}, "self_attn.o_proj")}},
		{"split layers", gpt2Model + "lora { rank 16; targets qkv; layers 0..1 }\nlora { rank 4; targets qkv; layers 2..3 }",
			[][]string{gh([]int{0, 1}, "attn.c_attn"), gh([]int{2, 3}, "attn.c_attn")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseCheck("t.lora", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.LoRA) != len(tc.want) {
				t.Fatalf("got %d lora blocks, want %d", len(cfg.LoRA), len(tc.want))
			}
			for i, l := range cfg.LoRA {
				if !reflect.DeepEqual(l.Modules, tc.want[i]) {
					t.Errorf("block %d modules:\ngot  %q\nwant %q", i, l.Modules, tc.want[i])
				}
			}
		})
	}
}

func TestCheckLoRAFields(t *testing.T) {
	cfg, err := parseCheck("t.lora", []byte(llamaModel+`
lora {
  rank    16
  alpha   32.5
  dropout 0.1
  rslora  true
  init    gaussian
  targets q
  layers  3, 1
}
lora { rank 4; targets k; init random }
`))
	if err != nil {
		t.Fatal(err)
	}
	stripPositions(reflect.ValueOf(cfg))
	want := []LoRA{
		{Rank: 16, Alpha: 32.5, Dropout: 0.1, RSLoRA: true, Init: "gaussian", Targets: []string{"q"},
			Layers: []int{1, 3}, Modules: []string{"model.layers.1.self_attn.q_proj", "model.layers.3.self_attn.q_proj"}},
		{Rank: 4, Alpha: 4, Init: "random", Targets: []string{"k"}, Layers: all4,
			Modules: modules("model.layers", all4, "self_attn.k_proj")},
	}
	if !reflect.DeepEqual(cfg.LoRA, want) {
		t.Errorf("got  %+v\nwant %+v", cfg.LoRA, want)
	}
}

func TestCheckModelAndTrain(t *testing.T) {
	cfg, err := parseCheck("t.lora", []byte(`model m7 {
  arch llama; vocab 32000; context 4096; dim 4096; layers 32; heads 32; ffn 11008
  norm_eps 1e-5; rope_theta 500000; tie_embeddings true; bias true
}
train { batch 1; seq 4096; steps 10; lr 2e-5; warmup 10; schedule constant; clip 0; seed 18446744073709551615; weight_decay 0.1 }
target cpu { isa generic }
target cuda { arch sm_80, sm_90 }
`))
	if err != nil {
		t.Fatal(err)
	}
	stripPositions(reflect.ValueOf(cfg))
	wantModel := Model{
		Name: "m7", Arch: "llama", Vocab: 32000, Context: 4096, Dim: 4096, Layers: 32, Heads: 32, KVHeads: 32,
		FFN: 11008, NormEps: 1e-5, RopeTheta: 500000, TieEmbeddings: true, Bias: true,
	}
	if cfg.Model != wantModel {
		t.Errorf("model:\ngot  %+v\nwant %+v", cfg.Model, wantModel)
	}
	wantTrain := Train{Batch: 1, Seq: 4096, Steps: 10, LR: 2e-5, Warmup: 10, Schedule: "constant", Seed: 1<<64 - 1, WeightDecay: 0.1}
	if cfg.Train != wantTrain {
		t.Errorf("train:\ngot  %+v\nwant %+v", cfg.Train, wantTrain)
	}
	wantTargets := []Target{{Kind: "cpu", ISA: []string{"generic"}}, {Kind: "cuda", Arch: []string{"sm_80", "sm_90"}}}
	if !reflect.DeepEqual(cfg.Targets, wantTargets) {
		t.Errorf("targets:\ngot  %+v\nwant %+v", cfg.Targets, wantTargets)
	}
}

// TestCheckErrors gives each invalid input with the exact errors, in order.
// The model block is on line 1 unless the case writes its own.
func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown field", "model {\n  arch gpt2; vocab 1; context 1; dim 1; layers 1; heads 1\n  dimm 128\n}",
			`3:3: unknown model field "dimm"; did you mean "dim"?`},
		{"field of another block", gpt2Model + "lora { rank 8; targets qkv; lr 1e-4 }",
			`2:29: unknown lora field "lr"; lr belongs in a train block`},
		{"no close field", gpt2Model + "train { colour red }",
			`2:9: unknown train field "colour"; train fields are batch, seq, steps, lr, warmup, schedule, clip, seed and weight_decay`},
		{"unknown block", gpt2Model + "lorra { rank 8 }",
			`2:1: unknown block "lorra"; did you mean "lora"?`},
		{"serve rows zero", gpt2Model + "serve { rows 0 }",
			`2:14: rows wants a positive integer, got "0"; write e.g. "rows 8"`},
		{"serve rows too many", gpt2Model + "serve { rows 1000 }",
			`2:14: rows 1000 is too large; use at most 256`},
		{"serve prefill past the context", gpt2Model + "serve { prefill 4096 }",
			`2:17: prefill 4096 exceeds context 128; use a prefill chunk ≤ 128`},
		{"second serve block", gpt2Model + "serve { rows 4 }\nserve { rows 8 }",
			`3:1: second serve block; merge it into the serve block at 2:1 (a file has at most one)`},
		{"serve field elsewhere", gpt2Model + "train { rows 4 }",
			`2:9: unknown train field "rows"; rows belongs in a serve block`},
		{"unknown block far", gpt2Model + "optimizer { lr 1 }",
			`2:1: unknown block "optimizer"; blocks are model, lora, train, target and serve`},
		{"no model", "lora { rank 8; targets qkv }",
			`1:1: no model block; add one, e.g. "model tiny { arch gpt2; vocab 256; context 128; dim 128; layers 4; heads 4 }"`},
		{"empty file", "",
			`1:1: no model block; add one, e.g. "model tiny { arch gpt2; vocab 256; context 128; dim 128; layers 4; heads 4 }"`},
		{"two models", gpt2Model + gpt2Model,
			`2:1: second model block; merge it into the model block at 1:1 (a file has one)`},
		{"two trains", gpt2Model + "train {}\ntrain {}",
			`3:1: second train block; merge it into the train block at 2:1 (a file has at most one)`},
		{"missing fields", "model tiny {\n  arch llama\n  vocab 256\n}", strings.Join([]string{
			`1:1: model block has no "context"; add a line "context 1024"`,
			`1:1: model block has no "dim"; add a line "dim 768"`,
			`1:1: model block has no "layers"; add a line "layers 12"`,
			`1:1: model block has no "heads"; add a line "heads 12"`,
			`1:1: model block has no "ffn"; add a line "ffn 11008"`,
		}, "\n")},
		{"duplicate field", "model {\n  arch gpt2; vocab 1; context 1; dim 1; layers 1; heads 1\n  arch llama\n}",
			`3:3: duplicate field "arch"; it is already set at 2:3; remove one of the two`},
		{"wrong types", "model {\n  arch gpt2; vocab abc; context 99999999999999999999; dim 1.5; layers -4; heads \"4\"; ffn 1..2\n}", strings.Join([]string{
			`2:20: vocab wants a positive integer, got "abc"; write e.g. "vocab 50257"`,
			`2:33: context 99999999999999999999 is too large; use at most 16777216`,
			`2:59: dim wants a positive integer, got "1.5"; write e.g. "dim 768"`,
			`2:71: layers wants a positive integer, got "-4"; write e.g. "layers 12"`,
			`2:81: heads wants a positive integer, got "\"4\""; write e.g. "heads 12"`,
			`2:90: ffn wants a positive integer, got "1..2"; write e.g. "ffn 3072"`,
		}, "\n")},
		{"not divisible", "model { arch gpt2; vocab 256; context 128; dim 100; layers 4; heads 3 }",
			`1:48: dim 100 is not divisible by heads 3; choose dim as a multiple of heads (e.g. dim 99 or dim 102) or heads that divides dim (e.g. heads 4)`},
		{"more heads than dim", "model { arch gpt2; vocab 256; context 128; dim 6; layers 4; heads 8 }",
			`1:48: dim 6 is not divisible by heads 8; choose dim as a multiple of heads (e.g. dim 8) or heads that divides dim (e.g. heads 6)`},
		{"odd head size", "model { arch llama; vocab 256; context 128; dim 96; layers 4; heads 32; ffn 256 }",
			`1:49: head size dim/heads = 96/32 = 3 is odd, but llama's rotary embedding needs it even; choose dim as an even multiple of heads (e.g. dim 64 or dim 128)`},
		{"kv heads", "model { arch llama; vocab 256; context 128; dim 128; layers 4; heads 8; kv_heads 3; ffn 256 }",
			`1:82: heads 8 is not divisible by kv_heads 3; use a kv_heads that divides heads (e.g. kv_heads 4)`},
		{"llama fields in gpt2", "model { arch gpt2; vocab 256; context 128; dim 128; layers 4; heads 4; kv_heads 2; rope_theta 1e4 }",
			"1:72: gpt2 has no kv_heads; remove the line (kv_heads is a llama field)\n" +
				"1:84: gpt2 has no rope_theta; remove the line (rope_theta is a llama field)"},
		{"caps", "model { arch gpt2; vocab 16777217; context 128; dim 128; layers 5000; heads 4 }",
			"1:26: vocab 16777217 is too large; use at most 16777216\n" +
				"1:65: layers 5000 is too large; use at most 1024"},
		{"bad arch", "model { arch gtp2; vocab 1; context 1; dim 1; layers 1; heads 1 }",
			`1:14: unknown arch "gtp2"; did you mean "gpt2"?`},
		{"arch list", "model { arch bert; vocab 1; context 1; dim 1; layers 1; heads 1 }",
			`1:14: unknown arch "bert"; use gpt2 or llama`},
		{"target of another arch", gpt2Model + "lora { rank 8; targets gate }",
			`2:24: target "gate" does not exist in a gpt2 model; gpt2 has qkv, o, up, down`},
		{"target typo", llamaModel + "lora { rank 8; targets q, gaet }",
			`2:27: target "gaet" does not exist in a llama model; did you mean "gate"?`},
		{"target hf typo", llamaModel + "lora { rank 8; targets self_attn.q_prj }",
			`2:24: target "self_attn.q_prj" does not exist in a llama model; did you mean "self_attn.q_proj"?`},
		{"target past last layer", llamaModel + "lora { rank 8; targets model.layers.4.mlp.up_proj }",
			`2:24: target "model.layers.4.mlp.up_proj" does not exist in a llama model; its modules are named model.layers.0.mlp.up_proj … model.layers.3.mlp.up_proj`},
		{"target outside layers", gpt2Model + "lora { rank 8; targets qkv, transformer.h.0.mlp.c_fc; layers 1..3 }",
			`2:29: target "transformer.h.0.mlp.c_fc" matches no module in this block's layers 1..3; add its layer to the block's layers or drop the target`},
		{"rank", gpt2Model + "lora { rank 512; targets o, up }",
			`2:13: rank 512 exceeds min(in, out) = 128 for transformer.h.0.attn.c_proj; use a rank ≤ 128`},
		{"rank kv", llamaModel + "lora { rank 96; targets q, k }",
			`2:13: rank 96 exceeds min(in, out) = 64 for model.layers.0.self_attn.k_proj; use a rank ≤ 64`},
		{"layer out of range", gpt2Model + "lora { rank 8; targets qkv; layers 7 }",
			`2:36: layer 7 does not exist; the model has layers 0..3`},
		{"range past end", gpt2Model + "lora { rank 8; targets qkv; layers 0, 2..9 }",
			`2:39: layer 9 does not exist; the model has layers 0..3`},
		{"reversed range", gpt2Model + "lora { rank 8; targets qkv; layers 3..1 }",
			`2:36: range 3..1 is reversed; write 1..3`},
		{"layer types", gpt2Model + "lora { rank 8; targets qkv; layers -1, 1.5, all }", strings.Join([]string{
			`2:36: layer -1 does not exist; the model has layers 0..3`,
			`2:40: layers wants whole layer numbers, got "1.5"; write e.g. "layers 0..3" or "layers 0, 2"`,
			`2:45: layers wants layer numbers or ranges, got "all"; write e.g. "layers 0..3" or "layers 0, 2"`,
		}, "\n")},
		{"overlap", gpt2Model + "lora { rank 8; targets qkv, o }\nlora { rank 4; targets attn; layers 2..3 }", `3:24: transformer.h.2.attn.c_attn is targeted by the lora blocks at 2:1 and 3:1 (and 3 more); a module takes one adapter; narrow the targets or layers of one block`},
		{"lora values", gpt2Model + "lora x { rank 8; alpha 0; dropout 1; rslora yes; init zeros; targets qkv }", strings.Join([]string{
			`2:6: lora blocks take no name; remove "x"`,
			`2:24: alpha wants a number > 0, got "0"; write e.g. "alpha 16"`,
			`2:35: dropout wants a number in [0, 1), got "1"; write e.g. "dropout 0.05"`,
			`2:45: rslora wants true or false, got "yes"; write "rslora true" or "rslora false"`,
			`2:55: unknown init "zeros"; use default, gaussian or random`,
		}, "\n")},
		{"lora missing", gpt2Model + "lora { alpha 8 }", "2:1: lora block has no \"rank\"; add a line \"rank 8\"\n" +
			`2:1: lora block has no "targets"; add a line "targets qkv"`},
		{"no values", gpt2Model + "lora { rank; targets }", "2:8: rank has no value; write e.g. \"rank 8\"\n" +
			`2:14: targets has no value; write e.g. "targets qkv"`},
		{"too many values", gpt2Model + "lora { rank 8, 16; targets qkv }",
			`2:16: rank takes one value, got 2; keep one, e.g. "rank 8"`},
		{"seq", gpt2Model + "train { seq 256 }",
			`2:13: seq 256 exceeds context 128; use a seq ≤ 128`},
		{"train values", gpt2Model + "train { batch 0; warmup 200; lr 0; schedule cosin; clip -1; seed -1; weight_decay -1 }", strings.Join([]string{
			`2:15: batch wants a positive integer, got "0"; write e.g. "batch 8"`,
			`2:25: warmup 200 exceeds steps 100; use a warmup ≤ 100`,
			`2:33: lr wants a number > 0, got "0"; write e.g. "lr 3e-4"`,
			`2:45: unknown schedule "cosin"; did you mean "cosine"?`,
			`2:57: clip wants a number ≥ 0, got "-1"; write e.g. "clip 1.0"`,
			`2:66: seed wants a non-negative integer, got "-1"; write e.g. "seed 1"`,
			`2:83: weight_decay wants a number ≥ 0, got "-1"; write e.g. "weight_decay 0"`,
		}, "\n")},
		{"huge numbers", gpt2Model + "train { seed 18446744073709551616; lr 1e999 }",
			"2:14: seed 18446744073709551616 is too large; use at most 18446744073709551615\n" +
				`2:39: lr 1e999 is too large; write e.g. "lr 3e-4"`},
		{"target kinds", gpt2Model + "target { isa avx2 }\ntarget gpu {}\ntarget cdua {}", strings.Join([]string{
			`2:1: target block has no kind; write "target cpu {" or "target cuda {"`,
			`3:8: unknown target "gpu"; did you mean "cpu"?`,
			`4:8: unknown target "cdua"; did you mean "cuda"?`,
		}, "\n")},
		{"target values", gpt2Model + "target cpu { isa avx2, avx2, sse }\ntarget cuda { arch sm_89 }\ntarget cpu {}", strings.Join([]string{
			`2:24: isa avx2 is listed twice; remove one`,
			`2:30: unknown isa "sse"; use avx512, avx2 or generic`,
			`3:20: unknown arch "sm_89"; did you mean "sm_80"?`,
			`4:1: second cpu target block; merge it into the one at 2:1`,
		}, "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCheck("", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			errorList(t, err)
			if err.Error() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

// TestCheckCollectsAll checks that one bad block does not hide the mistakes
// in the others, and that errors come out sorted by position.
func TestCheckCollectsAll(t *testing.T) {
	_, err := parseCheck("t.lora", []byte(`lora { rank 0; targets qkv }
model { arch gpt2; vocab 256; context 128; dim 100; layers 4; heads 3; colour red }
train { schedule cosin }
`))
	list := errorList(t, err)
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%d:%d", e.Pos.Line, e.Pos.Column))
	}
	if want := []string{"1:13", "2:48", "2:72", "3:18"}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors at %v, want %v:\n%v", got, want, err)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Msg: "m", Hint: "h"}
	e.Pos.Filename, e.Pos.Line, e.Pos.Column = "f.lora", 3, 7
	if got, want := e.Error(), "f.lora:3:7: m; h"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e.Hint = ""
	if got, want := e.Error(), "f.lora:3:7: m"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	l := ErrorList{e, e}
	if got, want := l.Error(), "f.lora:3:7: m\nf.lora:3:7: m"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCheckLoRABlockCap checks that the cap on lora blocks is reported once,
// on the first block past it, and that a file right at the cap is fine.
func TestCheckLoRABlockCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("model { arch llama; vocab 256; context 128; dim 128; layers 147; heads 4; ffn 344 }\n")
	suffixes := []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
	for i := range maxLoRABlocks + 2 {
		fmt.Fprintf(&b, "lora { rank 1; targets model.layers.%d.%s }\n", i/7, suffixes[i%7])
	}
	_, err := parseCheck("t.lora", []byte(b.String()))
	want := fmt.Sprintf("t.lora:%d:1: more than %d lora blocks; merge blocks that share a rank and alpha; the lora blocks from here on are not checked", maxLoRABlocks+2, maxLoRABlocks)
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	lines := strings.SplitAfter(b.String(), "\n")
	cfg, err := parseCheck("t.lora", []byte(strings.Join(lines[:maxLoRABlocks+1], "")))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.LoRA) != maxLoRABlocks || cfg.LoRA[maxLoRABlocks-1].Modules[0] != "model.layers.146.self_attn.k_proj" {
		t.Errorf("got %d blocks, the last adapting %q", len(cfg.LoRA), cfg.LoRA[len(cfg.LoRA)-1].Modules)
	}
}
