package gentest

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/gen/gpt2"
	"lorac.dev/lorac/internal/gen/llama"
	"lorac.dev/lorac/internal/gen/llamaplus"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
)

// model is the API every generated package has.
type model interface {
	Decode(token int32, pos int) ([]float32, error)
	TrainStep(tokens, targets []int32) (float32, error)
	TrainStepFull(tokens, targets []int32) (float32, error)
	Eval(tokens, targets []int32) (float32, error)
	Forward(tokens []int32) ([]float32, error)
}

type pkg struct {
	name string
	new  func() (model, *engine.Core)
}

var pkgs = []pkg{
	{"gpt2", func() (model, *engine.Core) { m := gpt2.New(); return m, m.Core }},
	{"llama", func() (model, *engine.Core) { m := llama.New(); return m, m.Core }},
	{"llamaplus", func() (model, *engine.Core) { m := llamaplus.New(); return m, m.Core }},
}

func config(t *testing.T, name string) *dsl.Config {
	cfg, err := compile.Load(filepath.Join("../gen", name+".lora"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func build(t *testing.T, cfg *dsl.Config, mode graph.Mode, pc passes.Config, base bool) *graph.Graph {
	g, err := dsl.Lower(cfg, dsl.LowerOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	if base {
		g.Adapters = nil
	}
	if err := passes.Run(g, pc); err != nil {
		t.Fatal(err)
	}
	return g
}

// env copies the model's current weights into an interpreter environment.
func env(g *graph.Graph, c *engine.Core, inputs map[string][]int32) interp.Env[float64] {
	e := interp.Env[float64]{Params: map[string][]float64{}, Inputs: inputs}
	store := map[string][]float32{}
	for _, p := range c.Spec.Base {
		store[p.Name] = c.Base[p.Offset : p.Offset+p.Size()]
	}
	for _, a := range c.Spec.Adapters {
		store[a.Module+".lora_A.weight"] = c.LoRA[a.AOffset : a.AOffset+a.Rank*a.In]
		store[a.Module+".lora_B.weight"] = c.LoRA[a.BOffset : a.BOffset+a.Out*a.Rank]
	}
	for _, v := range g.Params {
		src := store[v.Param.Name]
		dst := make([]float64, len(src))
		for i, x := range src {
			dst[i] = float64(x)
		}
		e.Params[v.Param.Name] = dst
	}
	return e
}

func batch(rng *rand.Rand, c *engine.Core) (tokens, targets []int32) {
	n := c.Spec.Train.Batch * c.Spec.Train.Seq
	tokens, targets = make([]int32, n), make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(c.Spec.Vocab))
		targets[i] = int32(rng.IntN(c.Spec.Vocab))
	}
	return tokens, targets
}

// maxRel is max|a−b| / max|b|.
func maxRel[F float32 | float64](a []F, b []float64) float64 {
	var num, den float64
	for i := range b {
		num = math.Max(num, math.Abs(float64(a[i])-b[i]))
		den = math.Max(den, math.Abs(b[i]))
	}
	return num / math.Max(den, 1e-30)
}

func TestAgainstInterpreter(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			cfg := config(t, p.name)
			m, c := p.new()
			c.InitBase(11)
			c.InitAdapter(12)
			rng := rand.New(rand.NewPCG(1, 2))
			tokens, targets := batch(rng, c)
			inputs := map[string][]int32{"tokens": tokens, "targets": targets, "pos": engine.Positions(c.Spec.Train.Batch, c.Spec.Train.Seq)}

			// One LoRA training step: loss and every adapter gradient.
			tg := build(t, cfg, graph.Train, passes.Config{}, false)
			te := env(tg, c, inputs)
			ref, err := interp.Run(tg, te)
			if err != nil {
				t.Fatal(err)
			}
			baseBefore := slices.Clone(c.Base)
			loss, err := m.TrainStep(tokens, targets)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRel([]float32{loss}, ref[tg.Outputs[0]]); e > 1e-5 {
				t.Errorf("loss %g, interpreter %g", loss, ref[tg.Outputs[0]][0])
			}
			for _, dv := range tg.Grads {
				a := adapterOf(c, dv.GradOf.Module)
				off := a.AOffset
				if dv.GradOf.Shape[1] == a.Rank {
					off = a.BOffset
				}
				got := c.LoRAGrad[off : off+dv.Shape.Numel()]
				if e := maxRel(got, ref[dv]); e > 1e-4 {
					t.Errorf("gradient of %s differs from the interpreter's by %g", dv.GradOf.Name, e)
				}
			}
			if !slices.Equal(baseBefore, c.Base) {
				t.Error("a LoRA step changed the frozen base weights")
			}

			// Logits, adapter applied, after the update.
			prompt := tokens[:c.Spec.Context-3]
			padded := make([]int32, c.Spec.Context)
			copy(padded, prompt)
			fin := map[string][]int32{"tokens": padded, "pos": engine.Positions(1, c.Spec.Context)}
			fg := build(t, cfg, graph.Infer, passes.Config{Disable: map[string]bool{"MergeLoRA": true}}, false)
			fref, err := interp.Run(fg, env(fg, c, fin))
			if err != nil {
				t.Fatal(err)
			}
			logits, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			want := fref[fg.Outputs[0]][:len(logits)]
			if e := maxRel(logits, want); e > 1e-4 {
				t.Errorf("logits differ from the interpreter's by %g", e)
			}
			unmerged := slices.Clone(logits)

			// Merged logits equal unmerged ones.
			if err := c.Merge(); err != nil {
				t.Fatal(err)
			}
			merged, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRel(merged, toF64(unmerged)); e > 1e-5 {
				t.Errorf("merged and unmerged logits differ by %g (relative)", e)
			}
			if err := c.Unmerge(); err != nil {
				t.Fatal(err)
			}
			again, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(again, unmerged) {
				t.Error("Unmerge did not restore the unmerged logits exactly")
			}

			// Detached: exactly the base model, whose weights LoRA never touched.
			c.Detach()
			detached, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			bg := build(t, cfg, graph.Infer, passes.Config{}, true)
			bref, err := interp.Run(bg, env(bg, c, fin))
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRel(detached, bref[bg.Outputs[0]][:len(detached)]); e > 1e-4 {
				t.Errorf("detached logits differ from the base model's by %g", e)
			}
			c.Attach()

			// Eval (no dropout) against the interpreter's forward loss.
			ev, err := m.Eval(tokens, targets)
			if err != nil {
				t.Fatal(err)
			}
			ee := env(tg, c, inputs)
			ee.NoDropout = true
			eref, err := interp.Loss(tg, ee)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxRel([]float32{ev}, []float64{eref}); e > 1e-5 {
				t.Errorf("eval loss %g, interpreter %g", ev, eref)
			}

			// Full training: gradients of every base parameter.
			full := build(t, cfg, graph.Train, passes.Config{Full: true}, true)
			fe := env(full, c, inputs)
			fullRef, err := interp.Run(full, fe)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.TrainStepFull(tokens, targets); err != nil {
				t.Fatal(err)
			}
			for _, dv := range full.Grads {
				off := baseOffset(c, dv.GradOf.Name)
				got := c.BaseGrad[off : off+dv.Shape.Numel()]
				if e := maxRel(got, fullRef[dv]); e > 1e-4 {
					t.Errorf("full-training gradient of %s differs by %g", dv.GradOf.Name, e)
				}
			}
		})
	}
}

