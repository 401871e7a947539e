package format

import "testing"

// TestPatternFileOrder: when two rank_pattern keys match one module, the
// first in the file wins, as in PEFT's get_pattern_key — not the first in
// sorted order.
func TestPatternFileOrder(t *testing.T) {
	for _, c := range []struct {
		json string
		want int
	}{
		{`{"peft_type": "LORA", "r": 8, "rank_pattern": {"q_proj": 2, "layers.0.self_attn.q_proj": 3}}`, 2},
		{`{"peft_type": "LORA", "r": 8, "rank_pattern": {"layers.0.self_attn.q_proj": 3, "q_proj": 2}}`, 3},
	} {
		cfg, err := ParsePEFTConfig("adapter_config.json", []byte(c.json))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.RankFor("model.layers.0.self_attn.q_proj"); got != c.want {
			t.Errorf("%s: rank %d, want %d", c.json, got, c.want)
		}
		if got := cfg.RankFor("model.layers.1.self_attn.q_proj"); got != 2 {
			t.Errorf("%s: layer 1 rank %d, want 2", c.json, got)
		}
		if got := cfg.RankFor("model.layers.1.self_attn.k_proj"); got != 8 {
			t.Errorf("%s: k_proj rank %d, want the default 8", c.json, got)
		}
	}
}
