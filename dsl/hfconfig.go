package dsl

import (
	"encoding/json"
	"fmt"
)

// HFConfig returns the Hugging Face config.json of the model block m:
// what transformers needs to build the model that lorac's base weights
// (saved under Hugging Face's names) load into. It is the inverse of
// lorac init's reading (package hfimport), which gives m's architecture
// fields back from it. A llama is written as the Hugging Face family whose
// features it has: llama (Llama 2 and 3), mistral, qwen2 or qwen3; Gemma's
// features have no writer yet. A model
// transformers cannot express (a gpt2 without biases, a llama whose
// attention and MLP biases differ) is an error naming why.
func (m *Model) HFConfig() ([]byte, error) {
	c := map[string]any{
		"model_type":          m.Arch,
		"vocab_size":          m.Vocab,
		"tie_word_embeddings": m.TieEmbeddings,
		"dtype":               "float32",
	}
	switch m.Arch {
	case "gpt2":
		if !m.Bias {
			return nil, fmt.Errorf("model %s: transformers' gpt2 always has biases; this one has none", m.Name)
		}
		c["architectures"] = []string{"GPT2LMHeadModel"}
		c["n_positions"], c["n_embd"], c["n_layer"], c["n_head"], c["n_inner"] = m.Context, m.Dim, m.Layers, m.Heads, m.FFN
		c["layer_norm_epsilon"], c["activation_function"] = m.NormEps, "gelu_new"
		c["attn_pdrop"], c["embd_pdrop"], c["resid_pdrop"] = 0.0, 0.0, 0.0
	case "llama":
		if err := llamaFamilyConfig(m, c); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("model %s: no Hugging Face config for arch %q", m.Name, m.Arch)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// llamaFamilyConfig fills c for an arch llama model: the model_type is the
// family that has m's features.
func llamaFamilyConfig(m *Model, c map[string]any) error {
	if m.EmbedScale || m.NormOffset != 0 || m.MLPAct == "gelu" || m.AttnScalar > 0 || m.AttnSoftcap > 0 ||
		m.LogitSoftcap > 0 || m.SandwichNorms || m.WindowPattern > 0 || m.RopeLocalTheta > 0 {
		return fmt.Errorf("model %s: lorac writes no config.json for Gemma's features yet", m.Name)
	}
	typ, arch := "llama", "LlamaForCausalLM"
	switch {
	case m.QKNorm:
		typ, arch = "qwen3", "Qwen3ForCausalLM"
	case m.QKVBias:
		typ, arch = "qwen2", "Qwen2ForCausalLM"
	case m.SlidingWindow > 0:
		typ, arch = "mistral", "MistralForCausalLM"
	}
	switch {
	case m.QKNorm && (m.QKVBias || m.Bias):
		return fmt.Errorf("model %s: q/k norms with biases match no Hugging Face family", m.Name)
	case m.QKVBias && m.Bias:
		return fmt.Errorf("model %s: qkv_bias with bias matches no Hugging Face family", m.Name)
	case m.Bias && m.SlidingWindow > 0:
		return fmt.Errorf("model %s: biases with a sliding window match no Hugging Face family", m.Name)
	}
	headDim := m.HeadDim
	if headDim == 0 {
		headDim = m.HeadSize()
	}
	c["model_type"], c["architectures"] = typ, []string{arch}
	c["max_position_embeddings"], c["hidden_size"], c["num_hidden_layers"] = m.Context, m.Dim, m.Layers
	c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"] = m.Heads, m.KVHeads, m.FFN
	c["head_dim"], c["rms_norm_eps"], c["hidden_act"], c["attention_dropout"] = headDim, m.NormEps, "silu", 0.0
	rope := map[string]any{"rope_type": "default", "rope_theta": m.RopeTheta}
	switch m.RopeScaling {
	case "linear":
		rope["rope_type"], rope["factor"] = "linear", m.RopeFactor
	case "llama3":
		rope["rope_type"], rope["factor"] = "llama3", m.RopeFactor
		rope["low_freq_factor"], rope["high_freq_factor"] = m.RopeLowFreq, m.RopeHighFreq
		rope["original_max_position_embeddings"] = m.RopeOrigContext
	}
	c["rope_parameters"] = rope
	switch typ {
	case "llama":
		c["attention_bias"], c["mlp_bias"] = m.Bias, m.Bias
	case "mistral":
		c["sliding_window"] = m.SlidingWindow
	case "qwen2", "qwen3":
		if m.SlidingWindow > 0 {
			c["use_sliding_window"], c["sliding_window"], c["max_window_layers"] = true, m.SlidingWindow, 0
		} else {
			c["use_sliding_window"] = false
		}
	}
	return nil
}
