package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// How lorac treats one adapter_config.json key.
type peftKeyKind int

const (
	// peftKeyImplemented keys are honoured exactly as PEFT honours them.
	peftKeyImplemented peftKeyKind = iota + 1
	// peftKeyRefused keys change the adapter's math in ways lorac does not
	// reproduce: any value but a harmless default is refused by name.
	peftKeyRefused
	// peftKeyMetadata keys do not change what a loaded adapter computes.
	peftKeyMetadata
)

// peftKey is one row of PEFTKeys.
type peftKey struct {
	Name string
	Kind peftKeyKind
	// Harmless lists, for a refused key, the JSON values (compact) that
	// are PEFT's no-op defaults and so accepted; absent and null are
	// always accepted. harmlessFn, if set, decides instead.
	Harmless   []string
	harmlessFn func(raw json.RawMessage) bool
	// Why says, for a refused key, what the feature does that lorac does
	// not; for the others, how lorac treats it.
	Why string
}

// PEFTKeys lists every field of PEFT's LoraConfig (and of PeftConfig, which
// it extends) as of PEFT 0.18 (src/peft/tuners/lora/config.py and
// src/peft/config.py; fields target_parameters and alora_invocation_tokens
// came in 0.17, arrow_config and ensure_weight_tying in 0.18). Every
// load of an adapter_config.json (ParsePEFTConfig, so ReadPEFT, lorac
// init, eval, generate, merge and export) applies it: a refused key with a
// value other than its harmless defaults is an error naming the key. Keys
// PEFT does not define are ignored, as PEFT ignores them.
var PEFTKeys = []peftKey{
	{Name: "peft_type", Kind: peftKeyImplemented, Why: `must be "LORA"`},
	{Name: "r", Kind: peftKeyImplemented, Why: "the rank; checked against every lora_A and lora_B"},
	{Name: "target_modules", Kind: peftKeyImplemented, Why: "a list (name or .name suffix) or one regular expression over whole module names; every tensor's module must match"},
	{Name: "exclude_modules", Kind: peftKeyImplemented, Why: "a list or one regular expression, matched like target_modules; no tensor's module may match"},
	{Name: "lora_alpha", Kind: peftKeyImplemented, Why: "scale alpha/r"},
	{Name: "lora_dropout", Kind: peftKeyImplemented, Why: "dropout on the LoRA input when training; none at inference"},
	{Name: "fan_in_fan_out", Kind: peftKeyImplemented, Why: "the base weight's layout (GPT-2's Conv1D); lora_A and lora_B keep theirs"},
	{Name: "use_rslora", Kind: peftKeyImplemented, Why: "scale alpha/√r"},
	{Name: "rank_pattern", Kind: peftKeyImplemented, Why: "per-module ranks, first matching key in file order"},
	{Name: "alpha_pattern", Kind: peftKeyImplemented, Why: "per-module alphas, first matching key in file order"},
	{Name: "layers_to_transform", Kind: peftKeyImplemented, Why: "layer indices; every tensor's module must be in one of them"},
	{Name: "layers_pattern", Kind: peftKeyImplemented, Why: "the name of the layer list before the index (e.g. \"layers\", \"h\")"},
	{Name: "bias", Kind: peftKeyRefused, Harmless: []string{`"none"`},
		Why: "trained biases are not supported; only \"none\""},
	{Name: "modules_to_save", Kind: peftKeyRefused, Harmless: []string{`[]`},
		Why: "fully fine-tuned modules are not supported; only LoRA weights (modules_to_save null)"},
	{Name: "init_lora_weights", Kind: peftKeyRefused, harmlessFn: peftHarmlessInit,
		Why: "initialisations that change the base weights (PiSSA, OLoRA, CorDA, LoftQ) need a residual base model lorac does not have; only true, false, \"gaussian\", \"orthogonal\" or \"eva\", or an adapter converted back to plain LoRA"},
	{Name: "megatron_config", Kind: peftKeyRefused,
		Why: "Megatron parallel layers are not supported (megatron_config null)"},
	{Name: "megatron_core", Kind: peftKeyMetadata, Why: "used only with megatron_config, which is refused"},
	{Name: "trainable_token_indices", Kind: peftKeyRefused,
		Why: "trained embedding rows are not supported (trainable_token_indices null)"},
	{Name: "loftq_config", Kind: peftKeyRefused, Harmless: []string{`{}`},
		Why: "LoftQ quantises the base weights, which lorac does not (loftq_config {})"},
	{Name: "eva_config", Kind: peftKeyMetadata, Why: "EVA only initialises lora_A; its ranks are in rank_pattern"},
	{Name: "corda_config", Kind: peftKeyRefused,
		Why: "CorDA changes the base weights, which lorac does not (corda_config null)"},
	{Name: "use_dora", Kind: peftKeyRefused, Harmless: []string{`false`},
		Why: "DoRA adapters are not supported; only plain LoRA (use_dora false)"},
	{Name: "use_qalora", Kind: peftKeyRefused, Harmless: []string{`false`},
		Why: "QALoRA (pooled inputs over a quantised base) is not supported (use_qalora false)"},
	{Name: "qalora_group_size", Kind: peftKeyMetadata, Why: "used only with use_qalora, which is refused"},
	{Name: "layer_replication", Kind: peftKeyRefused, Harmless: []string{`[]`},
		Why: "stacking repeated base layers is not supported (layer_replication null)"},
	{Name: "runtime_config", Kind: peftKeyMetadata, Why: "runtime options, not saved by PEFT"},
	{Name: "lora_bias", Kind: peftKeyRefused, Harmless: []string{`false`},
		Why: "a bias on lora_B is not supported (lora_bias false)"},
	{Name: "target_parameters", Kind: peftKeyRefused, Harmless: []string{`[]`},
		Why: "LoRA on nn.Parameter tensors (e.g. MoE experts) is not supported (target_parameters null)"},
	{Name: "alora_invocation_tokens", Kind: peftKeyRefused, Harmless: []string{`[]`},
		Why: "activated LoRA (aLoRA), which adapts only tokens after the invocation sequence, is not supported (alora_invocation_tokens null)"},
	{Name: "arrow_config", Kind: peftKeyRefused,
		Why: "Arrow routing between LoRA experts is not supported (arrow_config null)"},
	{Name: "ensure_weight_tying", Kind: peftKeyMetadata, Why: "acts only on tied embedding and output layers, which lorac never adapts (modules_to_save, trainable_token_indices and such targets are refused)"},
	{Name: "task_type", Kind: peftKeyMetadata, Why: "the Hugging Face model class; lorac runs causal LMs"},
	{Name: "base_model_name_or_path", Kind: peftKeyMetadata, Why: "informational; the base is given on the command line"},
	{Name: "revision", Kind: peftKeyMetadata, Why: "informational"},
	{Name: "inference_mode", Kind: peftKeyMetadata, Why: "whether PEFT freezes the adapter"},
	{Name: "auto_mapping", Kind: peftKeyMetadata, Why: "informational"},
	{Name: "peft_version", Kind: peftKeyMetadata, Why: "informational"},
}