func toF64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func adapterOf(c *engine.Core, module string) engine.AdapterSpec {
	for _, a := range c.Spec.Adapters {
		if a.Module == module {
			return a
		}
	}
	panic("no adapter " + module)
}

func baseOffset(c *engine.Core, name string) int {
	for _, p := range c.Spec.Base {
		if p.Name == name {
			return p.Offset
		}
	}
	panic("no parameter " + name)
}

// TestBadInput: wrong sizes and ids are errors, not panics.
func TestBadInput(t *testing.T) {
	m, c := pkgs[0].new()
	n := c.Spec.Train.Batch * c.Spec.Train.Seq
	if _, err := m.TrainStep(make([]int32, n-1), make([]int32, n)); err == nil {
		t.Error("TrainStep accepted a short batch")
	}
	bad := make([]int32, n)
	bad[3] = int32(c.Spec.Vocab)
	if _, err := m.Eval(bad, make([]int32, n)); err == nil {
		t.Error("Eval accepted a token outside the vocabulary")
	}
	if _, err := m.Forward(nil); err == nil {
		t.Error("Forward accepted no tokens")
	}
	if _, err := m.Forward(make([]int32, c.Spec.Context+1)); err == nil {
		t.Error("Forward accepted more tokens than the context")
	}
}

// run invokes the runtime's command-line driver on a fresh model.
func run(t *testing.T, p pkg, args ...string) string {
	t.Helper()
	m, _ := p.new()
	var out, errb bytes.Buffer
	if code := driver.Main(m.(driver.Runnable), args, &out, &errb); code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, errb.String())
	}
	return out.String()
}

