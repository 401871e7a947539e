package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/gguf"
	"lorac.dev/lorac/runtime/format"
	"lorac.dev/lorac/runtime/kern"
)

// TestMain runs lorac itself when a test starts the test binary as lorac
// (asLorac), so that a test can signal a real lorac process.
func TestMain(m *testing.M) {
	if os.Getenv("LORAC_TEST_AS_LORAC") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// asLorac is a lorac process: this test binary, running run.
func asLorac(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), "LORAC_TEST_AS_LORAC=1")
	return c
}

func lorac(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckJSON(t *testing.T) {
	code, out, errs := lorac(t, "check", "--json", "../../examples/bench-gpt2s/bench-gpt2s.lora")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"params_total", "params_trainable", "adapter_bytes", "train_memory_bytes", "infer_memory_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("key %s missing", k)
		}
	}
	if got["params_total"].(float64) != 124439808 {
		t.Errorf("params_total = %v, want GPT-2 small's 124,439,808", got["params_total"])
	}
	if got["params_trainable"].(float64) != 12*16*(768+2304) {
		t.Errorf("params_trainable = %v, want 12·16·(768+2304)", got["params_trainable"])
	}
	// The kernels' scratch is part of the total: at least the packed
	// 768×3072 MLP weight of one GEMM.
	train := got["train_memory"].(map[string]any)
	scratch, total := train["kernel_scratch_bytes"].(float64), train["total_bytes"].(float64)
	parts := 0.0
	for _, k := range []string{"weights_bytes", "adapter_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "inputs_bytes", "kernel_scratch_bytes"} {
		parts += train[k].(float64)
	}
	if scratch < 4*768*3072 || total != parts {
		t.Errorf("train memory: kernel scratch %v (want ≥ %d), total %v (want the sum of its parts, %v)", scratch, 4*768*3072, total, parts)
	}
}

// TestCUDATargetWarns: a target cuda block is valid, but compiled packages
// have no CUDA code (the lorac command runs --device cuda); check and
// compile say so on stderr and still succeed (the package runs
// on the CPU), and check --json lists it under warnings.
func TestCUDATargetWarns(t *testing.T) {
	const file = "../../examples/bench-gpt2s/bench-gpt2s.lora"
	const want = "warning: ../../examples/bench-gpt2s/bench-gpt2s.lora:22:1: target cuda (sm_90): compiled packages have no CUDA code and run on the CPU; lorac train, generate, eval and merge run the model on a GPU with --device cuda"
	for _, args := range [][]string{{"check", file}, {"compile", file, "-o", t.TempDir()}} {
		code, _, errs := lorac(t, args...)
		if code != 0 || !strings.Contains(errs, want) {
			t.Errorf("lorac %s: exit %d, stderr %q; want exit 0 and %q", args[0], code, errs, want)
		}
	}
	code, out, _ := lorac(t, "check", "--json", file)
	var got struct{ Warnings []string }
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "--device cuda") {
		t.Errorf("check --json: exit %d, err %v, warnings %q", code, err, got.Warnings)
	}
	if code, _, errs := lorac(t, "check", "../../examples/tiny/tiny.lora"); code != 0 || errs != "" {
		t.Errorf("tiny.lora (no cuda target): exit %d, stderr %q", code, errs)
	}
}

func TestCheckHuman(t *testing.T) {
	code, out, errs := lorac(t, "check", "../../examples/tiny/tiny.lora")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"tiny.lora: ok", "gpt2, 4 layers", "trainable LoRA in 16 modules", "training memory at batch 8 × seq 128", "inference memory", "this machine's memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFitsLine(t *testing.T) {
	for _, c := range []struct {
		s    compile.Summary
		want string
	}{
		{compile.Summary{}, "this machine's memory is unknown: cannot say whether training fits\n"},
		{compile.Summary{MachineMemory: 16 << 30, InferFits: true}, "training does not fit this machine's memory (16.0 GiB); inference fits\n"},
		{compile.Summary{MachineMemory: 1 << 40, TrainFits: true, InferFits: true}, "training fits this machine's memory (1.0 TiB); inference fits\n"},
	} {
		if got := fitsLine(&c.s); got != c.want {
			t.Errorf("fitsLine = %q, want %q", got, c.want)
		}
	}
}

