package hfimport

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
)

// TestConfigKeysPerModelType pins the keys lorac init accepts for each
// model_type: the math-changing keys it reads, and those it ignores and
// why. A key added here must be implemented or shown harmless first.
func TestConfigKeysPerModelType(t *testing.T) {
	common := []string{"_name_or_path", "add_cross_attention", "architectures", "bos_token_id", "chunk_size_feed_forward",
		"decoder_start_token_id", "dtype", "eos_token_id", "id2label", "initializer_range", "is_encoder_decoder",
		"label2id", "model_type", "output_attentions", "output_hidden_states", "pad_token_id", "prefix", "problem_type",
		"return_dict", "sep_token_id", "task_specific_params", "tie_word_embeddings", "tokenizer_class", "torch_dtype",
		"torchscript", "transformers_version", "use_bfloat16", "use_cache", "vocab_size"}
	llama := []string{"attention_dropout", "head_dim", "hidden_act", "hidden_size", "intermediate_size",
		"max_position_embeddings", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "rms_norm_eps",
		"rope_parameters", "rope_scaling", "rope_theta"}
	qwen := []string{"attention_bias", "layer_types", "max_window_layers", "sliding_window", "use_sliding_window"}
	want := map[string][]string{
		"gpt2": {"activation_function", "attn_pdrop", "embd_pdrop", "layer_norm_epsilon", "n_ctx", "n_embd", "n_head",
			"n_inner", "n_layer", "n_positions", "reorder_and_upcast_attn", "resid_pdrop", "scale_attn_by_inverse_layer_idx",
			"scale_attn_weights", "summary_activation", "summary_first_dropout", "summary_proj_to_labels", "summary_type",
			"summary_use_proj"},
		"llama":   append(slices.Clone(llama), "attention_bias", "mlp_bias", "pretraining_tp"),
		"mistral": append(slices.Clone(llama), "sliding_window"),
		"qwen2":   append(slices.Clone(llama), qwen...),
		"qwen3":   append(slices.Clone(llama), qwen...),
		"gemma":   append(slices.Clone(llama), "attention_bias", "hidden_activation", "use_bidirectional_attention"),
		"gemma2": append(slices.Clone(llama), "attention_bias", "hidden_activation", "use_bidirectional_attention",
			"query_pre_attn_scalar", "sliding_window", "layer_types", "final_logit_softcapping", "attn_logit_softcapping",
			"cache_implementation", "sliding_window_size"),
		"gemma3_text": append(slices.Clone(llama), "attention_bias", "hidden_activation", "use_bidirectional_attention",
			"query_pre_attn_scalar", "sliding_window", "layer_types", "final_logit_softcapping", "attn_logit_softcapping",
			"cache_implementation", "sliding_window_pattern", "_sliding_window_pattern", "rope_local_base_freq"),
	}
	if got := ModelTypes(); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("model types %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for mt, own := range want {
		keys := ConfigKeys(mt)
		all := slices.Sorted(slices.Values(append(slices.Clone(common), own...)))
		if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, all) {
			t.Errorf("%s: keys\n%v\nwant\n%v", mt, got, all)
		}
		for k, use := range keys {
			if use == "" {
				t.Errorf("%s: key %s has no use", mt, k)
			}
		}
	}
	if ConfigKeys("gemma3") != nil { // the multimodal model
		t.Error("gemma3 has config keys; it is refused")
	}
}

// null is a JSON null for withKeys (nil deletes the key).
var null = json.RawMessage("null")