// TestTrainResumeIsBitIdentical: a run of 6 steps stopped after 3 (its last
// checkpoint at step 2) and resumed writes the same adapter, byte for byte,
// as a run of 6 steps: the resumed run follows the 6-step schedule its
// checkpoint records.
func TestTrainResumeIsBitIdentical(t *testing.T) {
	for _, p := range pkgs[:1] { // the byte-level data needs vocab 256
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			text, err := driver.Corpus("recipe", 20000, 1)
			if err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data.txt")
			if err := os.WriteFile(data, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, c := p.new()
			c.InitBase(3)
			base := filepath.Join(dir, "base.safetensors")
			if err := c.SaveBase(base); err != nil {
				t.Fatal(err)
			}
			common := []string{"--data", data, "--base", base, "--eval-every", "2", "--eval-batches", "2"}
			run(t, p, append([]string{"train", "--steps", "6", "--out", filepath.Join(dir, "a")}, common...)...)
			driver.StopAfter = 3
			run(t, p, append([]string{"train", "--steps", "6", "--out", filepath.Join(dir, "b")}, common...)...)
			driver.StopAfter = 0
			// Killed between the checkpoint's two renames: only the old one is left.
			ck := filepath.Join(dir, "b", "checkpoint")
			if err := os.Rename(ck, ck+".old"); err != nil {
				t.Fatal(err)
			}
			out := run(t, p, append([]string{"train", "--steps", "6", "--resume", "--out", filepath.Join(dir, "b")}, common...)...)
			if !bytes.Contains([]byte(out), []byte("validation loss")) {
				t.Errorf("no summary in %q", out)
			}
			for _, f := range []string{format.PEFTWeightsFile, format.PEFTConfigFile} {
				a, errA := os.ReadFile(filepath.Join(dir, "a", f))
				b, errB := os.ReadFile(filepath.Join(dir, "b", f))
				if errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs between the straight and the resumed run", f)
				}
			}
			// The adapter loads back and a merged model can be written.
			merged := filepath.Join(dir, "merged.safetensors")
			run(t, p, "merge", "--base", base, "--adapter", filepath.Join(dir, "a"), "-o", merged)
			logits := filepath.Join(dir, "logits.safetensors")
			run(t, p, "eval", "--base", base, "--adapter", filepath.Join(dir, "a"), "--tokens", "1,2,3", "--dump-logits", logits)
			st, err := format.OpenSafetensors(logits)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			info, ok := st.Lookup("logits")
			if !ok || len(info.Shape) != 2 || info.Shape[0] != 3 || info.Shape[1] != c.Spec.Vocab {
				t.Errorf("logits tensor %+v, want [3, %d]", info, c.Spec.Vocab)
			}
		})
	}
}