func TestCheckReportsPositionedErrors(t *testing.T) {
	path := writeFile(t, "bad.lora", "model m {\n  arch gpt2\n  vocab 256\n  context 64\n  dimm 64\n  layers 2\n  heads 4\n}\n")
	code, out, errs := lorac(t, "check", path)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if !strings.Contains(errs, path+":5:3: unknown model field \"dimm\"; did you mean \"dim\"?") {
		t.Errorf("stderr lacks the positioned error:\n%s", errs)
	}
}

func TestGraph(t *testing.T) {
	code, out, errs := lorac(t, "graph", "../../examples/tiny/tiny.lora", "--after", "InsertLoRA")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "= lora(") || strings.Contains(out, "lora_linear") || strings.Contains(out, "_grad") {
		t.Errorf("after InsertLoRA the graph should have unfused branches and no backward:\n%.2000s", out)
	}
	code, out, _ = lorac(t, "graph", "--format", "dot", "--mode", "infer", "../../examples/tiny/tiny.lora")
	if code != 0 || !strings.HasPrefix(out, "digraph") || !strings.Contains(out, "lora_merge") {
		t.Errorf("dot output of the merged inference graph: exit %d\n%.500s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"check"},
		{"check", "a.lora", "b.lora"},
		{"graph", "../../examples/tiny/tiny.lora", "--after", "Nope"},
		{"graph", "../../examples/tiny/tiny.lora", "--format", "svg"},
		{"graph", "../../examples/tiny/tiny.lora", "--mode", "infer", "--after", "Differentiate"},
		{"check", "--bogus", "x.lora"},
	} {
		if code, _, errs := lorac(t, args...); code != 2 || errs == "" {
			t.Errorf("lorac %v: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
	if code, _, errs := lorac(t, "check", "does-not-exist.lora"); code != 1 || !strings.Contains(errs, "does-not-exist.lora") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := lorac(t, "help"); code != 0 || !strings.Contains(out, "lorac check") || !strings.Contains(out, "FuseLoRA") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	if code, out, _ := lorac(t, "version"); code != 0 || !strings.HasPrefix(out, "lorac "+version) {
		t.Errorf("version: exit %d %q", code, out)
	}
}

// TestTrainAndGenerate runs the whole path a user takes: lorac compiles the
// model, builds it with the embedded runtime, trains a base, then an
// adapter on it, and generates text with the adapter merged.
func TestTrainAndGenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	data := writeFile(t, "data.txt", strings.Repeat("the cat sat on the mat. the dog sat on the log. ", 200))
	model := "../../internal/gen/gpt2.lora"
	base := filepath.Join(dir, "base")
	if code, out, errs := lorac(t, "train", model, "--full", "--data", data, "--steps", "3", "--out", base); code != 0 {
		t.Fatalf("train --full: exit %d\n%s%s", code, out, errs)
	}
	adapter := filepath.Join(dir, "adapter")
	code, out, errs := lorac(t, "train", model, "--data", data, "--base", filepath.Join(base, "model.safetensors"), "--steps", "3", "--out", adapter)
	if code != 0 || !strings.Contains(out, "validation loss") {
		t.Fatalf("train: exit %d\n%s%s", code, out, errs)
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "loss.svg", "checkpoint/trainer_state.json"} {
		if _, err := os.Stat(filepath.Join(adapter, f)); err != nil {
			t.Errorf("training wrote no %s: %v", f, err)
		}
	}
	code, out, errs = lorac(t, "generate", model, "--base", filepath.Join(base, "model.safetensors"), "--adapter", adapter, "--merge", "--prompt", "the ", "--tokens", "8")
	if code != 0 || !strings.HasPrefix(out, "the ") {
		t.Fatalf("generate: exit %d\n%s%s", code, out, errs)
	}
	// A bad flag reaches the model program and comes back as a usage error,
	// in lorac's form.
	if code, _, errs := lorac(t, "eval", model, "--base", filepath.Join(base, "model.safetensors"), "--bogus"); code != 2 || errs != "lorac: eval: flag provided but not defined: -bogus; \"lorac eval --help\" lists the flags\n" {
		t.Errorf("eval --bogus: exit %d, %q", code, errs)
	}
	// A failure in the model program exits 1, prefixed the same way.
	if code, _, errs := lorac(t, "generate", model, "--base", filepath.Join(dir, "missing.safetensors"), "--prompt", "a"); code != 1 || !strings.HasPrefix(errs, "lorac: generate: ") || strings.Count(errs, "\n") != 1 {
		t.Errorf("generate with a missing base: exit %d, %q", code, errs)
	}
	// With a .lora file, the model program prints the help, with the
	// model's own train block as defaults (gpt2.lora: steps 10, seed 3).
	code, out, errs = lorac(t, "train", model, "--help")
	if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: lorac train") || !strings.Contains(out, "(default 10)") || !strings.Contains(out, "(default 3)") {
		t.Errorf("train FILE.lora --help: exit %d, stderr %q\n%s", code, errs, out)
	}
}

// TestTrainStopsOnNonFiniteLoss: a run whose loss turns NaN or Inf stops
// with exit 1, names the step, and keeps the last good checkpoint. A base
// trains 2 good steps; resumed with lr 1e30, its third step's update
// overflows the weights. The checkpoint also records the schedule of the
// run that wrote it (--steps 2), which the resumed run keeps.
func TestTrainStopsOnNonFiniteLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	data := writeFile(t, "data.txt", strings.Repeat("the cat sat on the mat. the dog sat on the log. ", 200))
	src, err := os.ReadFile("../../internal/gen/gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "good.lora", string(src))
	bad := writeFile(t, "bad.lora", strings.Replace(string(src), "lr 1e-2", "lr 1e30", 1))
	out := filepath.Join(dir, "base")
	if code, stdout, errs := lorac(t, "train", good, "--full", "--data", data, "--steps", "2", "--eval-every", "1", "--out", out); code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, stdout, errs)
	}
	state := func() (st struct {
		Step           int `json:"step"`
		ScheduleSteps  int `json:"schedule_steps"`
		ScheduleWarmup int `json:"schedule_warmup"`
	}) {
		js, err := os.ReadFile(filepath.Join(out, "checkpoint", "trainer_state.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := state(); st.Step != 2 || st.ScheduleSteps != 2 || st.ScheduleWarmup != 0 {
		t.Errorf("checkpoint: %+v; want step 2 of a 2-step schedule", st)
	}
	code, stdout, errs := lorac(t, "train", bad, "--full", "--data", data, "--steps", "6", "--eval-every", "1", "--out", out, "--resume")
	if code != 1 || !strings.Contains(errs, "step 3: the") || !strings.Contains(errs, "diverged") || !strings.Contains(errs, "at step 2, is kept") {
		t.Errorf("diverging run: exit %d\n%s%s", code, stdout, errs)
	}
	if st := state(); st.Step != 2 {
		t.Errorf("the diverging run replaced the checkpoint: now at step %d", st.Step)
	}
}

// TestExportGGUF exports the conformance llama adapter and reads it back.
func TestExportGGUF(t *testing.T) {
	out := filepath.Join(t.TempDir(), "adapter.gguf")
	code, stdout, errs := lorac(t, "export", "--gguf", "../../conformance/testdata/llama/adapter", "-o", out, "--from", "../../conformance/testdata/llama")
	if code != 0 || !strings.Contains(stdout, "14 modules") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	g, err := gguf.ReadGGUF(out)
	if err != nil {
		t.Fatal(err)
	}
	if g.Metadata["general.type"] != "adapter" || g.Metadata["adapter.type"] != "lora" || g.Metadata["general.architecture"] != "llama" {
		t.Errorf("metadata %v", g.Metadata)
	}
	if _, ok := g.Tensor("blk.1.ffn_down.weight.lora_b"); !ok {
		t.Error("no blk.1.ffn_down.weight.lora_b")
	}
	// Without the model, a llama adapter cannot be exported: llama.cpp
	// reorders q and k by heads.
	if code, _, errs := lorac(t, "export", "--gguf", "../../conformance/testdata/llama/adapter", "-o", out); code != 2 || !strings.Contains(errs, "head counts") {
		t.Errorf("llama without the model: exit %d, %q", code, errs)
	}
	// gpt2 needs nothing more.
	if code, _, errs := lorac(t, "export", "--gguf", "../../conformance/testdata/gpt2/adapter", "-o", out); code != 0 {
		t.Errorf("gpt2: exit %d, %q", code, errs)
	}
}

// TestBench runs `lorac bench` on a model whose context is longer than its
// training batch (bench-llama's shape: the bench once cut its prompt from the
// batch and panicked), with the kernel table and the peak, on a forced kernel
// variant.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	want := "go"
	if slices.Contains(kern.ISAVariants(), "avx2") {
		want = "avx2"
	}
	t.Setenv("LORAC_ISA", want)
	model := writeFile(t, "long.lora", `model long_context {
  arch llama
  vocab 64
  context 48
  dim 32
  layers 1
  heads 4
  kv_heads 2
  ffn 48
}
lora { rank 4; alpha 8; targets q, v }
train { batch 2; seq 8; steps 1 }
`)
	code, out, errs := lorac(t, "bench", model, "--repeats", "1", "--threads", "1", "--decode-tokens", "4", "--kernels", "--peak")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errs)
	}
	for _, s := range []string{"kernels " + want, "16×32×32 r4", "train step, LoRA", "forward, adapter unmerged", "decode, base only"} {
		if !strings.Contains(out, s) {
			t.Errorf("bench output lacks %q:\n%s", s, out)
		}
	}
	if code, _, errs := lorac(t, "bench", model, "--only", "nothing-matches"); code != 2 || !strings.Contains(errs, "matches no measurement") {
		t.Errorf("bench --only nothing-matches: exit %d, %q", code, errs)
	}
}

