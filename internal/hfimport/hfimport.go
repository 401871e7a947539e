package hfimport

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/runtime/format"
)

// config is the union of the config.json fields lorac reads. Pointers tell
// an absent field from a zero one.
type config struct {
	ModelType string `json:"model_type"`
	VocabSize int    `json:"vocab_size"`
	// gpt2
	NPositions       int      `json:"n_positions"`
	NEmbd            int      `json:"n_embd"`
	NLayer           int      `json:"n_layer"`
	NHead            int      `json:"n_head"`
	NInner           *int     `json:"n_inner"`
	LayerNormEps     *float64 `json:"layer_norm_epsilon"`
	Activation       string   `json:"activation_function"`
	ScaleAttnWeights *bool    `json:"scale_attn_weights"`
	ScaleByLayer     bool     `json:"scale_attn_by_inverse_layer_idx"`
	ReorderUpcast    bool     `json:"reorder_and_upcast_attn"`
	// llama, mistral, qwen2, qwen3
	MaxPositions     int             `json:"max_position_embeddings"`
	HiddenSize       int             `json:"hidden_size"`
	Layers           int             `json:"num_hidden_layers"`
	Heads            int             `json:"num_attention_heads"`
	KVHeads          *int            `json:"num_key_value_heads"`
	Intermediate     int             `json:"intermediate_size"`
	RMSNormEps       *float64        `json:"rms_norm_eps"`
	RopeTheta        *float64        `json:"rope_theta"`
	RopeScaling      json.RawMessage `json:"rope_scaling"`
	RopeParameters   json.RawMessage `json:"rope_parameters"`
	HiddenAct        string          `json:"hidden_act"`
	HeadDim          *int            `json:"head_dim"`
	AttentionBias    bool            `json:"attention_bias"`
	MLPBias          bool            `json:"mlp_bias"`
	SlidingWindow    *int            `json:"sliding_window"`
	UseSlidingWindow bool            `json:"use_sliding_window"`
	MaxWindowLayers  *int            `json:"max_window_layers"`
	LayerTypes       []string        `json:"layer_types"`
	HiddenActivation string          `json:"hidden_activation"`
	Bidirectional    *bool           `json:"use_bidirectional_attention"`
	QueryPreAttn     *float64        `json:"query_pre_attn_scalar"`
	WindowPatternKey *int            `json:"sliding_window_pattern"`
	WindowPatternOwn *int            `json:"_sliding_window_pattern"` // as transformers 5 saves it
	RopeLocalBase    *float64        `json:"rope_local_base_freq"`
	FinalSoftcap     *float64        `json:"final_logit_softcapping"`
	AttnSoftcap      *float64        `json:"attn_logit_softcapping"`
	// all
	Tie *bool `json:"tie_word_embeddings"`
	// keys are the file's keys, to tell a null from an absent key.
	keys           map[string]json.RawMessage
	EncoderDecoder bool `json:"is_encoder_decoder"`
	CrossAttention bool `json:"add_cross_attention"`
}

