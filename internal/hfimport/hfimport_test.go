package hfimport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/internal/compile"
)

func dir(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	for name, body := range files {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

const gpt2Config = `{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
 "n_layer": 12, "n_head": 12, "n_inner": null, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05}`

const llamaConfig = `{"model_type": "llama", "vocab_size": 32000, "max_position_embeddings": 2048, "hidden_size": 1024,
 "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 2816,
 "rms_norm_eps": 1e-06, "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": false}`

// TestImportedCountsMatch: the imported .lora checks and has the real
// parameter counts, and PEFT's targets become the same trainable count.
func TestImportedCountsMatch(t *testing.T) {
	cases := []struct {
		name             string
		files            map[string]string
		total, trainable int64
	}{
		{"gpt2 small, c_attn r16", map[string]string{
			"m/config.json":         gpt2Config,
			"a/adapter_config.json": `{"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["c_attn"], "fan_in_fan_out": true, "bias": "none"}`,
		}, 124439808, 12 * 16 * (768 + 2304)},
		{"llama, rank_pattern and a regex", map[string]string{
			"m/config.json": llamaConfig,
			"a/adapter_config.json": `{"peft_type": "LORA", "r": 8, "lora_alpha": 16,
			  "target_modules": ".*\\.(q_proj|v_proj)", "rank_pattern": {"v_proj": 4}, "alpha_pattern": {"model.layers.0.self_attn.q_proj": 4}}`,
		}, 155730944, 8*8*(1024+1024) + 8*4*(1024+256)},
		{"gpt2, c_proj matches both projections", map[string]string{
			"m/config.json":         gpt2Config,
			"a/adapter_config.json": `{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["c_proj"]}`,
		}, 124439808, 12 * 2 * ((768 + 768) + (3072 + 768))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := dir(t, c.files)
			src, err := Source(filepath.Join(d, "m"), filepath.Join(d, "a"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := compile.LoadSource("imported.lora", []byte(src))
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			s, err := compile.Summarize(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.ParamsTotal != c.total || s.ParamsTrainable != c.trainable {
				t.Errorf("params %d, trainable %d; want %d, %d\n%s", s.ParamsTotal, s.ParamsTrainable, c.total, c.trainable, src)
			}
		})
	}
}

func TestImportedScalesMatch(t *testing.T) {
	d := dir(t, map[string]string{
		"m/config.json": llamaConfig,
		"a/adapter_config.json": `{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": true, "target_modules": ["q_proj", "k_proj"],
		  "alpha_pattern": {"k_proj": 4}}`,
	})
	src, err := Source(filepath.Join(d, "m"), filepath.Join(d, "a"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := compile.LoadSource("imported.lora", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := map[float64]int{}
	for _, b := range cfg.LoRA {
		if !b.RSLoRA {
			t.Error("use_rslora was lost")
		}
		got[b.Alpha] += len(b.Modules)
	}
	if got[16] != 8 || got[4] != 8 {
		t.Errorf("alphas by module count %v, want 8 modules at 16 and 8 at 4\n%s", got, src)
	}
}

func TestImportRejects(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"m/config.json": `{"model_type": "bert"}`}, `model_type "bert"`},
		{map[string]string{"m/config.json": strings.Replace(llamaConfig, `"silu"`, `"gelu"`, 1)}, "hidden_act"},
		{map[string]string{"m/config.json": strings.Replace(llamaConfig, `"rope_theta": 500000.0`, `"rope_scaling": {"rope_type": "yarn", "factor": 4}`, 1)}, "yarn"},
		{map[string]string{"m/config.json": strings.Replace(gpt2Config, "gelu_new", "relu", 1)}, "relu"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "use_dora": true, "target_modules": ["c_attn"]}`}, "DoRA"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "modules_to_save": ["lm_head"], "target_modules": ["c_attn"]}`}, "modules_to_save"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "bias": "all", "target_modules": ["c_attn"]}`}, "bias"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["q_proj"]}`}, "matches no linear"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn"], "layers_to_transform": [12]}`}, "matches no linear layer of this gpt2 model (with layers_to_transform [12])"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn"], "lora_bias": true}`}, "lora_bias"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn"], "trainable_token_indices": [1, 2]}`}, "trainable_token_indices"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn"], "layer_replication": [[0, 4], [2, 5]]}`}, "layer_replication"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn"], "alora_invocation_tokens": [50256]}`}, "alora_invocation_tokens"},
		{map[string]string{"m/config.json": gpt2Config, "a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn", "lm_head"]}`}, `target_modules "lm_head"`},
		{map[string]string{"m/config.json": "{"}, "config.json"},
	}
	for _, c := range cases {
		d := dir(t, c.files)
		adapter := ""
		if _, ok := c.files["a/adapter_config.json"]; ok {
			adapter = filepath.Join(d, "a")
		}
		_, err := Source(filepath.Join(d, "m"), adapter)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Source = %v, want an error mentioning %q", err, c.want)
		}
	}
}

// TestImportLayersToTransform: layers_to_transform and exclude_modules
// select modules as PEFT does.
func TestImportLayersToTransform(t *testing.T) {
	d := dir(t, map[string]string{"m/config.json": gpt2Config,
		"a/adapter_config.json": `{"peft_type": "LORA", "target_modules": ["c_attn", "c_proj"], "exclude_modules": ["mlp.c_proj"], "layers_to_transform": [0, 3], "layers_pattern": "h"}`})
	src, err := Source(filepath.Join(d, "m"), filepath.Join(d, "a"))
	if err != nil {
		t.Fatal(err)
	}
	want := "transformer.h.0.attn.c_attn, transformer.h.0.attn.c_proj, transformer.h.3.attn.c_attn, transformer.h.3.attn.c_proj"
	if !strings.Contains(src, want) {
		t.Errorf("targets are not %s:\n%s", want, src)
	}
}
