package compile

import (
	"testing"
)

// peftCases give, for a model and its lora blocks, the counts PEFT reports:
// the base model's parameters (Hugging Face's count, a tied head once) and
// the trainable LoRA parameters, r·(in+out) per adapted module. Expected
// figures are worked out by hand in the comments, not by lorac.
var peftCases = []struct {
	name      string
	src       string
	total     int64
	trainable int64
}{
	{
		name: "gpt2 small, r16 on c_attn",
		src: `model gpt2 { arch gpt2; vocab 50257; context 1024; dim 768; layers 12; heads 12 }
lora { rank 16; alpha 32; targets c_attn }`,
		total:     124439808,
		trainable: 12 * 16 * (768 + 2304),
	},
	{
		name: "gpt2 all-linear on two layers",
		src: `model g { arch gpt2; vocab 100; context 32; dim 64; layers 3; heads 4; ffn 256 }
lora { rank 4; targets all-linear; layers 0, 2 }`,
		// wte 6400 + wpe 2048 + 3 × (ln 128 + c_attn 64·192+192 + c_proj 64·64+64
		// + ln 128 + c_fc 64·256+256 + c_proj 256·64+64) + ln_f 128
		total: 6400 + 2048 + 3*(128+12288+192+4096+64+128+16384+256+16384+64) + 128,
		// per layer: qkv 4·(64+192) + o 4·128 + up 4·320 + down 4·320
		trainable: 2 * (1024 + 512 + 1280 + 1280),
	},
	{
		name: "llama with two blocks of different rank (rank_pattern)",
		src: `model l { arch llama; vocab 100; context 32; dim 64; layers 2; heads 4; kv_heads 2; ffn 128 }
lora { rank 8; alpha 16; targets q, v }
lora { rank 4; alpha 8; targets mlp; layers 1 }`,
		// embed 6400 + 2 × (norms 128 + q 4096 + k 2048 + v 2048 + o 4096 + 3 × 8192) + norm 64 + head 6400
		total: 6400 + 2*(128+4096+2048+2048+4096+3*8192) + 64 + 6400,
		// q 8·(64+64), v 8·(64+32) in both layers; gate, up, down 4·(64+128) in layer 1
		trainable: 2*(8*128+8*96) + 3*4*192,
	},
	{
		name: "llama with Hugging Face module names",
		src: `model l { arch llama; vocab 100; context 32; dim 64; layers 2; heads 4; kv_heads 2; ffn 128; tie_embeddings true }
lora { rank 2; targets q_proj, self_attn.v_proj, model.layers.1.mlp.down_proj }`,
		total:     6400 + 2*(128+4096+2048+2048+4096+3*8192) + 64,
		trainable: 2*(2*128) + 2*(2*96) + 2*(128+64),
	},
}

func TestPEFTCounts(t *testing.T) {
	for _, c := range peftCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := LoadSource("case.lora", []byte(c.src))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Summarize(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.ParamsTotal != c.total {
				t.Errorf("params_total = %d, want %d", s.ParamsTotal, c.total)
			}
			if s.ParamsTotal != cfg.Model.ParamCount() {
				t.Errorf("the graph has %d base parameters, the architecture formula %d", s.ParamsTotal, cfg.Model.ParamCount())
			}
			if s.ParamsTrainable != c.trainable {
				t.Errorf("params_trainable = %d, want %d", s.ParamsTrainable, c.trainable)
			}
		})
	}
}

// TestExamples: every example checks, with the counts docs/perf.md fixes.
func TestExamples(t *testing.T) {
	want := map[string]struct{ total, trainable int64 }{
		"tiny":        {842496, 4 * 8 * ((128 + 384) + (128 + 128) + 2*(128+512))},
		"bench-tiny":  {3323392, 32768},
		"bench-gpt2s": {124439808, 12 * 16 * (768 + 2304)},
		"bench-llama": {155730944, 8 * 16 * ((1024 + 1024) + 2*(1024+256) + (1024 + 1024))},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load("../../examples/" + name + "/" + name + ".lora")
			if err != nil {
				t.Fatal(err)
			}
			s, err := Summarize(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.ParamsTotal != w.total || s.ParamsTrainable != w.trainable {
				t.Errorf("params %d / trainable %d, want %d / %d", s.ParamsTotal, s.ParamsTrainable, w.total, w.trainable)
			}
			if s.TrainMemory <= s.Train.Weights || s.InferMemory <= s.Infer.Weights || s.AdapterBytes <= 4*s.ParamsTrainable {
				t.Errorf("implausible memory figures: %+v", s)
			}
		})
	}
}

// TestNoLoRABlock: a model without adapters checks, and its training
// figures are those of training every parameter.
func TestNoLoRABlock(t *testing.T) {
	cfg, err := LoadSource("base.lora", []byte("model m { arch gpt2; vocab 64; context 16; dim 32; layers 2; heads 4 }\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.TrainFull || s.ParamsTrainable != s.ParamsTotal || s.ParamsFrozen != 0 || s.AdapterBytes != 0 {
		t.Errorf("summary %+v", s)
	}
	if s.Train.Gradients != 4*s.ParamsTotal || s.Train.Optimizer != 8*s.ParamsTotal {
		t.Errorf("full training needs gradients and two moments for every parameter: %+v", s.Train)
	}
}