// peftHarmlessInit accepts the init_lora_weights values that only
// initialise lora_A and lora_B and leave the base weights alone.
func peftHarmlessInit(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case bool:
		return true
	case string:
		return v == "gaussian" || v == "orthogonal" || v == "eva"
	}
	return false
}

// checkPEFTKeys applies PEFTKeys to the decoded top-level object.
func checkPEFTKeys(raw map[string]json.RawMessage) error {
	for _, k := range PEFTKeys {
		v, ok := raw[k.Name]
		if !ok || k.Kind != peftKeyRefused {
			continue
		}
		var c bytes.Buffer
		if json.Compact(&c, v) != nil || c.String() == "null" {
			continue
		}
		harmless := false
		if k.harmlessFn != nil {
			harmless = k.harmlessFn(c.Bytes())
		}
		for _, h := range k.Harmless {
			harmless = harmless || c.String() == h
		}
		if !harmless {
			val := c.String()
			if len(val) > 60 {
				val = val[:57] + "..."
			}
			if val == "true" { // a switched-on feature: its name says it
				return fmt.Errorf("%s: %s", k.Name, k.Why)
			}
			return fmt.Errorf("%s %s: %s", k.Name, val, k.Why)
		}
	}
	return nil
}

// peftOutsideLayers are module names lorac never adapts: embeddings and the
// output layer. An adapter that targets them is refused by name rather than
// failing later as an unknown module.
var peftOutsideLayers = []string{"lm_head", "embed_tokens", "wte", "wpe", "embed_out", "embed_in"}