func mustMap(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func withKeys(t *testing.T, base string, set map[string]any) string {
	t.Helper()
	m := mustMap(t, base)
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func model(t *testing.T, cfg string) (*dsl.Model, error) {
	t.Helper()
	d := dir(t, map[string]string{"m/config.json": cfg})
	return Model(filepath.Join(d, "m"))
}

// TestFamilies reads one config of each family and checks the features
// each maps to.
func TestFamilies(t *testing.T) {
	llama3 := withKeys(t, llamaConfig, map[string]any{"head_dim": 128, "tie_word_embeddings": true,
		"rope_scaling": mustMap(t, `{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}`)})
	m, err := model(t, llama3)
	if err != nil {
		t.Fatal(err)
	}
	if m.HeadDim != 128 || m.RopeScaling != "llama3" || m.RopeFactor != 32 || m.RopeLowFreq != 1 || m.RopeHighFreq != 4 ||
		m.RopeOrigContext != 8192 || !m.TieEmbeddings || m.RopeTheta != 500000 || m.GGUFArch() != "llama" {
		t.Errorf("llama3: %+v", m)
	}
	// transformers 5 writes rope_parameters, with the theta inside.
	m, err = model(t, withKeys(t, llamaConfig, map[string]any{"rope_theta": nil,
		"rope_parameters": mustMap(t, `{"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0}`)}))
	if err != nil || m.RopeScaling != "linear" || m.RopeFactor != 2 || m.RopeTheta != 1000 {
		t.Errorf("linear: %+v, %v", m, err)
	}
	// head_dim equal to hidden_size / heads is not written.
	if m, err = model(t, withKeys(t, llamaConfig, map[string]any{"head_dim": 64})); err != nil || m.HeadDim != 0 {
		t.Errorf("head_dim 64 of 1024/16: %+v, %v", m, err)
	}

	mistral := withKeys(t, llamaConfig, map[string]any{"model_type": "mistral", "sliding_window": 1024})
	if m, err = model(t, mistral); err != nil || m.SlidingWindow != 1024 || m.GGUFArch() != "llama" {
		t.Errorf("mistral: %+v, %v", m, err)
	}
	// A window as long as the context changes nothing and is not kept.
	for _, w := range []any{2048, 4096} {
		if m, err = model(t, withKeys(t, mistral, map[string]any{"sliding_window": w})); err != nil || m.SlidingWindow != 0 {
			t.Errorf("mistral window %v: %+v, %v", w, m, err)
		}
	}

	qwen2 := withKeys(t, llamaConfig, map[string]any{"model_type": "qwen2", "use_sliding_window": false, "sliding_window": 512, "max_window_layers": 4})
	if m, err = model(t, qwen2); err != nil || !m.QKVBias || m.Bias || m.SlidingWindow != 0 || m.GGUFArch() != "qwen2" {
		t.Errorf("qwen2: %+v, %v", m, err)
	}
	if m, err = model(t, withKeys(t, qwen2, map[string]any{"use_sliding_window": true, "max_window_layers": 0})); err != nil || m.SlidingWindow != 512 {
		t.Errorf("qwen2 sliding on every layer: %+v, %v", m, err)
	}
	gemma := withKeys(t, llamaConfig, map[string]any{"model_type": "gemma", "hidden_act": "gelu_pytorch_tanh", "tie_word_embeddings": nil})
	if m, err = model(t, gemma); err != nil || !m.EmbedScale || m.NormOffset != 1 || m.MLPAct != "gelu" || !m.TieEmbeddings ||
		m.HeadDim != 256 || m.GGUFArch() != "gemma" {
		t.Errorf("gemma: %+v, %v", m, err)
	}
	gemma2 := withKeys(t, llamaConfig, map[string]any{"model_type": "gemma2", "hidden_act": nil, "hidden_activation": "gelu_pytorch_tanh",
		"sliding_window": 512, "final_logit_softcapping": null, "query_pre_attn_scalar": 144})
	if m, err = model(t, gemma2); err != nil || !m.SandwichNorms || m.SlidingWindow != 512 || m.WindowPattern != 2 ||
		m.AttnScalar != 144 || m.AttnSoftcap != 50 || m.LogitSoftcap != 0 || !m.EmbedScale || m.GGUFArch() != "gemma2" {
		t.Errorf("gemma2: %+v, %v", m, err)
	}
	// Gemma 3 (1B-style): defaults for the local base, the pattern and the
	// soft-caps; transformers 5's per-layer-type rope_parameters.
	gemma3 := withKeys(t, llamaConfig, map[string]any{"model_type": "gemma3_text", "hidden_act": nil, "rope_theta": nil,
		"sliding_window": 512, "query_pre_attn_scalar": 256,
		"rope_parameters": mustMap(t, `{"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}`)})
	if m, err = model(t, gemma3); err != nil || !m.QKNorm || !m.SandwichNorms || m.WindowPattern != 6 || m.SlidingWindow != 512 ||
		m.AttnSoftcap != 0 || m.LogitSoftcap != 0 || m.RopeTheta != 1e6 || m.RopeScaling != "linear" || m.RopeFactor != 8 ||
		m.RopeLocalTheta != 10000 || m.GGUFArch() != "gemma3" {
		t.Errorf("gemma3: %+v, %v", m, err)
	} else if theta, r := m.LayerRoPE(0); theta != 10000 || r.Kind != "" {
		t.Errorf("gemma3 layer 0 (local): theta %g, scaling %q", theta, r.Kind)
	} else if theta, r := m.LayerRoPE(5); theta != 1e6 || r.Kind != "linear" {
		t.Errorf("gemma3 layer 5 (global): theta %g, scaling %q", theta, r.Kind)
	}
	// transformers 4's keys: rope_local_base_freq and sliding_window_pattern.
	gemma3v4 := withKeys(t, llamaConfig, map[string]any{"model_type": "gemma3_text", "hidden_act": nil, "rope_theta": 1000000.0,
		"rope_local_base_freq": 20000.0, "sliding_window_pattern": 4, "sliding_window": 4096})
	if m, err = model(t, gemma3v4); err != nil || m.RopeLocalTheta != 20000 || m.RopeTheta != 1e6 || m.WindowPattern != 4 || m.SlidingWindow != 4096 {
		t.Errorf("gemma3 (transformers 4 keys): %+v, %v", m, err)
	}
	qwen3 := withKeys(t, llamaConfig, map[string]any{"model_type": "qwen3", "head_dim": 128, "attention_bias": false})
	if m, err = model(t, qwen3); err != nil || !m.QKNorm || m.QKVBias || m.HeadDim != 128 || m.GGUFArch() != "qwen3" {
		t.Errorf("qwen3: %+v, %v", m, err)
	}
}

// TestFamiliesRefuse: what lorac does not implement is refused, by name.
func TestFamiliesRefuse(t *testing.T) {
	rope := func(js string) map[string]any { return map[string]any{"rope_scaling": mustMap(t, js)} }
	cases := []struct {
		cfg  string
		want string
	}{
		{withKeys(t, llamaConfig, rope(`{"rope_type": "dynamic", "factor": 2.0}`)), `rope_type "dynamic"`},
		{withKeys(t, llamaConfig, rope(`{"type": "yarn", "factor": 4.0}`)), `rope_type "yarn"`},
		{withKeys(t, llamaConfig, rope(`{"rope_type": "longrope", "factor": 4.0}`)), `rope_type "longrope"`},
		{withKeys(t, llamaConfig, rope(`{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}`)), "high_freq_factor"},
		{withKeys(t, llamaConfig, rope(`{"rope_type": "linear", "factor": 2.0, "attention_factor": 1.5}`)), `"attention_factor"`},
		{withKeys(t, llamaConfig, rope(`{"rope_type": "default", "partial_rotary_factor": 0.5}`)), `"partial_rotary_factor"`},
		{withKeys(t, llamaConfig, map[string]any{"attn_logit_softcapping": 50.0}), `key "attn_logit_softcapping"`},
		{withKeys(t, llamaConfig, map[string]any{"sliding_window": 16}), `key "sliding_window" is not one lorac knows for model_type llama`},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "qwen3", "attention_bias": true}), "attention_bias true"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "qwen2", "use_sliding_window": true, "sliding_window": 512, "max_window_layers": 4}),
			"on 4 of 8 layers"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "qwen2", "layer_types": []string{"chunked_attention"}}), `"chunked_attention"`},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma3"}), "multimodal Gemma 3"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma3_text", "hidden_act": nil,
			"rope_parameters": mustMap(t, `{"sliding_attention": {"rope_type": "linear", "factor": 2.0}}`)}), "not supported on local layers"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma2", "hidden_act": nil, "layer_types": []string{"full_attention", "sliding_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention", "full_attention", "full_attention"}}), "layer_types"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma2", "hidden_act": nil, "query_pre_attn_scalar": null}), "query_pre_attn_scalar null"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma"}), `hidden_act "silu" is not supported; lorac's gemma uses the tanh GELU`},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma", "hidden_act": "gelu"}), `hidden_act "gelu"`},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "gemma", "hidden_act": nil, "use_bidirectional_attention": true}), "use_bidirectional_attention"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "mixtral"}), "mixture-of-experts"},
		{withKeys(t, llamaConfig, map[string]any{"model_type": "falcon"}), "lorac reads gemma, gemma2, gemma3_text, gpt2, llama, mistral, qwen2, qwen3"},
		{withKeys(t, gpt2Config, map[string]any{"scale_attn_weights": false}), "scale_attn_weights"},
		{withKeys(t, gpt2Config, map[string]any{"add_cross_attention": true}), "add_cross_attention"},
	}
	for _, c := range cases {
		_, err := model(t, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Model = %v, want an error mentioning %q\n%s", err, c.want, c.cfg)
		}
	}
}