// Model reads config.json in dir and returns the model block's fields.
// model_type gpt2, llama, mistral, qwen2, qwen3, gemma, gemma2 and
// gemma3_text are read; every key of config.json must be one ConfigKeys
// lists for its model_type, and every value that asks for math lorac does
// not implement is refused by name.
func Model(dir string) (*dsl.Model, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	c.keys = keys
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	if why, ok := refusedTypes[c.ModelType]; ok {
		return nil, bad("model_type %q is not supported: %s", c.ModelType, why)
	}
	table, ok := typeKeys[c.ModelType]
	if !ok {
		return nil, bad("model_type %q is not supported; lorac reads %s", c.ModelType, strings.Join(ModelTypes(), ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if _, ok := table[k]; !ok && commonKeys[k] == "" {
			return nil, bad("key %q is not one lorac knows for model_type %s; it may change the math, so lorac refuses it (remove it if it does not)", k, c.ModelType)
		}
	}
	if c.EncoderDecoder || c.CrossAttention {
		return nil, bad("is_encoder_decoder and add_cross_attention are not supported; lorac builds decoder-only models")
	}
	m := &dsl.Model{Name: sanitize(filepath.Base(filepath.Clean(dir))), Vocab: c.VocabSize}
	if c.ModelType == "gpt2" {
		m.Arch, m.Context, m.Dim, m.Layers, m.Heads = "gpt2", c.NPositions, c.NEmbd, c.NLayer, c.NHead
		m.KVHeads, m.FFN, m.NormEps, m.TieEmbeddings, m.Bias = c.NHead, 4*c.NEmbd, 1e-5, true, true
		if c.NInner != nil {
			m.FFN = *c.NInner
		}
		if c.LayerNormEps != nil {
			m.NormEps = *c.LayerNormEps
		}
		switch c.Activation {
		case "gelu_new", "gelu_pytorch_tanh", "":
		default:
			return nil, bad("activation_function %q is not supported; lorac's gpt2 uses the tanh GELU (gelu_new)", c.Activation)
		}
		if c.ScaleByLayer || c.ReorderUpcast {
			return nil, bad("scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported")
		}
		if c.ScaleAttnWeights != nil && !*c.ScaleAttnWeights {
			return nil, bad("scale_attn_weights false (attention scores not divided by √head size) is not supported")
		}
	} else if err := llamaModel(m, c); err != nil {
		return nil, bad("%v", err)
	}
	if c.Tie != nil {
		m.TieEmbeddings = *c.Tie
	}
	return m, nil
}

// llamaModel fills m from a llama, mistral, qwen2 or qwen3 config.
func llamaModel(m *dsl.Model, c config) error {
	m.Arch, m.Context, m.Dim, m.Layers, m.Heads = "llama", c.MaxPositions, c.HiddenSize, c.Layers, c.Heads
	m.KVHeads, m.FFN, m.NormEps, m.RopeTheta = c.Heads, c.Intermediate, 1e-6, 10000
	if c.KVHeads != nil {
		m.KVHeads = *c.KVHeads
	}
	if c.RMSNormEps != nil {
		m.NormEps = *c.RMSNormEps
	}
	headDim := c.HeadDim
	if c.ModelType == "gemma" || c.ModelType == "gemma2" || c.ModelType == "gemma3_text" {
		if err := gemma(m, c); err != nil {
			return err
		}
		if headDim == nil {
			d := 256 // GemmaConfig's default, whatever hidden_size / heads is
			headDim = &d
		}
	} else if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return fmt.Errorf("hidden_act %q is not supported; lorac's %s uses SiLU (SwiGLU)", c.HiddenAct, c.ModelType)
	}
	if headDim != nil && (c.Heads <= 0 || *headDim != c.HiddenSize/c.Heads || c.HiddenSize%c.Heads != 0) {
		m.HeadDim = *headDim
	}
	if err := ropeParams(m, c); err != nil {
		return err
	}
	switch c.ModelType {
	case "llama":
		if c.AttentionBias != c.MLPBias {
			return fmt.Errorf("attention_bias %v and mlp_bias %v differ; lorac's bias setting covers both", c.AttentionBias, c.MLPBias)
		}
		m.Bias = c.AttentionBias
	case "mistral":
		if c.SlidingWindow != nil {
			m.SlidingWindow = *c.SlidingWindow
		}
	case "gemma2", "gemma3_text":
		if err := gemma2(m, c); err != nil {
			return err
		}
	case "qwen2", "qwen3":
		if c.ModelType == "qwen2" {
			m.QKVBias = true
		} else {
			m.QKNorm = true
			if c.AttentionBias {
				return fmt.Errorf("attention_bias true (biases on q, k, v and o) is not supported for qwen3")
			}
		}
		w, err := qwenWindow(c)
		if err != nil {
			return err
		}
		m.SlidingWindow = w
	}
	if m.SlidingWindow < 0 {
		return fmt.Errorf("sliding_window %d is negative", m.SlidingWindow)
	}
	if m.WindowPattern == 1 || m.SlidingWindow >= m.Context && m.RopeLocalTheta == 0 {
		m.SlidingWindow, m.WindowPattern = 0, 0 // no window masks anything: plain causal attention
	}
	return nil
}

// gemma sets Gemma's features: embeddings scaled by √hidden_size, RMSNorm
// weights used as 1 + w, GeGLU with the tanh GELU, a tied head by default.
func gemma(m *dsl.Model, c config) error {
	m.EmbedScale, m.NormOffset, m.MLPAct, m.TieEmbeddings = true, 1, "gelu", true
	for _, a := range []struct{ key, v string }{{"hidden_act", c.HiddenAct}, {"hidden_activation", c.HiddenActivation}} {
		switch a.v {
		case "", "gelu_pytorch_tanh", "gelu_new":
		default:
			return fmt.Errorf("%s %q is not supported; lorac's gemma uses the tanh GELU (gelu_pytorch_tanh)", a.key, a.v)
		}
	}
	if c.AttentionBias {
		return fmt.Errorf("attention_bias true (biases on q, k, v and o) is not supported for gemma")
	}
	if c.Bidirectional != nil && *c.Bidirectional {
		return fmt.Errorf("use_bidirectional_attention true is not supported; lorac's attention is causal")
	}
	return nil
}

// gemma2 adds Gemma 2's features to Gemma's: query_pre_attn_scalar, both
// soft-caps, the post-attention and pre/post feed-forward norms, and its
// sliding window on layers 0, 2, 4, … (layer_types; other patterns of
// full layers every P-th are read too, anything else is refused).
func gemma2(m *dsl.Model, c config) error {
	m.SandwichNorms = true
	m.AttnScalar, m.AttnSoftcap, m.LogitSoftcap = 256, 50, 30 // Gemma2Config's defaults
	pattern := 2
	if c.ModelType == "gemma3_text" {
		// Gemma3TextConfig's defaults: no soft-caps, five local layers to
		// a global one, the global layers' RoPE base 1e6 and the local
		// ones' 10000.
		m.AttnSoftcap, m.LogitSoftcap, pattern = 0, 0, 6
		if c.WindowPatternKey != nil {
			pattern = *c.WindowPatternKey
		} else if c.WindowPatternOwn != nil {
			pattern = *c.WindowPatternOwn
		}
		m.QKNorm = true
		if c.RopeTheta == nil && !ropeThetaIn(c.RopeParameters, "full_attention") {
			m.RopeTheta = 1e6
		}
		// rope_parameters.sliding_attention.rope_theta, read already,
		// wins over rope_local_base_freq, as in transformers.
		if m.RopeLocalTheta == 0 && c.RopeLocalBase != nil {
			m.RopeLocalTheta = *c.RopeLocalBase
		}
		if m.RopeLocalTheta <= 0 {
			m.RopeLocalTheta = 10000
		}
	}
	for _, f := range []struct {
		key string
		src *float64
		dst *float64
	}{{"query_pre_attn_scalar", c.QueryPreAttn, &m.AttnScalar}, {"attn_logit_softcapping", c.AttnSoftcap, &m.AttnSoftcap},
		{"final_logit_softcapping", c.FinalSoftcap, &m.LogitSoftcap}} {
		if f.src == nil {
			if raw, ok := c.keys[f.key]; ok && string(raw) == "null" {
				if f.key == "query_pre_attn_scalar" {
					return fmt.Errorf("query_pre_attn_scalar null is not supported")
				}
				*f.dst = 0 // null: no soft-cap
			}
			continue
		}
		if *f.src < 0 || (*f.src == 0 && f.key == "query_pre_attn_scalar") {
			return fmt.Errorf("%s %v is not positive", f.key, *f.src)
		}
		*f.dst = *f.src
	}
	w := 4096
	if c.SlidingWindow != nil {
		w = *c.SlidingWindow
	}
	types := c.LayerTypes
	if types == nil {
		for i := range c.Layers {
			t := "full_attention"
			if pattern <= 0 || (i+1)%pattern != 0 {
				t = "sliding_attention"
			}
			types = append(types, t)
		}
	}
	pattern, err := windowPattern(types)
	if err != nil {
		return err
	}
	m.SlidingWindow, m.WindowPattern = w, pattern
	return nil
}

// ropeThetaIn says whether rope_parameters[layerType] sets rope_theta.
func ropeThetaIn(raw json.RawMessage, layerType string) bool {
	var p map[string]map[string]any
	if json.Unmarshal(raw, &p) != nil {
		return false
	}
	_, ok := p[layerType]["rope_theta"]
	return ok
}

// windowPattern finds P such that layer i slides exactly when
// (i+1) mod P ≠ 0: 0 when every layer slides, 1 when none does.
func windowPattern(types []string) (int, error) {
	for _, t := range types {
		if t != "full_attention" && t != "sliding_attention" {
			return 0, fmt.Errorf("layer_types entry %q is not supported", t)
		}
	}
	for p := 0; p <= len(types)+1; p++ {
		ok := true
		for i, t := range types {
			slides := p == 0 || (i+1)%p != 0
			ok = ok && slides == (t == "sliding_attention")
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("layer_types %v is not supported: lorac slides every layer but each P-th (sliding_window_pattern)", types)
}

// qwenWindow is the sliding window of a qwen2 or qwen3 config as
// transformers builds it: layers from max_window_layers on (or those
// layer_types names "sliding_attention") slide when use_sliding_window is
// set. lorac has one window for all layers, so a window that only some
// layers use, and that is shorter than the context, is refused.
func qwenWindow(c config) (int, error) {
	if !c.UseSlidingWindow || c.SlidingWindow == nil {
		for _, t := range c.LayerTypes {
			if t != "full_attention" && t != "sliding_attention" {
				return 0, fmt.Errorf("layer_types entry %q is not supported", t)
			}
		}
		return 0, nil // transformers sets sliding_window to None: every layer is full
	}
	w := *c.SlidingWindow
	types := c.LayerTypes
	if types == nil {
		mwl := 28
		if c.MaxWindowLayers != nil {
			mwl = *c.MaxWindowLayers
		}
		for i := range c.Layers {
			t := "full_attention"
			if i >= mwl {
				t = "sliding_attention"
			}
			types = append(types, t)
		}
	}
	sliding := 0
	for _, t := range types {
		switch t {
		case "sliding_attention":
			sliding++
		case "full_attention":
		default:
			return 0, fmt.Errorf("layer_types entry %q is not supported", t)
		}
	}
	switch {
	case sliding == 0 || w >= c.MaxPositions:
		return 0, nil
	case sliding == len(types):
		return w, nil
	}
	return 0, fmt.Errorf("use_sliding_window with sliding_window %d on %d of %d layers (max_window_layers, layer_types) is not supported: lorac's window covers every layer or none", w, sliding, len(types))
}

// ropeParams reads the RoPE base and scaling from rope_theta, rope_scaling
// (transformers 4) and rope_parameters (transformers 5). Types default,
// linear and llama3 are implemented; dynamic, yarn, longrope and any other
// are refused by name, as is any parameter lorac does not apply.
func ropeParams(m *dsl.Model, c config) error {
	if c.RopeTheta != nil {
		m.RopeTheta = *c.RopeTheta
	}
	for _, src := range []struct {
		name string
		raw  json.RawMessage
	}{{"rope_scaling", c.RopeScaling}, {"rope_parameters", c.RopeParameters}} {
		if len(src.raw) == 0 || string(src.raw) == "null" {
			continue
		}
		var p map[string]any
		if err := json.Unmarshal(src.raw, &p); err != nil {
			return fmt.Errorf("%s: %v", src.name, err)
		}
		if c.ModelType == "gemma3_text" {
			if err := gemma3Rope(m, src.name, p); err != nil {
				return err
			}
			continue
		}
		if err := ropeDict(m, src.name, p); err != nil {
			return err
		}
	}
	return nil
}

// gemma3Rope reads Gemma 3's RoPE: rope_parameters keyed by layer type
// (transformers 5), whose full_attention entry may scale and whose
// sliding_attention entry sets the local layers' base (no scaling), or a
// flat rope_scaling for the full layers (transformers 4).
func gemma3Rope(m *dsl.Model, name string, p map[string]any) error {
	full, okF := p["full_attention"].(map[string]any)
	local, okL := p["sliding_attention"].(map[string]any)
	if !okF && !okL {
		return ropeDict(m, name, p)
	}
	for k := range p {
		if k != "full_attention" && k != "sliding_attention" {
			return fmt.Errorf("%s: key %q is not supported", name, k)
		}
	}
	if okF {
		if err := ropeDict(m, name+".full_attention", full); err != nil {
			return err
		}
	}
	if okL {
		g := dsl.Model{RopeTheta: m.RopeLocalTheta}
		if err := ropeDict(&g, name+".sliding_attention", local); err != nil {
			return err
		}
		if g.RopeScaling != "" {
			return fmt.Errorf("%s.sliding_attention: rope_type %s is not supported on local layers", name, g.RopeScaling)
		}
		m.RopeLocalTheta = g.RopeTheta
	}
	return nil
}

// ropeDict reads one rope_scaling or rope_parameters dictionary into m.
func ropeDict(m *dsl.Model, name string, p map[string]any) error {
	kind, _ := p["rope_type"].(string)
	if t, ok := p["type"].(string); ok && kind == "" {
		kind = t
	}
	if kind == "" {
		kind = "default"
	}
	num := func(key string) (float64, bool) {
		v, ok := p[key].(float64)
		return v, ok
	}
	var uses []string
	switch kind {
	case "default":
	case "linear":
		uses = []string{"factor"}
	case "llama3":
		uses = []string{"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}
	default:
		return fmt.Errorf("%s: rope_type %q is not supported; lorac implements default, linear and llama3 RoPE", name, kind)
	}
	for _, k := range slices.Sorted(maps.Keys(p)) {
		switch {
		case k == "rope_type" || k == "type" || slices.Contains(uses, k):
		case k == "rope_theta":
			t, ok := num(k)
			if !ok || t <= 0 {
				return fmt.Errorf("%s: rope_theta %v is not a positive number", name, p[k])
			}
			m.RopeTheta = t
		case k == "partial_rotary_factor" && p[k] == 1.0:
		default:
			return fmt.Errorf("%s: key %q is not supported with rope_type %s", name, k, kind)
		}
	}
	for _, k := range uses {
		v, ok := num(k)
		if !ok || v <= 0 {
			return fmt.Errorf("%s: rope_type %s needs a positive %s, got %v", name, kind, k, p[k])
		}
	}
	if kind == "default" {
		return nil
	}
	m.RopeScaling = kind
	m.RopeFactor, _ = num("factor")
	if kind == "llama3" {
		m.RopeLowFreq, _ = num("low_freq_factor")
		m.RopeHighFreq, _ = num("high_freq_factor")
		orig, _ := num("original_max_position_embeddings")
		if orig != math.Trunc(orig) {
			return fmt.Errorf("%s: original_max_position_embeddings %v is not an integer", name, orig)
		}
		m.RopeOrigContext = int(orig)
	}
	return nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' && b.Len() > 0 {
			b.WriteRune(r)
		} else if b.Len() > 0 {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "model"
	}
	return b.String()
}

// group is one lora block: modules sharing a rank and alpha.
type group struct {
	rank    int
	alpha   float64
	modules []string
}

// Adapter resolves a PEFT adapter's targets against the model m, PEFT's way:
// a target_modules list matches a module whose name equals an entry or ends
// with "." + entry; a string is a regular expression that must match the
// whole name. rank_pattern and alpha_pattern keys match the same way
// (suffix, or regular expression ending the name).
func adapterGroups(dir string, m *dsl.Model) ([]group, *format.PEFTConfig, error) {
	path := filepath.Join(dir, format.PEFTConfigFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	// The runtime's parser applies format.PEFTKeys (refusing by name every
	// key lorac does not reproduce), and selects modules and resolves
	// rank_pattern and alpha_pattern exactly as every later load of the
	// adapter's weights will.
	c, err := format.ParsePEFTConfig(path, raw)
	if err != nil {
		return nil, nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	if _, err := c.TargetMatcher(); err != nil {
		return nil, nil, bad("target_modules: %v", err)
	}
	match := func(name string) bool { return c.CheckModule(name) == nil }
	byKey := map[[2]float64]*group{}
	var groups []*group
	for i := range m.Layers {
		for _, l := range m.Linears() {
			name := m.ModuleName(i, l)
			if !match(name) {
				continue
			}
			r, a := c.RankFor(name), c.AlphaFor(name)
			key := [2]float64{float64(r), a}
			g := byKey[key]
			if g == nil {
				g = &group{rank: r, alpha: a}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.modules = append(g.modules, name)
		}
	}
	if len(groups) == 0 {
		return nil, nil, bad("target_modules matches no linear layer of this %s model%s", m.Arch, c.LayersNote())
	}
	out := make([]group, len(groups))
	for i, g := range groups {
		out[i] = *g
	}
	return out, c, nil
}

// Source writes the .lora file for the model in modelDir and, if adapterDir
// is set, lora blocks that reproduce that PEFT adapter.
func Source(modelDir, adapterDir string) (string, error) {
	m, err := Model(modelDir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: imported from %s by lorac init.\n", m.Name, filepath.Join(filepath.Base(filepath.Clean(modelDir)), "config.json"))
	fmt.Fprintf(&b, "model %s {\n", m.Name)
	field := func(k string, v any) { fmt.Fprintf(&b, "  %-22s %v\n", k, v) }
	field("arch", m.Arch)
	field("vocab", m.Vocab)
	field("context", m.Context)
	field("dim", m.Dim)
	field("layers", m.Layers)
	field("heads", m.Heads)
	if m.Arch == "llama" {
		field("kv_heads", m.KVHeads)
	}
	field("ffn", m.FFN)
	field("norm_eps", num(m.NormEps))
	if m.Arch == "llama" {
		field("rope_theta", num(m.RopeTheta))
	}
	if m.HeadDim > 0 {
		field("head_dim", m.HeadDim)
	}
	if m.RopeScaling != "" {
		field("rope_scaling", m.RopeScaling)
		field("rope_factor", num(m.RopeFactor))
	}
	if m.RopeScaling == "llama3" {
		field("rope_low_freq_factor", num(m.RopeLowFreq))
		field("rope_high_freq_factor", num(m.RopeHighFreq))
		field("rope_original_context", m.RopeOrigContext)
	}
	if m.SlidingWindow > 0 {
		field("sliding_window", m.SlidingWindow)
	}
	if m.SlidingWindow > 0 && m.WindowPattern > 0 {
		field("sliding_window_pattern", m.WindowPattern)
	}
	if m.SlidingWindow > 0 && m.RopeLocalTheta > 0 {
		field("rope_local_theta", num(m.RopeLocalTheta))
	}
	if m.AttnScalar > 0 {
		field("attn_scalar", num(m.AttnScalar))
	}
	if m.AttnSoftcap > 0 {
		field("attn_softcap", num(m.AttnSoftcap))
	}
	if m.LogitSoftcap > 0 {
		field("logit_softcap", num(m.LogitSoftcap))
	}
	if m.SandwichNorms {
		field("sandwich_norms", true)
	}
	field("tie_embeddings", m.TieEmbeddings)
	field("bias", m.Bias)
	if m.QKVBias {
		field("qkv_bias", true)
	}
	if m.QKNorm {
		field("qk_norm", true)
	}
	if m.EmbedScale {
		field("embed_scale", true)
	}
	if m.NormOffset != 0 {
		field("norm_offset", num(m.NormOffset))
	}
	if m.MLPAct != "" && m.MLPAct != "silu" {
		field("mlp_act", m.MLPAct)
	}
	b.WriteString("}\n")
	if adapterDir == "" {
		b.WriteString("\n# Add adapters, e.g.:\n# lora { rank 8; alpha 16; targets attn }\n")
		return b.String(), nil
	}
	groups, c, err := adapterGroups(adapterDir, m)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "\n# Adapters of %s.\n", filepath.Base(filepath.Clean(adapterDir)))
	for _, g := range groups {
		b.WriteString("lora {\n")
		field("rank", g.rank)
		field("alpha", num(g.alpha))
		if c.LoraDropout > 0 {
			field("dropout", num(c.LoraDropout))
		}
		if c.UseRSLoRA {
			field("rslora", true)
		}
		field("targets", strings.Join(compact(m, g.modules), ", "))
		b.WriteString("}\n")
	}
	return b.String(), nil
}

// compact names whole short-name groups (every layer) by their short name
// and the rest by their full module names.
func compact(m *dsl.Model, modules []string) []string {
	have := map[string]bool{}
	for _, mod := range modules {
		have[mod] = true
	}
	var out []string
	for _, l := range m.Linears() {
		all := true
		for i := range m.Layers {
			all = all && have[m.ModuleName(i, l)]
		}
		if all {
			out = append(out, l.Short)
			for i := range m.Layers {
				delete(have, m.ModuleName(i, l))
			}
		}
	}
	for _, mod := range modules {
		if have[mod] {
			out = append(out, mod)
		}
	}
	return out
}

func num(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