// peftOutsideLayer reports the name in peftOutsideLayers that module is
// (or ends with), if any.
func peftOutsideLayer(module string) (string, bool) {
	for _, n := range peftOutsideLayers {
		if module == n || strings.HasSuffix(module, "."+n) {
			return n, true
		}
	}
	return "", false
}

// peftLayerIndex is PEFT's layer index of module for layers_to_transform:
// with no layers_pattern the number in the last ".name.N." of the name,
// else the number after ".pattern." for the first pattern that has one.
func (c *PEFTConfig) peftLayerIndex(module string) (int, bool, error) {
	exprs := []string{`^.*\.[^.]*\.(\d+)\.`}
	if len(c.LayersPattern) > 0 {
		exprs = nil
		for _, p := range c.LayersPattern {
			exprs = append(exprs, `^.*\.(?:`+p+`)\.(\d+)\.`)
		}
	}
	for i, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return 0, false, fmt.Errorf("layers_pattern %q: %v", c.LayersPattern[i], err)
		}
		if m := re.FindStringSubmatch(module); m != nil {
			n, err := strconv.Atoi(m[1])
			return n, err == nil, nil
		}
	}
	return 0, false, nil
}

// CheckModule says why the config does not adapt module, the way PEFT
// chooses modules: target_modules must select it, exclude_modules must not,
// its layer must be in layers_to_transform (see peftLayerIndex), and it may
// not be an embedding or the output layer. nil means PEFT would adapt it.
// A config with no target_modules (PEFT's per-architecture defaults, which
// save_pretrained never writes) selects every module.
func (c *PEFTConfig) CheckModule(module string) error {
	if n, ok := peftOutsideLayer(module); ok {
		return fmt.Errorf("module %q: adapting %s (an embedding or the output layer) is not supported; only linear layers inside the transformer blocks", module, n)
	}
	if c.TargetRegex != "" || len(c.TargetModules) > 0 {
		match, err := c.TargetMatcher()
		if err != nil {
			return fmt.Errorf("target_modules: %v", err)
		}
		if !match(module) {
			return fmt.Errorf("module %q is not selected by target_modules %s", module, c.targetString())
		}
	}
	if c.ExcludeRegex != "" || len(c.ExcludeModules) > 0 {
		ex := &PEFTConfig{TargetModules: c.ExcludeModules, TargetRegex: c.ExcludeRegex}
		match, err := ex.TargetMatcher()
		if err != nil {
			return fmt.Errorf("exclude_modules: %v", err)
		}
		if match(module) {
			return fmt.Errorf("module %q is excluded by exclude_modules", module)
		}
	}
	if c.LayersToTransform != nil {
		i, ok, err := c.peftLayerIndex(module)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("module %q has no layer index that layers_to_transform %v (layers_pattern %q) can select", module, c.LayersToTransform, c.LayersPattern)
		}
		found := false
		for _, l := range c.LayersToTransform {
			found = found || l == i
		}
		if !found {
			return fmt.Errorf("module %q is in layer %d, which layers_to_transform %v does not list", module, i, c.LayersToTransform)
		}
	}
	return nil
}

func (c *PEFTConfig) targetString() string {
	if c.TargetRegex != "" {
		return strconv.Quote(c.TargetRegex)
	}
	js, _ := json.Marshal(c.TargetModules)
	return string(js)
}

// LayersNote is " (with layers_to_transform [...])" when the config limits
// layers, else "": for messages about modules no target matched.
func (c *PEFTConfig) LayersNote() string {
	if c.LayersToTransform == nil {
		return ""
	}
	return fmt.Sprintf(" (with layers_to_transform %v)", c.LayersToTransform)
}