// TestAdapterFiles: the adapter round-trips through its PEFT files, and a
// mismatched adapter is refused without changing the model.
func TestAdapterFiles(t *testing.T) {
	_, c := pkgs[1].new()
	c.InitAdapter(9)
	dir := t.TempDir()
	if err := c.SaveAdapter(dir); err != nil {
		t.Fatal(err)
	}
	_, d := pkgs[1].new()
	if err := d.LoadAdapter(dir); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.LoRA, d.LoRA) {
		t.Error("the adapter changed on its way through the PEFT files")
	}
	// An adapter of the other model does not fit.
	_, g := pkgs[0].new()
	g.InitAdapter(1)
	other := t.TempDir()
	if err := g.SaveAdapter(other); err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(d.LoRA)
	if err := d.LoadAdapter(other); err == nil {
		t.Error("a gpt2 adapter loaded into a llama model")
	}
	if !slices.Equal(before, d.LoRA) {
		t.Error("a refused adapter changed the model")
	}
	if err := d.LoadAdapter(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory loaded")
	}

	// The config is applied at every load: keys that select other modules,
	// and keys that change the math, are refused by name.
	for _, tc := range []struct {
		key, value, want string
	}{
		{"target_modules", `["c_attn"]`, "is not selected by target_modules [\"c_attn\"]"},
		{"layers_to_transform", `[7]`, "which layers_to_transform [7] does not list"},
		{"alora_invocation_tokens", `[1, 2]`, "alora_invocation_tokens [1,2]: activated LoRA (aLoRA)"},
		{"lora_bias", `true`, "lora_bias: a bias on lora_B is not supported"},
	} {
		edited := t.TempDir()
		for _, f := range []string{format.PEFTConfigFile, format.PEFTWeightsFile} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if f == format.PEFTConfigFile {
				var cfg map[string]json.RawMessage
				if err := json.Unmarshal(b, &cfg); err != nil {
					t.Fatal(err)
				}
				cfg[tc.key] = json.RawMessage(tc.value)
				b, _ = json.Marshal(cfg)
			}
			if err := os.WriteFile(filepath.Join(edited, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := d.LoadAdapter(edited)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: LoadAdapter = %v, want an error containing %q", tc.key, tc.value, err, tc.want)
		}
		if !slices.Equal(before, d.LoRA) {
			t.Errorf("%s %s: a refused adapter changed the model", tc.key, tc.value)
		}
	}
}

// TestDecodeMatchesForward: decoding token by token with the KV cache gives
// the logits of the full forward pass at every position, with the adapter,
// merged into the weights, and detached.
func TestDecodeMatchesForward(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			m, c := p.new()
			c.InitBase(21)
			c.InitAdapter(22)
			rng := rand.New(rand.NewPCG(4, 4))
			prompt := make([]int32, c.Spec.Context)
			for i := range prompt {
				prompt[i] = int32(rng.IntN(c.Spec.Vocab))
			}
			V := c.Spec.Vocab
			check := func(state string) {
				full, err := m.Forward(prompt)
				if err != nil {
					t.Fatal(err)
				}
				full = slices.Clone(full)
				for i, tok := range prompt {
					got, err := m.Decode(tok, i)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxRel(got, toF64(full[i*V:(i+1)*V])); e > 1e-5 {
						t.Fatalf("%s: position %d: decode and forward differ by %g", state, i, e)
					}
				}
			}
			check("adapter")
			if err := c.Merge(); err != nil {
				t.Fatal(err)
			}
			check("merged")
			if err := c.Unmerge(); err != nil {
				t.Fatal(err)
			}
			c.Detach()
			check("detached")
			if _, err := m.Decode(0, c.Spec.Context); err == nil {
				t.Error("Decode accepted a position past the context")
			}
		})
	}
}

