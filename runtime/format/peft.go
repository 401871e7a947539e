package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// A PEFT LoRA adapter directory, as written by Hugging Face PEFT's
// save_pretrained: adapter_config.json plus adapter_model.safetensors with
// one lora_A [r, in] and one lora_B [out, r] per adapted module.
const (
	// PEFTConfigFile is the adapter directory's configuration file.
	PEFTConfigFile = "adapter_config.json"
	// PEFTWeightsFile is the adapter directory's weights file.
	PEFTWeightsFile = "adapter_model.safetensors"

	peftKeyPrefix = "base_model.model."
	peftASuffix   = ".lora_A.weight"
	peftBSuffix   = ".lora_B.weight"
)

// PEFT's defaults for keys absent from adapter_config.json (LoraConfig's
// field defaults), so a hand-written minimal config reads as PEFT reads it.
const (
	peftDefaultR     = 8
	peftDefaultAlpha = 8
)

// PEFTConfig is adapter_config.json for a LoRA adapter. Only the keys lorac
// understands are kept; others are ignored on read, as PEFT does.
type PEFTConfig struct {
	PeftType            string  `json:"peft_type"` // must be "LORA"
	TaskType            string  `json:"task_type,omitempty"`
	BaseModelNameOrPath string  `json:"base_model_name_or_path"`
	R                   int     `json:"r"`
	LoraAlpha           float64 `json:"lora_alpha"`
	LoraDropout         float64 `json:"lora_dropout"`
	// TargetModules lists module names (matched as name or ".name"
	// suffix by PEFT). PEFT also accepts a single string, a regular
	// expression over full module names; that is kept in TargetRegex and
	// TargetModules is then empty. At most one of the two is set.
	TargetModules []string `json:"target_modules"`
	TargetRegex   string   `json:"-"`
	// ExcludeModules and ExcludeRegex are exclude_modules, matched like
	// target_modules: a module they select is not adapted.
	ExcludeModules []string `json:"exclude_modules"`
	ExcludeRegex   string   `json:"-"`
	// LayersToTransform is layers_to_transform (PEFT also accepts one
	// integer, read as a list of one); nil means every layer.
	// LayersPattern is layers_pattern (one name or a list).
	LayersToTransform []int    `json:"layers_to_transform"`
	LayersPattern     []string `json:"layers_pattern"`
	Bias              string   `json:"bias"` // only "none" is supported
	// FanInFanOut marks base weights stored [in, out] (GPT-2's Conv1D).
	// lora_A and lora_B keep their [r, in] and [out, r] layout either way.
	FanInFanOut     bool               `json:"fan_in_fan_out"`
	UseRSLoRA       bool               `json:"use_rslora"`
	RankPattern     map[string]int     `json:"rank_pattern"`
	AlphaPattern    map[string]float64 `json:"alpha_pattern"`
	InitLoraWeights any                `json:"init_lora_weights"` // bool or string in PEFT
	UseDoRA         bool               `json:"use_dora"`          // unsupported: must be false
	ModulesToSave   []string           `json:"modules_to_save"`   // unsupported: must be empty
	InferenceMode   bool               `json:"inference_mode"`

	// rankOrder and alphaOrder keep the patterns' keys in file order:
	// PEFT takes the first matching key in that order.
	rankOrder, alphaOrder []string
}

