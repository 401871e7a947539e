package hfimport

import (
	"maps"
	"slices"
)

// A keyUse is what lorac init does with one config.json key. Every key a
// config may hold is listed, for each model_type lorac reads: a key that is
// not listed is refused by name, since lorac cannot tell whether it changes
// the math (the rule format.PEFTKeys applies to adapter_config.json).
type keyUse string

const (
	// useRead keys set the model block. Values lorac does not implement
	// are refused by name (a RoPE type, an activation, biases it lacks).
	useRead keyUse = "read"
	// useMeta keys do not change what the model computes: token ids,
	// dtypes, bookkeeping, task heads lorac does not build.
	useMeta keyUse = "metadata"
	// useTrainOnly keys are dropout of the base model, which only a
	// Hugging Face training run in train mode applies. lorac's base has no
	// dropout (only the adapter's lora_dropout); logits, losses in eval
	// mode and gradients without dropout are unaffected.
	useTrainOnly keyUse = "ignored: base-model dropout, applied only in training"
)

// commonKeys are PretrainedConfig's own keys, the same for every model_type.
var commonKeys = map[string]keyUse{
	"model_type": useRead, "vocab_size": useRead, "tie_word_embeddings": useRead,
	"architectures": useMeta, "dtype": useMeta, "torch_dtype": useMeta, "transformers_version": useMeta,
	"_name_or_path": useMeta, "bos_token_id": useMeta, "eos_token_id": useMeta, "pad_token_id": useMeta,
	"sep_token_id": useMeta, "decoder_start_token_id": useMeta, "use_cache": useMeta,
	"initializer_range": useMeta, "return_dict": useMeta, "output_hidden_states": useMeta,
	"output_attentions": useMeta, "torchscript": useMeta, "use_bfloat16": useMeta,
	"id2label": useMeta, "label2id": useMeta, "problem_type": useMeta, "tokenizer_class": useMeta,
	"prefix": useMeta, "task_specific_params": useMeta, "chunk_size_feed_forward": useMeta,
	"is_encoder_decoder": useRead, "add_cross_attention": useRead,
}

// llamaFamily are the keys the llama-style model_types share.
var llamaFamily = map[string]keyUse{
	"hidden_size": useRead, "intermediate_size": useRead, "num_hidden_layers": useRead,
	"num_attention_heads": useRead, "num_key_value_heads": useRead, "head_dim": useRead,
	"hidden_act": useRead, "max_position_embeddings": useRead, "rms_norm_eps": useRead,
	"rope_theta": useRead, "rope_scaling": useRead, "rope_parameters": useRead,
	"attention_dropout": useTrainOnly,
}

// typeKeys are each model_type's own keys, on top of commonKeys.
var typeKeys = map[string]map[string]keyUse{
	"gpt2": {
		"n_positions": useRead, "n_embd": useRead, "n_layer": useRead, "n_head": useRead, "n_inner": useRead,
		"layer_norm_epsilon": useRead, "activation_function": useRead,
		"scale_attn_weights": useRead, "scale_attn_by_inverse_layer_idx": useRead, "reorder_and_upcast_attn": useRead,
		"n_ctx":      useMeta, // the old name of n_positions, which sets the context
		"attn_pdrop": useTrainOnly, "embd_pdrop": useTrainOnly, "resid_pdrop": useTrainOnly,
		"summary_type": useMeta, "summary_use_proj": useMeta, "summary_activation": useMeta,
		"summary_proj_to_labels": useMeta, "summary_first_dropout": useMeta,
	},
	"llama": with(llamaFamily, map[string]keyUse{
		"attention_bias": useRead, "mlp_bias": useRead,
		"pretraining_tp": useMeta, // a tensor-parallel split of the same products
	}),
	"mistral": with(llamaFamily, map[string]keyUse{"sliding_window": useRead}),
	"qwen2": with(llamaFamily, map[string]keyUse{
		"use_sliding_window": useRead, "sliding_window": useRead, "max_window_layers": useRead, "layer_types": useRead,
		"attention_bias": useMeta, // transformers' Qwen2 always has q, k, v biases and reads no such key
	}),
	"gemma": with(llamaFamily, map[string]keyUse{
		"attention_bias": useRead, "hidden_activation": useRead, "use_bidirectional_attention": useRead,
	}),
	"gemma2": with(llamaFamily, map[string]keyUse{
		"attention_bias": useRead, "hidden_activation": useRead, "use_bidirectional_attention": useRead,
		"query_pre_attn_scalar": useRead, "sliding_window": useRead, "layer_types": useRead,
		"final_logit_softcapping": useRead, "attn_logit_softcapping": useRead,
		"cache_implementation": useMeta, // how generate() caches keys, not what attention computes
		"sliding_window_size":  useMeta, // an old alias transformers 5 no longer reads
	}),
	"gemma3_text": with(llamaFamily, map[string]keyUse{
		"attention_bias": useRead, "hidden_activation": useRead, "use_bidirectional_attention": useRead,
		"query_pre_attn_scalar": useRead, "sliding_window": useRead, "layer_types": useRead,
		"final_logit_softcapping": useRead, "attn_logit_softcapping": useRead,
		"sliding_window_pattern": useRead, "_sliding_window_pattern": useRead, "rope_local_base_freq": useRead,
		"cache_implementation": useMeta, // how generate() caches keys, not what attention computes
	}),
	"qwen3": with(llamaFamily, map[string]keyUse{
		"use_sliding_window": useRead, "sliding_window": useRead, "max_window_layers": useRead, "layer_types": useRead,
		"attention_bias": useRead,
	}),
}

// refusedTypes are model_types lorac knows and does not implement, with
// what it lacks.
var refusedTypes = map[string]string{
	"gemma3":    "the multimodal Gemma 3 (vision tower, text_config) is not supported; import a text-only Gemma 3 (model_type gemma3_text)",
	"mixtral":   "mixture-of-experts feed-forward layers are not implemented",
	"qwen2_moe": "mixture-of-experts feed-forward layers are not implemented",
	"qwen3_moe": "mixture-of-experts feed-forward layers are not implemented",
	"phi3":      "Phi-3's fused qkv and gate_up projections and partial RoPE are not implemented",
}

func with(a, b map[string]keyUse) map[string]keyUse {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// ConfigKeys lists, for a model_type lorac reads, every config.json key it
// accepts and what it does with it ("read", "metadata", or why it is
// ignored); nil for any other model_type.
func ConfigKeys(modelType string) map[string]string {
	t, ok := typeKeys[modelType]
	if !ok {
		return nil
	}
	out := map[string]string{}
	for k, u := range commonKeys {
		out[k] = string(u)
	}
	for k, u := range t {
		out[k] = string(u)
	}
	return out
}

// ModelTypes lists the model_types lorac init reads.
func ModelTypes() []string { return slices.Sorted(maps.Keys(typeKeys)) }