// TestBadWeightFiles: missing, mismatched and truncated weight files get
// one-line errors naming the file, the tensor, and what was expected and
// found, and leave the model's weights as they were.
func TestBadWeightFiles(t *testing.T) {
	dir := t.TempDir()
	_, g := pkgs[0].new() // gpt2
	g.InitBase(1)
	good := filepath.Join(dir, "gpt2.safetensors")
	if err := g.SaveBase(good); err != nil {
		t.Fatal(err)
	}
	_, l := pkgs[1].new() // llama: other names
	l.InitBase(1)
	other := filepath.Join(dir, "llama.safetensors")
	if err := l.SaveBase(other); err != nil {
		t.Fatal(err)
	}
	// Right names, one wrong shape.
	var ts []format.WriteTensor
	for _, p := range g.Spec.Base {
		shape := p.Shape
		if p.Name == "transformer.wpe.weight" {
			shape = []int{shape[1], shape[0]}
		}
		ts = append(ts, format.WriteTensor{Name: p.Name, Shape: shape, Data: g.Base[p.Offset : p.Offset+p.Size()]})
	}
	wrongShape := filepath.Join(dir, "shape.safetensors")
	if err := format.WriteSafetensors(wrongShape, ts, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	if err := os.WriteFile(truncated, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want []string
	}{
		{other, []string{other, "transformer.wte.weight", "expected shape"}},
		{wrongShape, []string{wrongShape, "transformer.wpe.weight", "[24, 16]", "[16, 24]"}},
		{truncated, []string{truncated}},
		{filepath.Join(dir, "missing.safetensors"), []string{"missing.safetensors"}},
	} {
		_, m := pkgs[0].new()
		m.InitBase(5)
		before := slices.Clone(m.Base)
		err := m.LoadBase(c.path)
		if err == nil {
			t.Errorf("%s loaded", c.path)
			continue
		}
		msg := err.Error()
		if bytes.Contains([]byte(msg), []byte("\n")) {
			t.Errorf("error is not one line: %q", msg)
		}
		for _, w := range c.want {
			if !bytes.Contains([]byte(msg), []byte(w)) {
				t.Errorf("error %q does not mention %q", msg, w)
			}
		}
		if !slices.Equal(before, m.Base) {
			t.Errorf("a refused file changed the weights")
		}
	}
}

// TestDemo runs the demonstration's whole story on the small gpt2 model:
// its own checks (loss drops, detach is exact, merge agrees, reload agrees)
// fail the command if they do not hold.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	out := run(t, pkgs[0], "demo", "--out", dir, "--base-steps", "30", "--lora-steps", "30", "--tokens", "5")
	for _, want := range []string{"bit for bit: true", "reloaded from its PEFT files gives the same logits: true", "adapter_model.safetensors", "load_with_peft.py"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// What the printed PEFT command needs: a base transformers can load
	// (config.json beside the weights), an adapter naming that base with no
	// optimizer state in it, and lorac's logits to compare with.
	for _, f := range []string{"base/config.json", "base/model.safetensors", "adapter/adapter_config.json", "adapter-logits.safetensors", "load_with_peft.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the demo left no %s: %v", f, err)
		}
	}
	for _, f := range []string{"base/checkpoint", "adapter/checkpoint"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("the demo left its training checkpoint %s behind", f)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "adapter", "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Quote(filepath.Join(dir, "base")); !strings.Contains(string(raw), `"base_model_name_or_path": `+want) {
		t.Errorf("adapter_config.json does not name the base %s:\n%s", want, raw)
	}
	// The prompt and the generated tokens must fit the context: beyond it
	// nothing was trained.
	var errb bytes.Buffer
	m, _ := pkgs[0].new()
	if code := driver.Main(m.(driver.Runnable), []string{"demo", "--out", t.TempDir(), "--tokens", "100000"}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "fit the context") {
		t.Errorf("--tokens past the context: exit %d, %s", code, errb.String())
	}
}

