package gentest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/driver"
)

// driverFlags are the flags of each driver command, as the README
// documents them.
var driverFlags = map[string][]string{
	"train":    {"--data", "--base", "--steps", "--out", "--resume", "--overwrite", "--full", "--eval-every", "--val-fraction", "--eval-batches", "--seed", "--tokenizer"},
	"generate": {"--base", "--adapter", "--merge", "--prompt", "--tokens", "--temperature", "--top-k", "--top-p", "--seed", "--tokenizer"},
	"merge":    {"--base", "--adapter", "-o"},
	"eval":     {"--base", "--adapter", "--data", "--tokens", "--dump-logits", "--tokenizer"},
	"bench":    {"--repeats", "--decode-tokens", "--threads", "--peak", "--kernels", "--only"},
	"demo":     {"--out", "--base-steps", "--lora-steps", "--tokens"},
}

// mainOf runs the driver on a fresh gpt2 model.
func mainOf(args ...string) (code int, stdout, stderr string) {
	m, _ := pkgs[0].new()
	var out, errb bytes.Buffer
	code = driver.Main(m.(driver.Runnable), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDriverHelp: every command of the model program prints its usage and
// every flag, each with its meaning and default, on stdout for -h and
// --help, and exits 0; driver.Help prints the same without a model.
func TestDriverHelp(t *testing.T) {
	if len(driverFlags) != len(driver.Commands) {
		t.Fatalf("the test knows %d commands, the driver has %v", len(driverFlags), driver.Commands)
	}
	for _, cmd := range driver.Commands {
		for _, h := range []string{"-h", "--help", "-help"} {
			code, out, errs := mainOf(cmd, h)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: lorac "+cmd) {
				t.Errorf("%s %s: exit %d, stderr %q, stdout\n%s\nwant 0, nothing, and the usage", cmd, h, code, errs, out)
				continue
			}
			for _, f := range driverFlags[cmd] {
				i := strings.Index(out, "\n  "+f+" ")
				if i < 0 {
					i = strings.Index(out, "\n  "+f+"\n")
				}
				if i < 0 {
					t.Errorf("%s %s does not list %s:\n%s", cmd, h, f, out)
					continue
				}
				// The line after the flag says what it does.
				rest := out[i+1:]
				lines := strings.SplitN(rest, "\n", 3)
				if len(lines) < 2 || len(strings.TrimSpace(lines[1])) < 8 {
					t.Errorf("%s: %s has no meaning:\n%s", cmd, f, rest)
				}
			}
		}
		var w bytes.Buffer
		if err := driver.Help(cmd, &w); err != nil || !strings.HasPrefix(w.String(), "usage: lorac "+cmd) {
			t.Errorf("driver.Help(%s): %v\n%s", cmd, err, w.String())
		}
	}
	// Defaults: the model's own train block where it sets them.
	_, out, _ := mainOf("train", "--help")
	if !strings.Contains(out, "(the train block's steps unless given) (default 10)") || !strings.Contains(out, "(default 0.1)") || !strings.Contains(out, "(default out)") {
		t.Errorf("train --help lacks the defaults:\n%s", out)
	}
	_, out, _ = mainOf("generate", "--help")
	for _, want := range []string{"--temperature FLOAT\n        sampling temperature, ≥ 0 (0: greedy) (default 0.8)", "--top-k INT", "(default 40)", "--prompt TEXT"} {
		if !strings.Contains(out, want) {
			t.Errorf("generate --help lacks %q:\n%s", want, out)
		}
	}
	var w bytes.Buffer
	if err := driver.Help("nope", &w); err == nil {
		t.Error("driver.Help of an unknown command succeeded")
	}
}

// TestDriverErrors: usage errors exit 2, failures 1, each one line on
// stderr that starts "lorac: CMD: " and says what is wrong; conflicting
// flags are both named; every check of a flag's value comes before any
// work (the missing files here are never opened).
func TestDriverErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(strings.Repeat("the cat sat on the mat. ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	out := filepath.Join(dir, "out")
	dump := filepath.Join(dir, "logits.safetensors")
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{2, []string{"frobnicate"}, "lorac: unknown command \"frobnicate\""},
		{2, []string{"train", "--bogus"}, "lorac: train: flag provided but not defined: -bogus; \"lorac train --help\" lists the flags"},
		{2, []string{"train", "--data", data, "stray"}, "lorac: train: unexpected argument \"stray\""},
		{2, []string{"train"}, "lorac: train: --data PATH is required"},
		{2, []string{"train", "--data", data, "--steps", "0"}, "lorac: train: --steps 0: want a positive number of steps"},
		{2, []string{"train", "--data", data, "--eval-every", "-1"}, "lorac: train: --eval-every -1: want 0"},
		{2, []string{"train", "--data", data, "--eval-batches", "0"}, "lorac: train: --eval-batches 0: want a positive"},
		{2, []string{"train", "--data", data, "--val-fraction", "1"}, "lorac: train: --val-fraction 1: want a share between 0 and 1"},
		{2, []string{"train", "--data", data, "--val-fraction", "0"}, "lorac: train: --val-fraction 0: want"},
		{2, []string{"train", "--data", data}, "lorac: train: LoRA training needs --base PATH (or --full to train a base)"},
		{2, []string{"train", "--data", data, "--full", "--resume", "--overwrite", "--out", out}, "lorac: train: --resume and --overwrite conflict"},
		{2, []string{"generate", "--base", missing}, "lorac: generate: --prompt TEXT is required"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--temperature", "-1"}, "lorac: generate: --temperature -1: want 0 (greedy) or more"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--temperature", "NaN"}, "lorac: generate: --temperature NaN"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--top-k", "-2"}, "lorac: generate: --top-k -2: want 0 (all tokens) or more"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--top-p", "0"}, "lorac: generate: --top-p 0: want a probability mass in (0, 1]"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--top-p", "1.5"}, "lorac: generate: --top-p 1.5: want"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--tokens", "-1"}, "lorac: generate: --tokens -1: want 0 or more"},
		{2, []string{"generate", "--base", missing, "--prompt", "a", "--merge"}, "lorac: generate: --merge needs --adapter DIR"},
		{2, []string{"generate", "--prompt", "a"}, "lorac: generate: --base PATH is required"},
		{2, []string{"eval", "--base", missing, "--data", data, "--tokens", "1,2"}, "lorac: eval: --data and --tokens conflict"},
		{2, []string{"eval", "--base", missing}, "lorac: eval: give --data PATH (loss and perplexity) or --tokens 1,2,3 with --dump-logits OUT.safetensors"},
		{2, []string{"eval", "--base", missing, "--tokens", "1,2"}, "lorac: eval: --tokens needs --dump-logits OUT.safetensors"},
		{2, []string{"eval", "--base", missing, "--data", data, "--dump-logits", dump}, "lorac: eval: --dump-logits and --data conflict"},
		{2, []string{"eval", "--base", missing, "--tokens", "1", "--dump-logits", dump, "--tokenizer", "t.json"}, "lorac: eval: --tokenizer and --tokens conflict"},
		{2, []string{"eval", "--base", missing, "--tokens", "1,x", "--dump-logits", dump}, "lorac: eval: --tokens: \"x\" is not a token id"},
		{2, []string{"merge", "--adapter", dir, "-o", dump}, "lorac: merge: --base PATH is required"},
		{2, []string{"merge", "--base", missing, "-o", dump}, "lorac: merge: --adapter DIR is required"},
		{2, []string{"merge", "--base", missing, "--adapter", dir}, "lorac: merge: -o OUT.safetensors is required"},
		{2, []string{"bench", "--repeats", "0"}, "lorac: bench: --repeats 0: want a positive count"},
		{2, []string{"bench", "--decode-tokens", "0"}, "lorac: bench: --decode-tokens 0: want a positive count"},
		{2, []string{"bench", "--threads", "0"}, "lorac: bench: --threads: \"0\" is not a positive count"},
		{2, []string{"demo", "--bogus"}, "lorac: demo: flag provided but not defined: -bogus"},
		{1, []string{"generate", "--base", missing, "--prompt", "a"}, "lorac: generate: "},
		{1, []string{"eval", "--base", missing, "--data", data}, "lorac: eval: "},
		{1, []string{"merge", "--base", missing, "--adapter", dir, "-o", dump}, "lorac: merge: "},
		{1, []string{"train", "--full", "--data", filepath.Join(dir, "missing.txt"), "--out", out}, "lorac: train: "},
	} {
		code, stdout, errs := mainOf(c.args...)
		lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
		last := lines[len(lines)-1]
		if code != c.code || !strings.HasPrefix(last, c.want) || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr\n%s\nwant exit %d and a last line starting %q", c.args, code, stdout, errs, c.code, c.want)
		}
		if c.code == 2 && len(lines) != 1 {
			t.Errorf("%q: a usage error in %d lines:\n%s", c.args, len(lines), errs)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused run made its --out")
	}
	if _, err := os.Stat(dump); err == nil {
		t.Error("a refused eval wrote --dump-logits")
	}
}

// TestTrainWritesLossSVG: a training run writes its loss plot as loss.svg,
// titled with the model and what was trained, and says so.
func TestTrainWritesLossSVG(t *testing.T) {
	dir := t.TempDir()
	text, err := driver.Corpus("recipe", 20000, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "base")
	code, stdout, errs := mainOf("train", "--full", "--data", data, "--steps", "3", "--eval-every", "1", "--out", out)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s", code, errs)
	}
	if !strings.Contains(stdout, filepath.Join(out, "loss.svg")) {
		t.Errorf("train does not name the plot:\n%s", stdout)
	}
	svg, err := os.ReadFile(filepath.Join(out, "loss.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{">small_gpt2: loss, training every parameter</text>", ">step</text>", ">loss (nats per token", ">training</text>", ">validation</text>"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("loss.svg lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "loss.png")); err == nil {
		t.Error("train still writes loss.png")
	}
}
