package dsl

import (
	"fmt"
	"strings"
)

// Linear is one linear layer kind of a transformer block.
type Linear struct {
	Short  string // the DSL's short target name: q k v o gate up down qkv
	Suffix string // the Hugging Face module path inside a block: "attn.c_attn"
	Group  string // "attn" or "mlp"
	In     int
	Out    int
	// Conv1D says the weight is stored [in, out] (GPT-2's Conv1D).
	Conv1D bool
}

// Linears lists the linear layers of one block of the model, in the order
// Hugging Face declares them.
func (m *Model) Linears() []Linear {
	c, f := m.Dim, m.FFN
	switch m.Arch {
	case "gpt2":
		return []Linear{
			{"qkv", "attn.c_attn", "attn", c, 3 * c, true},
			{"o", "attn.c_proj", "attn", c, c, true},
			{"up", "mlp.c_fc", "mlp", c, f, true},
			{"down", "mlp.c_proj", "mlp", f, c, true},
		}
	case "llama":
		q, kv := m.Heads*m.HeadSize(), m.KVHeads*m.HeadSize()
		return []Linear{
			{"q", "self_attn.q_proj", "attn", c, q, false},
			{"k", "self_attn.k_proj", "attn", c, kv, false},
			{"v", "self_attn.v_proj", "attn", c, kv, false},
			{"o", "self_attn.o_proj", "attn", q, c, false},
			{"gate", "mlp.gate_proj", "mlp", c, f, false},
			{"up", "mlp.up_proj", "mlp", c, f, false},
			{"down", "mlp.down_proj", "mlp", f, c, false},
		}
	}
	return nil
}

// BlockPrefix is the Hugging Face name prefix of layer i's block.
func (m *Model) BlockPrefix(i int) string {
	if m.Arch == "gpt2" {
		return fmt.Sprintf("transformer.h.%d.", i)
	}
	return fmt.Sprintf("model.layers.%d.", i)
}

// ModuleName is the full Hugging Face name of a linear in layer i.
func (m *Model) ModuleName(i int, l Linear) string { return m.BlockPrefix(i) + l.Suffix }

// LinearOf finds the linear kind of a full module name and its layer.
func (m *Model) LinearOf(module string) (Linear, int, bool) {
	for i := range m.Layers {
		p := m.BlockPrefix(i)
		if !strings.HasPrefix(module, p) {
			continue
		}
		for _, l := range m.Linears() {
			if module == p+l.Suffix {
				return l, i, true
			}
		}
	}
	return Linear{}, 0, false
}

// ShortNames lists the short target names the architecture has.
func (m *Model) ShortNames() []string {
	var names []string
	for _, l := range m.Linears() {
		names = append(names, l.Short)
	}
	return names
}

// ParamCount is the number of base parameters of the model, as Hugging Face
// counts them (a tied head is counted once).
func (m *Model) ParamCount() int64 {
	c, v := int64(m.Dim), int64(m.Vocab)
	n := v * c
	norm := c // rmsnorm: gain
	if m.Arch == "gpt2" {
		n += int64(m.Context) * c
		norm = 2 * c // layernorm: gain and bias
	}
	var block int64 = 2 * norm
	if m.SandwichNorms {
		block += 2 * norm // post-attention and post-feed-forward norms
	}
	if m.QKNorm {
		block += 2 * int64(m.HeadSize()) // q_norm and k_norm: one gain per head element
	}
	for _, l := range m.Linears() {
		block += int64(l.In) * int64(l.Out)
		if m.LinearBias(l.Short) {
			block += int64(l.Out)
		}
	}
	n += int64(m.Layers)*block + norm
	if !m.TieEmbeddings {
		n += v * c
	}
	return n
}
