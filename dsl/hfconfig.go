package dsl

import (
	"encoding/json"
	"fmt"
)

// HFConfig returns the Hugging Face config.json of the model block m:
// what transformers needs to build the model that lorac's base weights
// (saved under Hugging Face's names) load into. It is the inverse of
// lorac init's reading (package hfimport), which gives m's architecture
// fields back from it. A model
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
		c["architectures"] = []string{"LlamaForCausalLM"}
		c["max_position_embeddings"], c["hidden_size"], c["num_hidden_layers"] = m.Context, m.Dim, m.Layers
		c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"] = m.Heads, m.KVHeads, m.FFN
		c["head_dim"], c["rms_norm_eps"], c["rope_theta"], c["hidden_act"] = m.HeadSize(), m.NormEps, m.RopeTheta, "silu"
		c["attention_bias"], c["mlp_bias"], c["attention_dropout"] = m.Bias, m.Bias, 0.0
	default:
		return nil, fmt.Errorf("model %s: no Hugging Face config for arch %q", m.Name, m.Arch)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
