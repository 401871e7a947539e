package conformance

import (
	"path/filepath"
	"slices"
	"testing"

	"lorac.dev/lorac/internal/gen/hfgemma"
	"lorac.dev/lorac/internal/gen/hfgemma2"
	"lorac.dev/lorac/internal/gen/hfgemma3"
	"lorac.dev/lorac/internal/gen/hfgpt2"
	"lorac.dev/lorac/internal/gen/hfllama"
	"lorac.dev/lorac/internal/gen/hfllama3"
	"lorac.dev/lorac/internal/gen/hfmistral"
	"lorac.dev/lorac/internal/gen/hfqwen2"
	"lorac.dev/lorac/internal/gen/hfqwen3"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/format"
)

type generated interface {
	driver.Runnable
	LoadBase(path string) error
	LoadAdapter(dir string) error
	Merge() error
	Detach()
}

// TestGeneratedMatchesPEFT runs the generated packages the way a user does:
// the Hugging Face weights file and the PEFT adapter directory loaded as
// they are, logits from Forward, against transformers + PEFT.
func TestGeneratedMatchesPEFT(t *testing.T) {
	for _, c := range []struct {
		arch string
		m    generated
	}{{"llama", hfllama.New()}, {"gpt2", hfgpt2.New()}, {"llama3", hfllama3.New()}, {"qwen2", hfqwen2.New()},
		{"qwen3", hfqwen3.New()}, {"mistral", hfmistral.New()}, {"gemma", hfgemma.New()},
		{"gemma2", hfgemma2.New()}, {"gemma3", hfgemma3.New()}} {
		t.Run(c.arch, func(t *testing.T) {
			f := load(t, c.arch)
			if err := c.m.LoadBase(filepath.Join(f.dir, "model.safetensors")); err != nil {
				t.Fatal(err)
			}
			if err := c.m.LoadAdapter(filepath.Join(f.dir, "adapter")); err != nil {
				t.Fatal(err)
			}
			tokens := f.ids(t, "tokens")
			compare := func(what, ref string) {
				t.Helper()
				want, shape := f.tensor(t, ref)
				V := shape[2]
				for b := range f.B {
					logits, err := c.m.Forward(tokens[b*f.T : (b+1)*f.T])
					if err != nil {
						t.Fatal(err)
					}
					got := make([]float64, len(logits))
					for i, v := range logits {
						got[i] = float64(v)
					}
					if e := maxRel(got, want[b*f.T*V:(b+1)*f.T*V]); e > 1e-5 {
						t.Errorf("%s, sequence %d: max relative error %.3g", what, b, e)
					}
				}
			}
			compare("adapter", "logits")

			// KV-cache decoding, one token at a time, gives the same
			// logits as transformers' full forward at every position
			// (for mistral, past its sliding window too).
			want, shape := f.tensor(t, "logits")
			V := shape[2]
			for b := range f.B {
				for p := range f.T {
					logits, err := c.m.Decode(tokens[b*f.T+p], p)
					if err != nil {
						t.Fatal(err)
					}
					got := make([]float64, len(logits))
					for i, v := range logits {
						got[i] = float64(v)
					}
					if e := maxRel(got, want[(b*f.T+p)*V:(b*f.T+p+1)*V]); e > 1e-5 {
						t.Errorf("decode, sequence %d position %d: max relative error %.3g", b, p, e)
					}
				}
			}
			if err := c.m.Merge(); err != nil {
				t.Fatal(err)
			}
			compare("merged", "logits_merged")
			st := c.m.State()
			if err := st.Unmerge(); err != nil {
				t.Fatal(err)
			}
			c.m.Detach()
			compare("detached", "logits_base")

			// The adapter lorac writes back is PEFT's: same keys, same tensors.
			out := t.TempDir()
			if err := st.SaveAdapter(out); err != nil {
				t.Fatal(err)
			}
			again, err := format.ReadPEFT(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Modules) != len(f.adapter.Modules) {
				t.Fatalf("%d modules written, PEFT had %d", len(again.Modules), len(f.adapter.Modules))
			}
			for i, m := range again.Modules {
				p := f.adapter.Modules[i]
				if m.Module != p.Module || !slices.Equal(m.A, p.A) || !slices.Equal(m.B, p.B) {
					t.Errorf("module %s changed on its way through lorac", p.Module)
				}
				if s, ps := again.Config.Scale(m.Module), f.adapter.Config.Scale(p.Module); s != ps {
					t.Errorf("%s: scale %g written, PEFT's is %g", m.Module, s, ps)
				}
			}
		})
	}
}