// UnmarshalJSON decodes adapter_config.json, accepting target_modules as a
// list of names or as a single regular expression (stored in TargetRegex).
// Keys absent from data leave the receiver's fields unchanged.
func (c *PEFTConfig) UnmarshalJSON(data []byte) error {
	type plain PEFTConfig // without methods, so decoding does not recurse
	aux := struct {
		*plain
		TargetModules     json.RawMessage `json:"target_modules"`
		ExcludeModules    json.RawMessage `json:"exclude_modules"`
		LayersToTransform json.RawMessage `json:"layers_to_transform"`
		LayersPattern     json.RawMessage `json:"layers_pattern"`
		RankPattern       json.RawMessage `json:"rank_pattern"`
		AlphaPattern      json.RawMessage `json:"alpha_pattern"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	if aux.ExcludeModules != nil {
		c.ExcludeModules, c.ExcludeRegex = nil, ""
		if err := namesOrRegex("exclude_modules", aux.ExcludeModules, &c.ExcludeModules, &c.ExcludeRegex); err != nil {
			return err
		}
	}
	if aux.LayersToTransform != nil {
		c.LayersToTransform = nil
		switch stKind(aux.LayersToTransform) {
		case "null":
		case "a number":
			var n int
			if err := json.Unmarshal(aux.LayersToTransform, &n); err != nil {
				return fmt.Errorf("layers_to_transform is %s, expected a layer index or a list of them", aux.LayersToTransform)
			}
			c.LayersToTransform = []int{n}
		case "an array":
			if err := json.Unmarshal(aux.LayersToTransform, &c.LayersToTransform); err != nil {
				return errors.New("layers_to_transform: expected a list of layer indices")
			}
		default:
			return fmt.Errorf("layers_to_transform is %s, expected a layer index or a list of them", stKind(aux.LayersToTransform))
		}
	}
	if aux.LayersPattern != nil {
		c.LayersPattern = nil
		var one string
		if err := namesOrRegex("layers_pattern", aux.LayersPattern, &c.LayersPattern, &one); err != nil {
			return err
		}
		if one != "" {
			c.LayersPattern = []string{one}
		}
	}
	if aux.RankPattern != nil {
		c.RankPattern, c.rankOrder = nil, nil
		if err := orderedObject(aux.RankPattern, &c.RankPattern, &c.rankOrder); err != nil {
			return patternErr("rank_pattern", err)
		}
	}
	if aux.AlphaPattern != nil {
		c.AlphaPattern, c.alphaOrder = nil, nil
		if err := orderedObject(aux.AlphaPattern, &c.AlphaPattern, &c.alphaOrder); err != nil {
			return patternErr("alpha_pattern", err)
		}
	}
	if aux.TargetModules == nil {
		return nil
	}
	c.TargetModules, c.TargetRegex = nil, ""
	return namesOrRegex("target_modules", aux.TargetModules, &c.TargetModules, &c.TargetRegex)
}

// namesOrRegex decodes raw, a list of names or one string, into names or
// one; null leaves both empty.
func namesOrRegex(key string, raw json.RawMessage, names *[]string, one *string) error {
	switch stKind(raw) {
	case "null":
	case "a string":
		return json.Unmarshal(raw, one)
	case "an array":
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return err
		}
		*names = make([]string, len(elems))
		for i, e := range elems {
			if stKind(e) != "a string" {
				return fmt.Errorf("%s: element %d is %s, expected a module name", key, i, stKind(e))
			}
			if err := json.Unmarshal(e, &(*names)[i]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s is %s, expected a list of module names or one regular expression", key, stKind(raw))
	}
	return nil
}

// MarshalJSON encodes the config as PEFT writes it: keys sorted,
// target_modules the regular expression when TargetRegex is set, else the
// names sorted (PEFT keeps them as a set), and empty rank_pattern and
// alpha_pattern as {}. Sorted, stable output makes adapters diff cleanly.
func (c PEFTConfig) MarshalJSON() ([]byte, error) {
	type plain PEFTConfig
	p := plain(c)
	if p.RankPattern == nil {
		p.RankPattern = map[string]int{}
	}
	if p.AlphaPattern == nil {
		p.AlphaPattern = map[string]float64{}
	}
	var excludes any
	switch {
	case c.ExcludeRegex != "" && len(c.ExcludeModules) > 0:
		return nil, errors.New("exclude_modules: both a list of names and a regular expression are set")
	case c.ExcludeRegex != "":
		excludes = c.ExcludeRegex
	case c.ExcludeModules != nil:
		sorted := slices.Clone(c.ExcludeModules)
		slices.Sort(sorted)
		excludes = sorted
	}
	var targets any
	switch {
	case c.TargetRegex != "" && len(c.TargetModules) > 0:
		return nil, errors.New("target_modules: both a list of names and a regular expression are set")
	case c.TargetRegex != "":
		targets = c.TargetRegex
	case c.TargetModules != nil:
		sorted := slices.Clone(c.TargetModules)
		slices.Sort(sorted)
		targets = sorted
	}
	js, err := json.Marshal(struct {
		plain
		TargetModules  any `json:"target_modules"`
		ExcludeModules any `json:"exclude_modules"`
	}{p, targets, excludes})
	if err != nil {
		return nil, err
	}
	// Round trip through a map, which encoding/json writes with sorted
	// keys, rather than keeping a second, sorted copy of the field list.
	var byKey map[string]json.RawMessage
	if err := json.Unmarshal(js, &byKey); err != nil {
		return nil, err
	}
	return json.Marshal(byKey)
}

// ParsePEFTConfig decodes and checks adapter_config.json; path is used only
// in messages. Keys absent from data take PEFT's defaults (r 8, lora_alpha 8,
// bias "none", init_lora_weights true). Features lorac cannot honour are
// errors naming the feature: another peft_type, DoRA, modules_to_save and
// trained biases.
func ParsePEFTConfig(path string, data []byte) (*PEFTConfig, error) {
	c := &PEFTConfig{R: peftDefaultR, LoraAlpha: peftDefaultAlpha, Bias: "none", InitLoraWeights: true}
	if stKind(data) != "an object" {
		return nil, fmt.Errorf("%s: expected a JSON object, found %s", path, stKind(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, peftJSONErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the JSON object", path)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, peftJSONErr(err))
	}
	if err := checkPEFTKeys(raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// peftJSONErr words decoder errors for people: the key at fault, and no
// Go internals.
func peftJSONErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// Field is a Go path through UnmarshalJSON's wrapper struct.
		field := strings.TrimPrefix(te.Field, "plain.")
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.Int:
			want = "an integer"
		case reflect.Float64:
			want = "a number"
		case reflect.Bool:
			want = "true or false"
		case reflect.String:
			want = "a string"
		case reflect.Slice:
			want = "a list"
		case reflect.Map:
			want = "an object"
		}
		return fmt.Errorf("%s is a JSON %s, expected %s", field, te.Value, want)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of file")
	}
	return err
}

// Validate refuses what lorac cannot load faithfully. Each message names the
// key and says what lorac needs instead.
func (c *PEFTConfig) Validate() error {
	if c.PeftType != "LORA" {
		return fmt.Errorf("peft_type %q is not supported; only \"LORA\" adapters are", c.PeftType)
	}
	if c.UseDoRA {
		return errors.New("use_dora: DoRA adapters are not supported; only plain LoRA (use_dora false)")
	}
	if len(c.ModulesToSave) > 0 {
		return fmt.Errorf("modules_to_save %q: fully fine-tuned modules are not supported; only LoRA weights (modules_to_save null)", c.ModulesToSave)
	}
	if c.Bias != "none" && c.Bias != "" {
		return fmt.Errorf("bias %q: trained biases are not supported; only \"none\"", c.Bias)
	}
	if c.R <= 0 {
		return fmt.Errorf("r is %d, expected a positive rank", c.R)
	}
	for k, r := range c.RankPattern {
		if r <= 0 {
			return fmt.Errorf("rank_pattern[%q] is %d, expected a positive rank", k, r)
		}
	}
	if !(c.LoraDropout >= 0 && c.LoraDropout <= 1) {
		return fmt.Errorf("lora_dropout is %v, expected a probability in [0, 1]", c.LoraDropout)
	}
	if c.TargetRegex != "" && len(c.TargetModules) > 0 {
		return errors.New("target_modules: both a list of names and a regular expression are set")
	}
	if c.ExcludeRegex != "" && len(c.ExcludeModules) > 0 {
		return errors.New("exclude_modules: both a list of names and a regular expression are set")
	}
	for _, t := range c.TargetModules {
		if n, ok := peftOutsideLayer(t); ok {
			return fmt.Errorf("target_modules %q: adapting %s (an embedding or the output layer) is not supported; only linear layers inside the transformer blocks", t, n)
		}
	}
	if c.TargetRegex != "" && c.LayersToTransform != nil {
		return errors.New("layers_to_transform cannot be used when target_modules is a regular expression (PEFT refuses it too)")
	}
	if c.TargetRegex != "" && len(c.LayersPattern) > 0 {
		return errors.New("layers_pattern cannot be used when target_modules is a regular expression (PEFT refuses it too)")
	}
	if len(c.LayersPattern) > 0 && len(c.LayersToTransform) == 0 {
		return errors.New("layers_pattern needs layers_to_transform (PEFT refuses it too)")
	}
	for _, l := range c.LayersToTransform {
		if l < 0 {
			return fmt.Errorf("layers_to_transform lists %d, expected layer indices from 0", l)
		}
	}
	if _, _, err := c.peftLayerIndex("x"); err != nil {
		return err
	}
	if c.TargetRegex != "" || len(c.TargetModules) > 0 {
		if _, err := c.TargetMatcher(); err != nil {
			return fmt.Errorf("target_modules: %v", err)
		}
	}
	if c.ExcludeRegex != "" {
		if _, err := (&PEFTConfig{TargetRegex: c.ExcludeRegex}).TargetMatcher(); err != nil {
			return fmt.Errorf("exclude_modules: %v", err)
		}
	}
	return nil
}

// patternErr names the pattern in a type error, as the other fields' errors
// are named.
func patternErr(field string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		named := *te
		named.Field = field
		return &named
	}
	return fmt.Errorf("%s: %w", field, err)
}

// orderedObject decodes a JSON object into m and records its keys in file
// order (null leaves m nil).
func orderedObject[V any](raw json.RawMessage, m *map[string]V, order *[]string) error {
	if err := json.Unmarshal(raw, m); err != nil {
		return err
	}
	if *m == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		*order = append(*order, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// peftPatternKey returns the first key of a rank_pattern or alpha_pattern
// that matches module, in the order the keys stood in adapter_config.json,
// as PEFT does; a pattern built in Go (no file order) is tried in sorted
// order.
//
// A key matches when it equals module or is a suffix after a dot
// ("q_proj" matches "model.layers.0.self_attn.q_proj"), which is what PEFT's
// regular expression `(.*\.)?key$` does for plain names. Keys that are
// regular expressions are also tried that way, anchored at both ends; a key
// that is not a valid Go regular expression matches only literally.
func peftPatternKey[V any](pattern map[string]V, order []string, module string) (string, bool) {
	keys := order
	if len(keys) != len(pattern) {
		keys = slices.Sorted(maps.Keys(pattern))
	}
	for _, k := range keys {
		if _, ok := pattern[k]; !ok {
			continue
		}
		if peftKeyMatches(k, module) {
			return k, true
		}
	}
	return "", false
}

// peftKeyMatches reports whether the pattern key k matches module, i.e.
// whether module matches the regular expression `(.*\.)?k` as a whole.
func peftKeyMatches(k, module string) bool {
	if module == k || strings.HasSuffix(module, "."+k) {
		return true
	}
	const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
	if strings.Trim(k, nameChars) == "" && strings.Trim(module, nameChars) == "" {
		// Module names as keys: the only metacharacter is the dot, which
		// matches any one character (here one byte: both are ASCII). That
		// is the common case (lorac writes full module names), and
		// matching it by hand saves compiling an expression per key per
		// lookup.
		i := len(module) - len(k)
		if i < 0 || i > 0 && module[i-1] != '.' {
			return false
		}
		for j := range len(k) {
			if k[j] != '.' && k[j] != module[i+j] {
				return false
			}
		}
		return true
	}
	re, err := regexp.Compile(`^(?:.*\.)?(?:` + k + `)$`)
	return err == nil && re.MatchString(module)
}

// RankFor is module's LoRA rank: its rank_pattern entry (see peftPatternKey
// for matching: the first matching key in file order wins) or else r.
func (c *PEFTConfig) RankFor(module string) int {
	if k, ok := peftPatternKey(c.RankPattern, c.rankOrder, module); ok {
		return c.RankPattern[k]
	}
	return c.R
}

// AlphaFor is module's LoRA alpha: its alpha_pattern entry (matched like
// RankFor) or else lora_alpha. Like PEFT, a module whose rank comes from
// rank_pattern still takes lora_alpha unless alpha_pattern names it too.
func (c *PEFTConfig) AlphaFor(module string) float64 {
	if k, ok := peftPatternKey(c.AlphaPattern, c.alphaOrder, module); ok {
		return c.AlphaPattern[k]
	}
	return c.LoraAlpha
}

// Scale is the factor s in y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ for module: alpha/r, or
// alpha/√r with rsLoRA, which keeps the update's magnitude stable as r grows.
// It is 0 for a non-positive rank, which check refuses anyway.
func (c *PEFTConfig) Scale(module string) float64 {
	r := c.RankFor(module)
	if r <= 0 {
		return 0
	}
	if c.UseRSLoRA {
		return c.AlphaFor(module) / math.Sqrt(float64(r))
	}
	return c.AlphaFor(module) / float64(r)
}

// LoRAWeights is one adapted module's pair of LoRA matrices, row-major.
type LoRAWeights struct {
	Module        string    // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
	A             []float32 // (Rank, In)
	B             []float32 // (Out, Rank)
	Rank, In, Out int
}

// PEFTAdapter is a LoRA adapter as stored in a PEFT directory.
type PEFTAdapter struct {
	Config  PEFTConfig
	Modules []LoRAWeights // sorted by module name
}

// ReadPEFT reads the PEFT LoRA adapter in dir: its config (see
// ParsePEFTConfig) and its weights, F32, F16 or BF16, widened to float32.
// Every tensor must be a lora_A or lora_B weight under base_model.model.,
// and every module needs both, with A (r, in) and B (out, r) where r is the
// module's rank from the config.
func ReadPEFT(dir string) (*PEFTAdapter, error) {
	cpath := filepath.Join(dir, PEFTConfigFile)
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, err
	}
	cfg, err := ParsePEFTConfig(cpath, data)
	if err != nil {
		return nil, err
	}

	wpath := filepath.Join(dir, PEFTWeightsFile)
	if _, err := os.Stat(wpath); errors.Is(err, fs.ErrNotExist) {
		if _, berr := os.Stat(filepath.Join(dir, "adapter_model.bin")); berr == nil {
			return nil, fmt.Errorf("%s: not found; adapter_model.bin (a PyTorch pickle) is not supported, save the adapter with safe_serialization=True", wpath)
		}
	}
	st, err := OpenSafetensors(wpath)
	if err != nil {
		return nil, err
	}
	defer st.Close()

	type pair struct{ a, b *TensorInfo }
	pairs := map[string]*pair{}
	for i := range st.Tensors {
		t := &st.Tensors[i]
		module, isA, ok := peftSplitKey(t.Name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: expected only %s<module>%s and %s<module>%s keys",
				wpath, t.Name, peftKeyPrefix, peftASuffix, peftKeyPrefix, peftBSuffix)
		}
		if len(t.Shape) != 2 {
			return nil, fmt.Errorf("%s: tensor %q: shape %s, expected two dimensions", wpath, t.Name, ShapeString(t.Shape))
		}
		p := pairs[module]
		if p == nil {
			p = &pair{}
			pairs[module] = p
		}
		if isA {
			p.a = t
		} else {
			p.b = t
		}
	}

	a := &PEFTAdapter{Config: *cfg}
	for _, module := range slices.Sorted(maps.Keys(pairs)) {
		p := pairs[module]
		if p.a == nil || p.b == nil {
			have, miss := peftKeyPrefix+module+peftBSuffix, peftKeyPrefix+module+peftASuffix
			if p.b == nil {
				have, miss = miss, have
			}
			return nil, fmt.Errorf("%s: module %q has %q but no %q", wpath, module, have, miss)
		}
		r, in := p.a.Shape[0], p.a.Shape[1]
		out, rb := p.b.Shape[0], p.b.Shape[1]
		if rb != r {
			return nil, fmt.Errorf("%s: module %q: lora_A %s is (r, in) with r = %d, but lora_B %s is (out, r) with r = %d",
				wpath, module, ShapeString(p.a.Shape), r, ShapeString(p.b.Shape), rb)
		}
		if err := cfg.CheckModule(module); err != nil {
			return nil, fmt.Errorf("%s: %v in %s", wpath, err, cpath)
		}
		if want := cfg.RankFor(module); r != want {
			return nil, fmt.Errorf("%s: module %q: rank %d in the weights, but %s gives rank %d", wpath, module, r, cpath, want)
		}
		w := LoRAWeights{Module: module, Rank: r, In: in, Out: out,
			A: make([]float32, r*in), B: make([]float32, out*r)}
		if err := st.ReadFloat32(p.a.Name, p.a.Shape, w.A); err != nil {
			return nil, err
		}
		if err := st.ReadFloat32(p.b.Name, p.b.Shape, w.B); err != nil {
			return nil, err
		}
		a.Modules = append(a.Modules, w)
	}
	return a, nil
}

// peftSplitKey takes "base_model.model.<module>.lora_A.weight" apart.
func peftSplitKey(key string) (module string, isA, ok bool) {
	rest, ok := strings.CutPrefix(key, peftKeyPrefix)
	if !ok {
		return "", false, false
	}
	if m, ok := strings.CutSuffix(rest, peftASuffix); ok && m != "" {
		return m, true, true
	}
	if m, ok := strings.CutSuffix(rest, peftBSuffix); ok && m != "" {
		return m, false, true
	}
	return "", false, false
}

// WritePEFT writes a as a PEFT adapter directory that PEFT's
// PeftModel.from_pretrained loads: adapter_model.safetensors (F32, metadata
// {"format": "pt"} as PEFT writes) and adapter_config.json (indented;
// peft_type "LORA" and task_type "CAUSAL_LM" when empty, init_lora_weights
// true when nil, bias "none" when empty). dir is created if needed. Each file is written atomically,
// weights first and config last, so a directory with a config always has
// its weights. a is checked as ReadPEFT would check it, so what WritePEFT
// writes ReadPEFT reads.
func WritePEFT(dir string, a *PEFTAdapter) error {
	if a == nil {
		return fmt.Errorf("%s: no adapter to write", dir)
	}
	cfg := a.Config
	if cfg.PeftType == "" {
		cfg.PeftType = "LORA"
	}
	if cfg.TaskType == "" {
		cfg.TaskType = "CAUSAL_LM"
	}
	if cfg.InitLoraWeights == nil {
		cfg.InitLoraWeights = true
	}
	if cfg.Bias == "" {
		cfg.Bias = "none" // PEFT's training code rejects an empty bias
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(dir, PEFTConfigFile), err)
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(dir, PEFTConfigFile), err)
	}
	js = append(js, '\n')

	wpath := filepath.Join(dir, PEFTWeightsFile)
	tensors := make([]WriteTensor, 0, 2*len(a.Modules))
	seen := map[string]bool{}
	for _, m := range a.Modules {
		switch {
		case m.Module == "":
			return fmt.Errorf("%s: a module has an empty name", wpath)
		case seen[m.Module]:
			return fmt.Errorf("%s: module %q appears twice", wpath, m.Module)
		case m.Rank <= 0 || m.In <= 0 || m.Out <= 0:
			return fmt.Errorf("%s: module %q: rank %d, in %d, out %d; expected positive sizes", wpath, m.Module, m.Rank, m.In, m.Out)
		case len(m.A) != m.Rank*m.In:
			return fmt.Errorf("%s: module %q: A has %d values, but (rank, in) = (%d, %d) needs %d", wpath, m.Module, len(m.A), m.Rank, m.In, m.Rank*m.In)
		case len(m.B) != m.Out*m.Rank:
			return fmt.Errorf("%s: module %q: B has %d values, but (out, rank) = (%d, %d) needs %d", wpath, m.Module, len(m.B), m.Out, m.Rank, m.Out*m.Rank)
		case m.Rank != cfg.RankFor(m.Module):
			return fmt.Errorf("%s: module %q: rank %d, but the config gives rank %d", wpath, m.Module, m.Rank, cfg.RankFor(m.Module))
		}
		seen[m.Module] = true
		tensors = append(tensors, peftTensors(m)...)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := WriteSafetensors(wpath, tensors, peftMetadata); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, PEFTConfigFile), func(w io.Writer) error {
		_, err := w.Write(js)
		return err
	})
}

// peftMetadata is the safetensors metadata PEFT writes.
var peftMetadata = map[string]string{"format": "pt"}

// peftTensors names one module's A and B as adapter_model.safetensors does.
func peftTensors(m LoRAWeights) []WriteTensor {
	return []WriteTensor{
		{Name: peftKeyPrefix + m.Module + peftASuffix, Shape: []int{m.Rank, m.In}, Data: m.A},
		{Name: peftKeyPrefix + m.Module + peftBSuffix, Shape: []int{m.Out, m.Rank}, Data: m.B},
	}
}

// PEFTWeightsSize is the size in bytes of the adapter_model.safetensors that
// WritePEFT writes for modules of these names and shapes (A and B need not
// be set): what `lorac check` reports before anything is trained.
func PEFTWeightsSize(modules []LoRAWeights) (int64, error) {
	var tensors []WriteTensor
	for _, m := range modules {
		tensors = append(tensors, peftTensors(m)...)
	}
	return SafetensorsSize(tensors, peftMetadata)
}

// TargetMatcher returns PEFT's test of whether target_modules selects a
// module: for a list, the name equals an entry or ends with "." + entry; for
// a string, the regular expression matches the whole name.
func (c *PEFTConfig) TargetMatcher() (func(module string) bool, error) {
	switch {
	case c.TargetRegex != "":
		re, err := regexp.Compile("^(?:" + c.TargetRegex + ")$")
		if err != nil {
			return nil, fmt.Errorf("regular expression %q: %v", c.TargetRegex, err)
		}
		return re.MatchString, nil
	case len(c.TargetModules) > 0:
		targets := c.TargetModules
		return func(module string) bool {
			for _, t := range targets {
				if module == t || strings.HasSuffix(module, "."+t) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, errors.New("want a list of module names or a regular expression")
}