// TestShardedWeights: a sharded checkpoint (index + two shards, one in
// BF16) loads like a single file; so does its directory.
func TestShardedWeights(t *testing.T) {
	_, c := pkgs[1].new()
	c.InitBase(8)
	dir := t.TempDir()
	var a, b []format.WriteTensor
	index := map[string]string{}
	for i, p := range c.Spec.Base {
		wt := format.WriteTensor{Name: p.Name, Shape: p.Shape, Data: c.Base[p.Offset : p.Offset+p.Size()]}
		if i%2 == 0 {
			a = append(a, wt)
			index[p.Name] = "model-00001-of-00002.safetensors"
		} else {
			wt.DType = "BF16"
			b = append(b, wt)
			index[p.Name] = "model-00002-of-00002.safetensors"
		}
	}
	if err := format.WriteSafetensors(filepath.Join(dir, "model-00001-of-00002.safetensors"), a, nil); err != nil {
		t.Fatal(err)
	}
	if err := format.WriteSafetensors(filepath.Join(dir, "model-00002-of-00002.safetensors"), b, nil); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": index})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "model.safetensors.index.json"), dir} {
		_, d := pkgs[1].new()
		if err := d.LoadBase(path); err != nil {
			t.Fatal(err)
		}
		for i, p := range c.Spec.Base {
			want, got := c.Base[p.Offset:p.Offset+p.Size()], d.Base[p.Offset:p.Offset+p.Size()]
			tol := 0.0
			if i%2 == 1 {
				tol = 1.0 / 128 // BF16 keeps 8 significant bits
			}
			for j := range want {
				if math.Abs(float64(got[j]-want[j])) > tol*math.Abs(float64(want[j])) {
					t.Fatalf("%s: %s[%d] = %g, want %g", path, p.Name, j, got[j], want[j])
				}
			}
		}
	}
}

// TestTokenizerJSON trains and generates through a Hugging Face
// tokenizer.json, and refuses one whose vocabulary does not fit the model.
func TestTokenizerJSON(t *testing.T) {
	dir := t.TempDir()
	text, err := driver.Corpus("log", 30000, 4)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenizer := "../../runtime/tok/testdata/bpe/llama/tokenizer.json"
	_, c := pkgs[1].new() // llama, vocab 512
	c.InitBase(3)
	base := filepath.Join(dir, "base.safetensors")
	if err := c.SaveBase(base); err != nil {
		t.Fatal(err)
	}
	out := run(t, pkgs[1], "train", "--data", data, "--base", base, "--steps", "2", "--tokenizer", tokenizer, "--out", filepath.Join(dir, "a"))
	if !strings.Contains(out, "validation loss") {
		t.Errorf("train: %q", out)
	}
	gen := run(t, pkgs[1], "generate", "--base", base, "--adapter", filepath.Join(dir, "a"), "--tokenizer", tokenizer,
		"--prompt", "Day 3. Wind", "--tokens", "5")
	if !strings.HasPrefix(gen, "Day 3. Wind") {
		t.Errorf("generate: %q does not start with the prompt", gen)
	}
	// gpt2 here has vocab 256: the 421-token tokenizer does not fit.
	m, _ := pkgs[0].new()
	var so, se bytes.Buffer
	if code := driver.Main(m.(driver.Runnable), []string{"train", "--data", data, "--base", base, "--tokenizer", tokenizer}, &so, &se); code == 0 || !strings.Contains(se.String(), "more than the model's vocab") {
		t.Errorf("a tokenizer larger than the vocabulary: exit %d, %q", code, se.String())
	}
}

// TestAdapterSizeAsChecked: lorac check's adapter_bytes is the size of the
// adapter file SaveAdapter writes.
func TestAdapterSizeAsChecked(t *testing.T) {
	for _, p := range pkgs {
		s, err := compile.Summarize(config(t, p.name))
		if err != nil {
			t.Fatal(err)
		}
		_, c := p.new()
		dir := t.TempDir()
		if err := c.SaveAdapter(dir); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, format.PEFTWeightsFile))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != s.AdapterBytes {
			t.Errorf("%s: check says %d bytes, SaveAdapter wrote %d", p.name, s.AdapterBytes, fi.Size())
		}
	}
}
