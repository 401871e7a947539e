package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTrainOutputs: training refuses to replace an earlier run unless told,
// clears a killed run's temporaries, and finds a bad --out before training;
// merge checks -o before merging.
func TestTrainOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	data := writeFile(t, "data.txt", strings.Repeat("the cat sat on the mat. the dog sat on the log. ", 200))
	model := "../../internal/gen/gpt2.lora"
	base := filepath.Join(dir, "base")
	train := func(args ...string) (int, string) {
		code, out, errs := lorac(t, append([]string{"train", model, "--full", "--data", data, "--steps", "2"}, args...)...)
		return code, out + errs
	}
	if code, out := train("--out", base); code != 0 {
		t.Fatalf("train: exit %d\n%s", code, out)
	}
	weights := filepath.Join(base, "model.safetensors")
	before, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	code, out := train("--out", base)
	if code != 2 || !strings.Contains(out, "holds an earlier run") || !strings.Contains(out, "--resume") || !strings.Contains(out, "--overwrite") {
		t.Errorf("a second run into one --out: exit %d\n%s\nwant 2 and a refusal naming --resume and --overwrite", code, out)
	}
	if after, _ := os.ReadFile(weights); !bytes.Equal(before, after) {
		t.Error("the refused run changed the earlier run's weights")
	}
	// Leftovers of a run killed while saving.
	stale := []string{filepath.Join(base, ".checkpoint.tmp123"), filepath.Join(base, ".model.safetensors.tmp-45")}
	if err := errors.Join(os.Mkdir(stale[0], 0o755), os.WriteFile(stale[1], []byte("half"), 0o644)); err != nil {
		t.Fatal(err)
	}
	if code, out := train("--out", base, "--overwrite"); code != 0 {
		t.Fatalf("train --overwrite: exit %d\n%s", code, out)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived the next run", p)
		}
	}
	if code, out := train("--out", base, "--resume", "--steps", "3"); code != 0 {
		t.Errorf("train --resume: exit %d\n%s", code, out)
	}
	if code, out := train("--out", weights); code != 2 || !strings.Contains(out, "is a file; give a directory") || strings.Contains(out, "training") {
		t.Errorf("--out FILE: exit %d\n%s\nwant 2 and the error before training", code, out)
	}

	adapter := filepath.Join(dir, "adapter")
	if code, out, errs := lorac(t, "train", model, "--data", data, "--base", weights, "--steps", "2", "--out", adapter); code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, out, errs)
	}
	before, _ = os.ReadFile(weights)
	for _, c := range []struct{ out, want string }{
		{dir, "is a directory; give a file path"},
		{weights, "is the input " + weights},
		{filepath.Join(adapter, "adapter_model.safetensors"), "is the input " + filepath.Join(adapter, "adapter_model.safetensors")},
	} {
		code, _, errs := lorac(t, "merge", model, "--base", weights, "--adapter", adapter, "-o", c.out)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("merge -o %s: exit %d, %q; want 2 and %q", c.out, code, errs, c.want)
		}
	}
	if after, _ := os.ReadFile(weights); !bytes.Equal(before, after) {
		t.Error("merge -o BASE changed the base")
	}
}

// TestKilledLoracTakesItsRun: the model program lorac starts ends with lorac,
// whether lorac is killed (SIGKILL: it cannot pass anything on) or asked to
// stop (SIGTERM: it passes the signal on and waits).
func TestKilledLoracTakesItsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a model program with the Go toolchain")
	}
	if runtime.GOOS != "linux" {
		t.Skip("finds the model program's state in /proc, which only Linux has")
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := writeFile(t, "data.txt", strings.Repeat("the cat sat on the mat. the dog sat on the log. ", 200))
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			out := t.TempDir()
			// A file, not a pipe: an orphan would hold a pipe open, and
			// Wait would wait for it.
			stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			c := asLorac("train", "../../internal/gen/gpt2.lora", "--full", "--data", data, "--steps", "100000000", "--out", out)
			c.Stderr = stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Process.Kill()
			// The model program writes its pid into the lock file once it
			// holds the output directory.
			child := 0
			for deadline := time.Now().Add(2 * time.Minute); child == 0; time.Sleep(50 * time.Millisecond) {
				b, _ := os.ReadFile(filepath.Join(out, ".lorac.lock"))
				child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(stderr.Name())
					t.Fatalf("the model program did not start:\n%s", b)
				}
			}
			if child == c.Process.Pid {
				t.Fatalf("the lock holds lorac's own pid %d, not the model program's", child)
			}
			if err := c.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			c.Wait()
			for deadline := time.Now().Add(5 * time.Second); alive(child); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					syscall.Kill(child, syscall.SIGKILL)
					t.Fatalf("lorac got %v and ended; its model program (pid %d) still runs", sig, child)
				}
			}
		})
	}
}

// alive says whether pid runs (a zombie waits only to be reaped).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// TestInitExportCheckOutput: init -o and export -o are checked before any
// work, as merge -o is: a directory, an input file or an unwritable place
// is refused (exit 2, or 1 when the directory is missing) before the model
// or adapter is read, and no input is changed.
func TestInitExportCheckOutput(t *testing.T) {
	const model, adapter = "../../conformance/testdata/gpt2", "../../conformance/testdata/gpt2/adapter"
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-model")
	config := filepath.Join(model, "config.json")
	weights := filepath.Join(adapter, "adapter_model.safetensors")
	before, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		// The model directory does not exist: only a check of -o before
		// reading it can give these errors.
		{2, []string{"init", "--from", missing, "-o", dir}, "lorac: init: -o " + dir + " is a directory; give a file path"},
		{1, []string{"init", "--from", missing, "-o", filepath.Join(dir, "nodir", "m.lora")}, "lorac: init: -o " + filepath.Join(dir, "nodir", "m.lora") + ": cannot write in"},
		{2, []string{"init", "--from", model, "-o", config}, "lorac: init: -o " + config + " is the input " + config},
		{2, []string{"export", "--gguf", missing, "-o", dir}, "lorac: export: -o " + dir + " is a directory"},
		{1, []string{"export", "--gguf", missing, "-o", filepath.Join(dir, "nodir", "a.gguf")}, "lorac: export: -o " + filepath.Join(dir, "nodir", "a.gguf") + ": cannot write in"},
		{2, []string{"export", "--gguf", adapter, "-o", weights}, "lorac: export: -o " + weights + " is the input " + weights},
	} {
		code, out, errs := lorac(t, c.args...)
		if code != c.code || out != "" || !strings.HasPrefix(errs, c.want) {
			t.Errorf("lorac %q: exit %d, stdout %q, stderr %q; want %d and %q", c.args, code, out, errs, c.code, c.want)
		}
	}
	if after, _ := os.ReadFile(weights); !bytes.Equal(before, after) {
		t.Error("export -o ADAPTER_FILE changed the adapter")
	}
	// A good -o still works, and init writes a .lora that checks.
	out := filepath.Join(dir, "m.lora")
	if code, _, errs := lorac(t, "init", "--from", model, "--adapter", adapter, "-o", out); code != 0 {
		t.Fatalf("init: exit %d, %s", code, errs)
	}
	if code, _, errs := lorac(t, "check", out); code != 0 {
		t.Errorf("check of init's output: exit %d, %s", code, errs)
	}
}
