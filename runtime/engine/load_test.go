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

// TestLoadAdapterScaleHint: an adapter whose scale differs from the
// compiled one is refused with the .lora line that fixes it: rslora when
// that is what differs, alpha when alpha does, both when both do.
func TestLoadAdapterScaleHint(t *testing.T) {
	for _, c := range []struct {
		name     string
		rank     int
		alpha    float64
		rslora   bool
		compiled bool // the model's rslora
		want     string
		not      string
	}{
		{"adapter rsLoRA", 4, 8, true, false, "write rslora true in the .lora file's lora block for m", "alpha 8"},
		{"model rsLoRA", 4, 8, false, true, "write rslora false in the", "alpha 8"},
		{"alpha", 4, 16, false, false, "write alpha 16 in the", "rslora"},
		{"both", 4, 16, true, false, "write rslora true and alpha 16 in the", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := tinySpec()
			a := &spec.Adapters[0]
			a.Rank, a.Alpha, a.RSLoRA = c.rank, 8, c.compiled
			a.Scale = float32(8 / float64(c.rank))
			if c.compiled {
				a.Scale = float32(8 / math.Sqrt(float64(c.rank)))
			}
			a.BOffset = c.rank * 3
			spec.LoRASize = c.rank * 5
			dir := filepath.Join(t.TempDir(), "adapter")
			err := format.WritePEFT(dir, &format.PEFTAdapter{
				Config:  format.PEFTConfig{R: c.rank, LoraAlpha: c.alpha, UseRSLoRA: c.rslora, TargetModules: []string{"m"}},
				Modules: []format.LoRAWeights{{Module: "m", A: make([]float32, c.rank*3), B: make([]float32, 2*c.rank), Rank: c.rank, In: 3, Out: 2}},
			})
			if err != nil {
				t.Fatal(err)
			}
			err = NewCore(spec).LoadAdapter(dir)
			if err == nil {
				t.Fatal("LoadAdapter accepted an adapter of another scale")
			}
			hint := err.Error()[strings.LastIndex(err.Error(), "; "):]
			if !strings.Contains(hint, c.want) || c.not != "" && strings.Contains(hint, c.not) {
				t.Errorf("LoadAdapter: %v\nwant it to say %q and not %q", err, c.want, c.not)
			}
		})
	}
}
