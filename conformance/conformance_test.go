package conformance

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/hfimport"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
)

// fixture is one model's reference data.
type fixture struct {
	dir     string
	ref     *format.Safetensors
	base    map[string][]float64 // base weights by graph parameter name
	adapter *format.PEFTAdapter
	cfg     *dsl.Config
	B, T    int
}

func (f *fixture) tensor(t *testing.T, name string) ([]float64, []int) {
	t.Helper()
	info, ok := f.ref.Lookup(name)
	if !ok {
		t.Fatalf("reference.safetensors has no %q", name)
	}
	buf := make([]float32, numel(info.Shape))
	if err := f.ref.ReadFloat32(name, info.Shape, buf); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(buf))
	for i, v := range buf {
		out[i] = float64(v)
	}
	return out, info.Shape
}

func (f *fixture) ids(t *testing.T, name string) []int32 {
	v, _ := f.tensor(t, name)
	ids := make([]int32, len(v))
	for i, x := range v {
		ids[i] = int32(x)
	}
	return ids
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func load(t *testing.T, arch string) *fixture {
	t.Helper()
	dir := filepath.Join("testdata", arch)
	f := &fixture{dir: dir}
	src, err := hfimport.Source(dir, filepath.Join(dir, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg, err = compile.LoadSource(arch+".lora", []byte(src)); err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if f.ref, err = format.OpenSafetensors(filepath.Join(dir, "reference.safetensors")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ref.Close() })
	_, shape := f.tensor(t, "tokens")
	f.B, f.T = shape[0], shape[1]
	if f.adapter, err = format.ReadPEFT(filepath.Join(dir, "adapter")); err != nil {
		t.Fatal(err)
	}
	st, err := format.OpenSafetensors(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.base = map[string][]float64{}
	for _, info := range st.Tensors {
		buf := make([]float32, numel(info.Shape))
		if err := st.ReadFloat32(info.Name, info.Shape, buf); err != nil {
			t.Fatal(err)
		}
		data := make([]float64, len(buf))
		for i, v := range buf {
			data[i] = float64(v)
		}
		f.base[info.Name] = data
	}
	return f
}

// graph builds the model at the fixture's batch, with or without adapters.
func (f *fixture) graph(t *testing.T, mode graph.Mode, adapters bool, pc passes.Config) *graph.Graph {
	t.Helper()
	g, err := dsl.Lower(f.cfg, dsl.LowerOptions{Mode: mode, Batch: f.B, Seq: f.T})
	if err != nil {
		t.Fatal(err)
	}
	if !adapters {
		g.Adapters = nil
	}
	pc.Verify = true
	if err := passes.Run(g, pc); err != nil {
		t.Fatal(err)
	}
	return g
}

// env maps the fixture's files onto the graph's parameters: Hugging Face
// names for the base (GPT-2 files may drop "transformer."), PEFT's modules
// for lora_A and lora_B.
func (f *fixture) env(t *testing.T, g *graph.Graph) interp.Env[float64] {
	t.Helper()
	e := interp.Env[float64]{Params: map[string][]float64{}, Inputs: map[string][]int32{
		"tokens": f.ids(t, "tokens"), "targets": f.ids(t, "targets"), "pos": engine.Positions(f.B, f.T),
	}}
	lora := map[string][]float32{}
	for _, m := range f.adapter.Modules {
		lora[m.Module+".lora_A.weight"] = m.A
		lora[m.Module+".lora_B.weight"] = m.B
	}
	for _, v := range g.Params {
		name := v.Param.Name
		if w, ok := lora[name]; ok {
			data := make([]float64, len(w))
			for i, x := range w {
				data[i] = float64(x)
			}
			e.Params[name] = data
			continue
		}
		data, ok := f.base[name]
		if !ok {
			data, ok = f.base[strings.TrimPrefix(name, "transformer.")]
		}
		if !ok {
			t.Fatalf("no weights for %s in the fixture", name)
		}
		e.Params[name] = data
	}
	return e
}

// maxRel is max|got − want| / max|want|.
func maxRel(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		num = math.Max(num, math.Abs(got[i]-want[i]))
		den = math.Max(den, math.Abs(want[i]))
	}
	return num / math.Max(den, 1e-30)
}

// archs are the fixture directories under testdata: one tiny model per
// family, made by make_fixtures.py with transformers and PEFT.
var archs = []string{"llama", "gpt2", "llama3", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3"}

func TestConformance(t *testing.T) {
	for _, arch := range archs {
		t.Run(arch, func(t *testing.T) {
			f := load(t, arch)
			check := func(what string, got, want []float64, tol float64) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, reference has %d", what, len(got), len(want))
				}
				if e := maxRel(got, want); e > tol {
					t.Errorf("%s: max relative error %.3g > %g", what, e, tol)
				} else {
					t.Logf("%s: max relative error %.3g", what, e)
				}
			}
			noMerge := passes.Config{Disable: map[string]bool{"MergeLoRA": true}}

			ig := f.graph(t, graph.Infer, true, noMerge)
			out, err := interp.Run(ig, f.env(t, ig))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := f.tensor(t, "logits")
			check("logits with the adapter", out[ig.Outputs[0]], want, 1e-5)

			bg := f.graph(t, graph.Infer, false, passes.Config{})
			out, err = interp.Run(bg, f.env(t, bg))
			if err != nil {
				t.Fatal(err)
			}
			want, _ = f.tensor(t, "logits_base")
			check("logits of the base", out[bg.Outputs[0]], want, 1e-5)

			mg := f.graph(t, graph.Infer, true, passes.Config{})
			out, err = interp.Run(mg, f.env(t, mg))
			if err != nil {
				t.Fatal(err)
			}
			want, _ = f.tensor(t, "logits_merged")
			check("logits merged", out[mg.Outputs[0]], want, 1e-5)
			for _, n := range mg.Nodes {
				if n.Op != graph.OpLoRAMerge {
					continue
				}
				want, _ := f.tensor(t, "merged."+n.Module+".weight")
				check("merged weight "+n.Module, out[n.Out[0]], want, 1e-5)
			}

			tg := f.graph(t, graph.Train, true, passes.Config{})
			out, err = interp.Run(tg, f.env(t, tg))
			if err != nil {
				t.Fatal(err)
			}
			want, _ = f.tensor(t, "loss")
			check("loss", out[tg.Outputs[0]], want, 1e-5)
			for _, dv := range tg.Grads {
				want, _ := f.tensor(t, "grad.base_model.model."+dv.GradOf.Name)
				check("gradient of "+dv.GradOf.Name, out[dv], want, 1e-4)
			}
		})
	}
}

// TestFeaturesMatter: each family's feature changes the fixture's logits
// well beyond the tolerance, so TestConformance would catch it computed
// wrong or dropped: the same model without the sliding window, RoPE
// scaling, q/k norms or head_dim misses transformers' logits by far.
func TestFeaturesMatter(t *testing.T) {
	for _, c := range []struct {
		arch, what string
		change     func(m *dsl.Model)
	}{
		{"mistral", "no sliding window", func(m *dsl.Model) { m.SlidingWindow = 0 }},
		{"mistral", "a window one longer", func(m *dsl.Model) { m.SlidingWindow++ }},
		{"llama3", "no RoPE scaling", func(m *dsl.Model) { m.RopeScaling = "" }},
		{"llama3", "linear RoPE scaling", func(m *dsl.Model) { m.RopeScaling = "linear" }},
		{"llama3", "another original context", func(m *dsl.Model) { m.RopeOrigContext *= 2 }},
		{"qwen2", "no q, k, v biases", func(m *dsl.Model) { m.QKVBias = false }},
		{"qwen3", "no q, k norms", func(m *dsl.Model) { m.QKNorm = false }},
		{"gemma", "no embedding scale", func(m *dsl.Model) { m.EmbedScale = false }},
		{"gemma", "norms without 1 + w", func(m *dsl.Model) { m.NormOffset = 0 }},
		{"gemma", "SwiGLU for GeGLU", func(m *dsl.Model) { m.MLPAct = "silu" }},
		{"gemma2", "no attention soft-cap", func(m *dsl.Model) { m.AttnSoftcap = 0 }},
		{"gemma2", "no logit soft-cap", func(m *dsl.Model) { m.LogitSoftcap = 0 }},
		{"gemma2", "head size for query_pre_attn_scalar", func(m *dsl.Model) { m.AttnScalar = 0 }},
		{"gemma2", "no sandwich norms", func(m *dsl.Model) { m.SandwichNorms = false }},
		{"gemma2", "the window on every layer", func(m *dsl.Model) { m.WindowPattern = 0 }},
		{"gemma2", "no window", func(m *dsl.Model) { m.SlidingWindow = 0 }},
		{"gemma3", "the global base on every layer", func(m *dsl.Model) { m.RopeLocalTheta = 0 }},
		{"gemma3", "no RoPE scaling on the global layer", func(m *dsl.Model) { m.RopeScaling = "" }},
		{"gemma3", "q/k norms without 1 + w", func(m *dsl.Model) { m.NormOffset = 0; m.QKNorm = false }},
	} {
		t.Run(c.arch+"/"+c.what, func(t *testing.T) {
			f := load(t, c.arch)
			c.change(&f.cfg.Model)
			g := f.graph(t, graph.Infer, false, passes.Config{})
			out, err := interp.Run(g, f.env(t, g))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := f.tensor(t, "logits_base")
			if e := maxRel(out[g.Outputs[0]], want); e < 1e-3 {
				t.Errorf("max relative error %.3g: the fixture does not tell this model from transformers'", e)
			}
		})
	}
}