// TestServe: `lorac serve` builds its model program offline (with the
// Prometheus client library from the module cache), serves a base and an
// adapter, and ends with exit 0 on SIGTERM.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	data := writeFile(t, "data.txt", strings.Repeat("the cat sat on the mat. the dog sat on the log. ", 200))
	model := "../../internal/gen/gpt2.lora"
	base := filepath.Join(dir, "base")
	if code, out, errs := lorac(t, "train", model, "--full", "--data", data, "--steps", "2", "--out", base); code != 0 {
		t.Fatalf("train --full: exit %d\n%s%s", code, out, errs)
	}
	adapters := filepath.Join(dir, "adapters")
	if code, out, errs := lorac(t, "train", model, "--data", data, "--base", filepath.Join(base, "model.safetensors"), "--steps", "2", "--out", filepath.Join(adapters, "cats")); code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, out, errs)
	}
	// The training run's checkpoint is a directory of the adapter too;
	// the server lists only PEFT adapter directories.
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	c := asLorac("serve", model, "--base", filepath.Join(base, "model.safetensors"), "--adapters", adapters, "--addr", "127.0.0.1:0")
	c.Stderr = errFile
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	var url string
	for deadline := time.Now().Add(3 * time.Minute); url == ""; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(errFile.Name())
		if _, after, ok := strings.Cut(string(b), " on http://"); ok {
			url = "http://" + strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start:\n%s", b)
		}
	}
	get := func(path string) string {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if models := get("/v1/models"); !strings.Contains(models, `"id":"small_gpt2"`) || !strings.Contains(models, `"id":"cats"`) {
		t.Errorf("models: %s", models)
	}
	for _, m := range []string{"small_gpt2", "cats"} {
		resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"model": "`+m+`", "prompt": "the ", "max_tokens": 5}`))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Choices []struct{ Text string }
			Usage   struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(c.Choices) != 1 || c.Usage.CompletionTokens != 5 {
			t.Errorf("completion on %s: %d %v %+v", m, resp.StatusCode, err, c)
		}
	}
	if metrics := get("/metrics"); !strings.Contains(metrics, `lorac_requests_total{code="200",endpoint="completions"} 2`) {
		t.Errorf("metrics:\n%s", metrics)
	}
	c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		b, _ := os.ReadFile(errFile.Name())
		t.Errorf("serve after SIGTERM: %v\n%s", err, b)
	}
}

// TestCombine: lorac combine writes PEFT's cat combination of the
// conformance adapters (internal/combine checks every method).
func TestCombine(t *testing.T) {
	fix := "../../conformance/testdata/combine"
	out := filepath.Join(t.TempDir(), "cat")
	code, stdout, errs := lorac(t, "combine", "--method", "cat", "--weights", "0.6,1.3", "-o", out, filepath.Join(fix, "ad1"), filepath.Join(fix, "ad3"))
	if code != 0 || !strings.Contains(stdout, "rank 6") {
		t.Fatalf("combine: exit %d\n%s%s", code, stdout, errs)
	}
	got, err := format.ReadPEFT(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := format.ReadPEFT(filepath.Join(fix, "cat"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.R != 6 || got.Config.LoraAlpha != 6 || len(got.Modules) != len(want.Modules) {
		t.Fatalf("config r %d alpha %g, %d modules; PEFT's %d", got.Config.R, got.Config.LoraAlpha, len(got.Modules), len(want.Modules))
	}
	for i, m := range want.Modules {
		g := got.Modules[i]
		for k := range m.A {
			if d := g.A[k] - m.A[k]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("%s lora_A[%d] = %g; PEFT %g", m.Module, k, g.A[k], m.A[k])
			}
		}
		if !slices.Equal(g.B, m.B) {
			t.Fatalf("%s lora_B differs from PEFT's", m.Module)
		}
	}
}
