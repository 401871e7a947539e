package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/driver"
)

// commandFlags are the flags of every lorac command: its own, and the model
// program's for the commands that run it.
var commandFlags = map[string][]string{
	"check":    {"--json"},
	"graph":    {"--after", "--format", "--mode"},
	"compile":  {"-o", "--pkg"},
	"init":     {"--from", "--adapter", "-o"},
	"export":   {"--gguf", "-o", "--from", "--model"},
	"combine":  {"--method", "--weights", "--rank", "-o"},
	"train":    {"--data", "--base", "--steps", "--out", "--resume", "--overwrite", "--full", "--eval-every", "--val-fraction", "--eval-batches", "--seed", "--tokenizer", "--val-data", "--grad-accum", "--chat-template", "--device", "--gpu"},
	"generate": {"--base", "--adapter", "--merge", "--prompt", "--tokens", "--temperature", "--top-k", "--top-p", "--seed", "--tokenizer", "--chat", "--chat-template", "--device", "--gpu"},
	"merge":    {"--base", "--adapter", "-o", "--device", "--gpu"},
	"eval":     {"--base", "--adapter", "--data", "--tokens", "--dump-logits", "--tokenizer", "--chat-template", "--device", "--gpu"},
	"bench":    {"--repeats", "--decode-tokens", "--threads", "--peak", "--kernels", "--only"},
	"demo":     {"--out", "--base-steps", "--base-lr", "--lora-steps", "--tokens"},
	"serve": {"--base", "--adapters", "--addr", "--tokenizer", "--name", "--adapter-memory", "--max-batch", "--max-queue",
		"--max-prompt-tokens", "--max-tokens", "--timeout", "--shutdown-timeout"},
}

// listedFlags are the flags a usage text lists, one per "  --name" line.
var listedFlags = regexp.MustCompile(`(?m)^  (--?[a-z][a-z-]*)`)

// TestCommandHelp: `lorac CMD -h`, `lorac CMD --help` and `lorac help CMD`
// print, on stdout and with exit 0, the command's usage and every one of
// its flags with a meaning, for every command; none needs a model build.
func TestCommandHelp(t *testing.T) {
	if len(commandFlags) != len(ownCommands)+len(driver.Commands)+1 {
		t.Fatalf("the test knows %d commands; lorac has %d of its own, %v and serve", len(commandFlags), len(ownCommands), driver.Commands)
	}
	for cmd, flags := range commandFlags {
		for _, args := range [][]string{{cmd, "-h"}, {cmd, "--help"}, {"help", cmd}} {
			code, out, errs := lorac(t, args...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: lorac "+cmd+" ") {
				t.Errorf("lorac %q: exit %d, stderr %q, stdout\n%s\nwant 0, nothing on stderr and the usage", args, code, errs, out)
				continue
			}
			var got []string
			for _, m := range listedFlags.FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			want := slices.Clone(flags)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("lorac %q lists the flags %q, want %q:\n%s", args, got, want, out)
			}
			for _, f := range flags {
				_, after, _ := strings.Cut(out, "\n  "+f)
				lines := strings.SplitN(after, "\n", 3)
				if len(lines) < 2 || len(strings.TrimSpace(lines[1])) < 8 {
					t.Errorf("lorac %q: %s has no meaning:\n%s", args, f, out)
				}
			}
		}
	}
	// The help a FILE.lora asks for comes from lorac too when there is
	// none; the top-level help names --help.
	if code, out, _ := lorac(t, "help"); code != 0 || !strings.Contains(out, "lorac CMD --help") {
		t.Errorf("lorac help: exit %d\n%s", code, out)
	}
	if code, _, errs := lorac(t, "help", "frobnicate"); code != 2 || !strings.HasPrefix(errs, "lorac: help: no command \"frobnicate\"") {
		t.Errorf("lorac help frobnicate: exit %d, %q", code, errs)
	}
}

