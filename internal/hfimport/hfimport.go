package hfimport

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/runtime/format"
)

// config is the union of the config.json fields lorac reads for gpt2 and
// llama. Pointers tell an absent field from a zero one.
type config struct {
	ModelType string `json:"model_type"`
	VocabSize int    `json:"vocab_size"`
	// gpt2
	NPositions    int      `json:"n_positions"`
	NEmbd         int      `json:"n_embd"`
	NLayer        int      `json:"n_layer"`
	NHead         int      `json:"n_head"`
	NInner        *int     `json:"n_inner"`
	LayerNormEps  *float64 `json:"layer_norm_epsilon"`
	Activation    string   `json:"activation_function"`
	ScaleByLayer  bool     `json:"scale_attn_by_inverse_layer_idx"`
	ReorderUpcast bool     `json:"reorder_and_upcast_attn"`
	// llama
	MaxPositions   int             `json:"max_position_embeddings"`
	HiddenSize     int             `json:"hidden_size"`
	Layers         int             `json:"num_hidden_layers"`
	Heads          int             `json:"num_attention_heads"`
	KVHeads        *int            `json:"num_key_value_heads"`
	Intermediate   int             `json:"intermediate_size"`
	RMSNormEps     *float64        `json:"rms_norm_eps"`
	RopeTheta      *float64        `json:"rope_theta"`
	RopeScaling    json.RawMessage `json:"rope_scaling"`
	RopeParameters json.RawMessage `json:"rope_parameters"`
	HiddenAct      string          `json:"hidden_act"`
	HeadDim        *int            `json:"head_dim"`
	AttentionBias  bool            `json:"attention_bias"`
	MLPBias        bool            `json:"mlp_bias"`
	// both
	Tie *bool `json:"tie_word_embeddings"`
}

// Model reads config.json in dir and returns the model block's fields.
func Model(dir string) (*dsl.Model, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	m := &dsl.Model{Name: sanitize(filepath.Base(filepath.Clean(dir))), Vocab: c.VocabSize}
	switch c.ModelType {
	case "gpt2":
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
	case "llama":
		m.Arch, m.Context, m.Dim, m.Layers, m.Heads = "llama", c.MaxPositions, c.HiddenSize, c.Layers, c.Heads
		m.KVHeads, m.FFN, m.NormEps, m.RopeTheta = c.Heads, c.Intermediate, 1e-6, 10000
		if c.KVHeads != nil {
			m.KVHeads = *c.KVHeads
		}
		if c.RMSNormEps != nil {
			m.NormEps = *c.RMSNormEps
		}
		theta, err := ropeTheta(c)
		if err != nil {
			return nil, bad("%v", err)
		}
		if theta != 0 {
			m.RopeTheta = theta
		}
		if c.HiddenAct != "" && c.HiddenAct != "silu" {
			return nil, bad("hidden_act %q is not supported; lorac's llama uses SiLU (SwiGLU)", c.HiddenAct)
		}
		if c.HeadDim != nil && c.Heads > 0 && *c.HeadDim != c.HiddenSize/c.Heads {
			return nil, bad("head_dim %d differs from hidden_size/num_attention_heads = %d; lorac needs them equal", *c.HeadDim, c.HiddenSize/c.Heads)
		}
		if c.AttentionBias != c.MLPBias {
			return nil, bad("attention_bias %v and mlp_bias %v differ; lorac's bias setting covers both", c.AttentionBias, c.MLPBias)
		}
		m.Bias = c.AttentionBias
	default:
		return nil, bad("model_type %q is not supported; lorac reads gpt2 and llama", c.ModelType)
	}
	if c.Tie != nil {
		m.TieEmbeddings = *c.Tie
	}
	return m, nil
}

// ropeTheta reads the RoPE base from rope_theta or rope_parameters and
// refuses any RoPE scaling, which lorac does not implement.
func ropeTheta(c config) (float64, error) {
	var theta float64
	if c.RopeTheta != nil {
		theta = *c.RopeTheta
	}
	for _, raw := range []json.RawMessage{c.RopeScaling, c.RopeParameters} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil {
			return 0, fmt.Errorf("rope parameters: %v", err)
		}
		if t, ok := p["rope_type"].(string); ok && t != "default" {
			return 0, fmt.Errorf("rope_type %q (RoPE scaling) is not supported", t)
		}
		if t, ok := p["type"].(string); ok && t != "default" {
			return 0, fmt.Errorf("rope scaling %q is not supported", t)
		}
		if v, ok := p["rope_theta"].(float64); ok {
			theta = v
		}
	}
	return theta, nil
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
	field := func(k string, v any) { fmt.Fprintf(&b, "  %-14s %v\n", k, v) }
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
	field("tie_embeddings", m.TieEmbeddings)
	field("bias", m.Bias)
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
