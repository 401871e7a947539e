package hfimport

import (
	"path/filepath"
	"testing"

	"lorac.dev/lorac/internal/compile"
)

// TestRealConfigs imports the config.json of four published checkpoints
// (testdata/real, written from their model cards' hyperparameters) with a
// typical PEFT adapter config (r 16 on q, k, v, o, gate, up and down), and
// checks lorac check's counts: the base's total is Hugging Face's published
// parameter count, and the trainable count is PEFT's r·(in + out) summed
// over the adapted modules, computed here from the config's sizes. The
// memory figures are those of the README's table.
func TestRealConfigs(t *testing.T) {
	type dims struct{ layers, hidden, q, kv, ffn int64 }
	peft := func(d dims, r int64) int64 {
		perLayer := r*(d.hidden+d.q) + 2*r*(d.hidden+d.kv) + r*(d.q+d.hidden) + 3*r*(d.hidden+d.ffn)
		return d.layers * perLayer
	}
	for _, c := range []struct {
		dir    string
		total  int64 // Hugging Face's count of the published checkpoint
		d      dims
		window int
		scale  string
	}{
		{"llama-3.1-8b", 8_030_261_248, dims{32, 4096, 4096, 1024, 14336}, 0, "llama3"},
		{"mistral-7b-v0.1", 7_241_732_096, dims{32, 4096, 4096, 1024, 14336}, 4096, ""},
		{"qwen2.5-7b", 7_615_616_512, dims{28, 3584, 3584, 512, 18944}, 0, ""},
		{"gemma-2-9b", 9_241_705_984, dims{42, 3584, 4096, 2048, 14336}, 4096, ""},
		{"llama-3.2-1b", 1_235_814_400, dims{16, 2048, 2048, 512, 8192}, 0, "llama3"},
		{"qwen3-8b", 8_190_735_360, dims{36, 4096, 4096, 1024, 12288}, 0, ""},
		{"gemma-3-1b", 999_885_952, dims{26, 1152, 1024, 256, 6912}, 512, ""},
	} {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", "real", c.dir)
			src, err := Source(dir, filepath.Join(dir, "adapter"))
			if err != nil {
				t.Fatal(err)
			}
			src += "train {\n  batch 1\n  seq   2048\n}\n"
			cfg, err := compile.LoadSource(c.dir+".lora", []byte(src))
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			if m := cfg.Model; m.SlidingWindow != c.window || m.RopeScaling != c.scale {
				t.Errorf("sliding window %d, rope scaling %q; want %d, %q", m.SlidingWindow, m.RopeScaling, c.window, c.scale)
			}
			s, err := compile.Summarize(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if want := peft(c.d, 16); s.ParamsTotal != c.total || s.ParamsTrainable != want {
				t.Errorf("params %d, trainable %d; want %d (Hugging Face) and %d (PEFT)", s.ParamsTotal, s.ParamsTrainable, c.total, want)
			}
			// Training at batch 1 × 2048 holds at least the F32 weights
			// and AdamW's two moments of the adapter.
			if min := 4*s.ParamsTotal + 3*4*s.ParamsTrainable; s.TrainMemory < min {
				t.Errorf("training memory %d under the %d of weights, adapter and moments", s.TrainMemory, min)
			}
			t.Logf("%s: train %s, infer %s", c.dir, compile.Human(s.TrainMemory), compile.Human(s.InferMemory))
		})
	}
}

// TestFitsMachine: the summary says whether a run fits the memory it is
// given, and says nothing fits when the memory is unknown.
func TestFitsMachine(t *testing.T) {
	dir := filepath.Join("testdata", "real", "mistral-7b-v0.1")
	src, err := Source(dir, filepath.Join(dir, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := compile.LoadSource("m.lora", []byte(src+"train {\n  batch 1\n  seq   512\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	old := compile.MachineMemory
	defer func() { compile.MachineMemory = old }()
	for _, c := range []struct {
		mem        int64
		train, inf bool
	}{{0, false, false}, {16 << 30, false, false}, {1 << 40, true, true}} {
		compile.MachineMemory = func() int64 { return c.mem }
		s, err := compile.Summarize(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.MachineMemory != c.mem || s.TrainFits != c.train || s.InferFits != c.inf {
			t.Errorf("memory %d: machine %d, train fits %v, infer fits %v; want %v, %v", c.mem, s.MachineMemory, s.TrainFits, s.InferFits, c.train, c.inf)
		}
	}
}
