package engine

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/format"
)

// tinySpec is one base weight w (2, 3) with a rank-1 adapter on module m.
func tinySpec() *ModelSpec {
	return &ModelSpec{
		Name: "t", Arch: "gpt2", Vocab: 4, Context: 4,
		Base:     []ParamSpec{{Name: "m.weight", Shape: []int{2, 3}}},
		Adapters: []AdapterSpec{{Module: "m", Rank: 1, In: 3, Out: 2, Alpha: 1, Scale: 1, AOffset: 0, BOffset: 3, Compiled: true}},
		BaseSize: 6, LoRASize: 5,
	}
}

// TestLoadRejectsNonFinite: a NaN or Inf in the base weights or in an
// adapter is an error naming the tensor and its first bad element, not a
// model that silently computes NaN.
func TestLoadRejectsNonFinite(t *testing.T) {
	dir := t.TempDir()
	w := []float32{1, 2, 3, 4, float32(math.NaN()), 6}
	base := filepath.Join(dir, "model.safetensors")
	if err := format.WriteSafetensors(base, []format.WriteTensor{{Name: "m.weight", Shape: []int{2, 3}, Data: w}}, nil); err != nil {
		t.Fatal(err)
	}
	c := NewCore(tinySpec())
	err := c.LoadBase(base)
	if err == nil || !strings.Contains(err.Error(), `"m.weight"`) || !strings.Contains(err.Error(), "element [1, 1] is NaN") {
		t.Errorf("LoadBase with a NaN: %v", err)
	}
	w[4] = 5
	if err := format.WriteSafetensors(base, []format.WriteTensor{{Name: "m.weight", Shape: []int{2, 3}, Data: w}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadBase(base); err != nil {
		t.Fatalf("LoadBase of finite weights: %v", err)
	}

	ad := filepath.Join(dir, "adapter")
	inf := float32(math.Inf(1))
	err = format.WritePEFT(ad, &format.PEFTAdapter{
		Config:  format.PEFTConfig{R: 1, LoraAlpha: 1, TargetModules: []string{"m"}},
		Modules: []format.LoRAWeights{{Module: "m", A: []float32{0.1, 0.2, 0.3}, B: []float32{0, inf}, Rank: 1, In: 3, Out: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = c.LoadAdapter(ad)
	if err == nil || !strings.Contains(err.Error(), "m.lora_B.weight") || !strings.Contains(err.Error(), "element [1, 0] is +Inf") {
		t.Errorf("LoadAdapter with an Inf: %v", err)
	}
	if c.LoRA[4] != 0 {
		t.Errorf("a rejected adapter was copied into the model")
	}
}