// TestErrorConvention: across the commands, a mistake in the call exits 2
// and a failure 1, and every line of the message starts "lorac: CMD: ".
func TestErrorConvention(t *testing.T) {
	tiny := "../../examples/tiny/tiny.lora"
	dir := t.TempDir()
	bad := writeFile(t, "bad.lora", "model m {\n  dimm 4\n  heds 2\n}\n")
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{2, []string{"frobnicate"}, `lorac: unknown command "frobnicate"`},
		{2, []string{"check"}, "lorac: check: want one FILE.lora, got 0 arguments"},
		{2, []string{"check", "--bogus", tiny}, `lorac: check: flag provided but not defined: -bogus; "lorac check --help" lists the flags`},
		{1, []string{"check", filepath.Join(dir, "missing.lora")}, "lorac: check: "},
		{1, []string{"check", bad}, "lorac: check: " + bad + ":"},
		{2, []string{"graph", tiny, "--mode", "nope"}, `lorac: graph: --mode "nope"`},
		{2, []string{"graph", tiny, "--after", "Nope"}, `lorac: graph: unknown pass "Nope"`},
		{2, []string{"compile", tiny}, "lorac: compile: -o DIR is required"},
		{1, []string{"compile", bad, "-o", dir}, "lorac: compile: " + bad + ":"},
		{2, []string{"init"}, "lorac: init: --from MODEL_DIR is required"},
		{2, []string{"init", "--from", dir, "stray"}, `lorac: init: unexpected argument "stray"`},
		{1, []string{"init", "--from", filepath.Join(dir, "missing")}, "lorac: init: "},
		{2, []string{"export", "-o", "x.gguf"}, "lorac: export: --gguf ADAPTER_DIR is required"},
		{2, []string{"export", "--gguf", dir}, "lorac: export: -o adapter.gguf is required"},
		{2, []string{"export", "--gguf", dir, "-o", filepath.Join(dir, "a.gguf"), "--from", dir, "--model", tiny}, "lorac: export: --from and --model conflict"},
		{1, []string{"export", "--gguf", filepath.Join(dir, "missing"), "-o", filepath.Join(dir, "a.gguf")}, "lorac: export: "},
		{2, []string{"train", "--data", "x.txt"}, `lorac: train: want a FILE.lora; "lorac train --help" shows the usage`},
		{2, []string{"generate"}, "lorac: generate: want a FILE.lora"},
		{2, []string{"merge"}, "lorac: merge: want a FILE.lora"},
		{2, []string{"eval", "--tokens", "1"}, "lorac: eval: want a FILE.lora"},
		{2, []string{"bench"}, "lorac: bench: want a FILE.lora"},
		{2, []string{"serve", "--base", "b"}, "lorac: serve: want a FILE.lora"},
		{2, []string{"combine", "-o", dir}, "lorac: combine: name the PEFT adapter directories"},
		{2, []string{"combine", dir}, "lorac: combine: -o DIR is required"},
		{2, []string{"combine", "--weights", "1,2", "-o", filepath.Join(dir, "c"), dir}, "lorac: combine: --weights has 2 values for 1 adapters"},
		{2, []string{"combine", "-o", dir, dir}, "lorac: combine: -o " + dir + " is one of the adapters"},
		{1, []string{"combine", "-o", filepath.Join(dir, "c"), filepath.Join(dir, "missing")}, "lorac: combine: "},
		{1, []string{"train", filepath.Join(dir, "missing.lora")}, "lorac: train: "},
		{1, []string{"eval", bad, "--data", "x"}, "lorac: eval: " + bad + ":"},
	} {
		code, out, errs := lorac(t, c.args...)
		if code != c.code || out != "" || !strings.HasPrefix(errs, c.want) {
			t.Errorf("lorac %q: exit %d, stdout %q, stderr\n%s\nwant exit %d and a message starting %q", c.args, code, out, errs, c.code, c.want)
		}
		prefix := c.want[:strings.Index(c.want, ":")+1]
		if cmd, _, ok := strings.Cut(strings.TrimPrefix(c.want, "lorac: "), ":"); ok && c.args[0] != "frobnicate" {
			prefix = "lorac: " + cmd + ": "
		}
		for _, line := range strings.Split(strings.TrimSuffix(errs, "\n"), "\n") {
			if !strings.HasPrefix(line, prefix) {
				t.Errorf("lorac %q: line %q does not start %q", c.args, line, prefix)
			}
		}
	}
}

// TestREADMEDocumentsEveryFlag: every flag that a command's --help lists
// is in that command's entry of the README's command list, as `--name` (or
// `-o`), and the README's DSL sample is examples/tiny/tiny.lora as it is.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for cmd := range commandFlags {
		i := strings.Index(readme, "\n- `lorac "+cmd+" ")
		if i < 0 {
			t.Errorf("README.md has no entry for lorac %s", cmd)
			continue
		}
		entry := readme[i+1:]
		entry = entry[:strings.Index(entry[1:], "\n- ")+1]
		_, out, _ := lorac(t, cmd, "--help")
		for _, m := range listedFlags.FindAllStringSubmatch(out, -1) {
			if !regexp.MustCompile(`[\s\[(` + "`" + `]` + regexp.QuoteMeta(m[1]) + `[\s\]=)` + "`" + `]`).MatchString(entry) {
				t.Errorf("README.md's entry for lorac %s does not document %s:\n%s", cmd, m[1], entry)
			}
		}
	}
	tiny, err := os.ReadFile("../../examples/tiny/tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readme, "`examples/tiny/tiny.lora`, the model `lorac demo` runs:\n\n```\n"+string(tiny)+"```\n") {
		t.Error("README.md's DSL sample is not examples/tiny/tiny.lora as it is")
	}
}
