package format

import (
	"slices"
	"strings"
	"testing"
)

// peftLoraConfigFields is every field of PEFT 0.18's LoraConfig, with the
// PeftConfig fields it inherits.
var peftLoraConfigFields = []string{
	"r", "target_modules", "exclude_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias",
	"use_rslora", "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern",
	"rank_pattern", "alpha_pattern", "megatron_config", "megatron_core", "trainable_token_indices",
	"loftq_config", "eva_config", "corda_config", "use_dora", "use_qalora", "qalora_group_size",
	"layer_replication", "runtime_config", "lora_bias", "target_parameters", "alora_invocation_tokens",
	"arrow_config", "ensure_weight_tying",
	"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version",
}

// peftRefusedSamples is, per refused key, a value PEFT writes for the
// feature and one of its harmless defaults.
var peftRefusedSamples = map[string][2]string{
	"bias":                    {`"all"`, `"none"`},
	"modules_to_save":         {`["score"]`, `[]`},
	"init_lora_weights":       {`"pissa_niter_4"`, `"gaussian"`},
	"megatron_config":         {`{"num_layers": 2}`, `null`},
	"trainable_token_indices": {`{"embed_tokens": [5]}`, `null`},
	"loftq_config":            {`{"loftq_bits": 4}`, `{}`},
	"corda_config":            {`{"corda_method": "kpm"}`, `null`},
	"use_dora":                {`true`, `false`},
	"use_qalora":              {`true`, `false`},
	"layer_replication":       {`[[0, 2], [1, 2]]`, `null`},
	"lora_bias":               {`true`, `false`},
	"target_parameters":       {`["experts.gate_up_proj"]`, `[]`},
	"alora_invocation_tokens": {`[32, 7]`, `null`},
	"arrow_config":            {`{"top_k": 3}`, `null`},
}

// TestPEFTKeysTable: the table lists PEFT's LoraConfig fields, each once,
// each implemented, refused or metadata; a refused key's feature is refused
// by name and its harmless default accepted.
func TestPEFTKeysTable(t *testing.T) {
	var names []string
	for _, k := range PEFTKeys {
		names = append(names, k.Name)
		if k.Why == "" {
			t.Errorf("%s: no reason given", k.Name)
		}
		switch k.Kind {
		case peftKeyImplemented, peftKeyMetadata:
		case peftKeyRefused:
			s, ok := peftRefusedSamples[k.Name]
			if !ok {
				t.Errorf("%s: refused, but the test has no sample value for it", k.Name)
				continue
			}
			base := `{"peft_type": "LORA", "target_modules": ["q_proj"], "` + k.Name + `": `
			_, err := ParsePEFTConfig("adapter_config.json", []byte(base+s[0]+`}`))
			if err == nil || !strings.HasPrefix(err.Error(), "adapter_config.json: "+k.Name) {
				t.Errorf("%s %s: error %v, want one naming the key", k.Name, s[0], err)
			}
			if _, err := ParsePEFTConfig("adapter_config.json", []byte(base+s[1]+`}`)); err != nil {
				t.Errorf("%s %s (harmless default): %v", k.Name, s[1], err)
			}
		default:
			t.Errorf("%s: neither implemented, refused nor metadata", k.Name)
		}
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(peftLoraConfigFields))
	if !slices.Equal(names, want) {
		t.Errorf("PEFTKeys lists\n\t%q\nPEFT's LoraConfig has\n\t%q", names, want)
	}
	if len(slices.Compact(names)) != len(PEFTKeys) {
		t.Error("PEFTKeys lists a key twice")
	}
	// Keys PEFT does not define are ignored, as PEFT ignores them.
	if _, err := ParsePEFTConfig("c", []byte(`{"peft_type": "LORA", "some_future_key": {"x": 1}}`)); err != nil {
		t.Errorf("unknown key: %v", err)
	}
}

// TestReadPEFTChecksTargets: ReadPEFT refuses tensors the config does not
// select, naming the key that fails to select them.
func TestReadPEFTChecksTargets(t *testing.T) {
	A := func(m string, r, in int) WriteTensor { return peftTensor(m, "A", []int{r, in}, "") }
	B := func(m string, out, r int) WriteTensor { return peftTensor(m, "B", []int{out, r}, "") }
	pair := func(m string) []WriteTensor { return []WriteTensor{A(m, 2, 3), B(m, 5, 2)} }
	const gpt2 = "transformer.h.0.attn.c_attn"
	for _, tc := range []struct {
		name, config string
		tensors      []WriteTensor
		want         string
	}{
		{"gpt2 adapter named q_proj", `{"peft_type": "LORA", "r": 2, "target_modules": ["q_proj", "v_proj"]}`, pair(gpt2),
			`module "transformer.h.0.attn.c_attn" is not selected by target_modules ["q_proj","v_proj"]`},
		{"regex", `{"peft_type": "LORA", "r": 2, "target_modules": ".*mlp.*"}`, pair(gpt2),
			`is not selected by target_modules ".*mlp.*"`},
		{"excluded", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "exclude_modules": "transformer\\.h\\.0\\..*"}`, pair(gpt2),
			`module "transformer.h.0.attn.c_attn" is excluded by exclude_modules`},
		{"layers_to_transform", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "layers_to_transform": [1, 2]}`, pair(gpt2),
			`module "transformer.h.0.attn.c_attn" is in layer 0, which layers_to_transform [1 2] does not list`},
		{"layers_to_transform int", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "layers_to_transform": 3}`, pair(gpt2),
			`is in layer 0, which layers_to_transform [3] does not list`},
		{"layers_pattern", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "layers_to_transform": [0], "layers_pattern": "layers"}`, pair(gpt2),
			`has no layer index that layers_to_transform [0] (layers_pattern ["layers"]) can select`},
		{"lm_head tensor", `{"peft_type": "LORA", "r": 2, "target_modules": ".*"}`, pair("lm_head"),
			`module "lm_head": adapting lm_head (an embedding or the output layer) is not supported`},
		{"lm_head target", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn", "lm_head"]}`, pair(gpt2),
			`target_modules "lm_head": adapting lm_head (an embedding or the output layer) is not supported`},
		{"aLoRA", `{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "alora_invocation_tokens": [50256, 11]}`, pair(gpt2),
			PEFTConfigFile + `: alora_invocation_tokens [50256,11]: activated LoRA (aLoRA)`},
		{"regex and layers", `{"peft_type": "LORA", "r": 2, "target_modules": ".*c_attn", "layers_to_transform": [0]}`, pair(gpt2),
			`layers_to_transform cannot be used when target_modules is a regular expression`},
	} {
		dir := peftWriteDir(t, tc.config, tc.tensors)
		_, err := ReadPEFT(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s:\n\terror %v\n\twant one naming %s and containing %q", tc.name, err, dir, tc.want)
		}
	}

	// What PEFT selects loads.
	for _, config := range []string{
		`{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "layers_to_transform": [0, 5], "layers_pattern": ["layers", "h"]}`,
		`{"peft_type": "LORA", "r": 2, "target_modules": ["c_attn"], "layers_to_transform": 0}`,
		`{"peft_type": "LORA", "r": 2, "target_modules": "transformer\\.h\\.\\d+\\.attn\\.c_attn", "exclude_modules": ["c_proj"]}`,
		`{"peft_type": "LORA", "r": 2}`,
	} {
		if _, err := ReadPEFT(peftWriteDir(t, config, pair(gpt2))); err != nil {
			t.Errorf("%s: %v", config, err)
		}
	}
}
