package gentest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/format"
)

// runErr invokes the driver and returns stdout, stderr and the exit code.
func runErr(p pkg, args ...string) (string, string, int) {
	m, _ := p.new()
	var out, errb bytes.Buffer
	code := driver.Main(m.(driver.Runnable), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestJSONLTrainResumeIsBitIdentical: LoRA training on JSONL examples with
// gradient accumulation, stopped and resumed mid-epoch, writes the same
// adapter as a straight run (the epoch's order is in the checkpoint), and
// eval scores the JSONL's trained tokens.
func TestJSONLTrainResumeIsBitIdentical(t *testing.T) {
	p := pkgs[0] // byte tokens need vocab 256
	dir := t.TempDir()
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "{\"prompt\": \"%d+%d=\", \"completion\": \"%d\"}\n", i, i%4, i+i%4)
	}
	b.WriteString(`{"text": "a long line that does not fit in one row"}` + "\n")
	data := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	val := filepath.Join(dir, "val.txt")
	if err := os.WriteFile(val, []byte(strings.Repeat("1+2=3 2+2=4 ", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, c := p.new()
	c.InitBase(3)
	base := filepath.Join(dir, "base.safetensors")
	if err := c.SaveBase(base); err != nil {
		t.Fatal(err)
	}
	common := []string{"--data", data, "--val-data", val, "--base", base, "--eval-every", "2", "--grad-accum", "2"}
	_, log, code := runErr(p, append([]string{"train", "--steps", "7", "--out", filepath.Join(dir, "a")}, common...)...)
	if code != 0 {
		t.Fatal(log)
	}
	for _, want := range []string{"11 examples", "1 examples longer than seq+1 = 10 tokens were truncated", "2 micro-batches of 2 × 9 per step"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	driver.StopAfter = 3
	run(t, p, append([]string{"train", "--steps", "7", "--out", filepath.Join(dir, "b")}, common...)...)
	driver.StopAfter = 0
	st, err := os.ReadFile(filepath.Join(dir, "b", "checkpoint", "trainer_state.json"))
	if err != nil || !bytes.Contains(st, []byte(`"data_order"`)) || !bytes.Contains(st, []byte(`"grad_accum": 2`)) {
		t.Fatalf("the checkpoint does not hold the data order and accumulation: %s %v", st, err)
	}
	run(t, p, append([]string{"train", "--steps", "7", "--resume", "--out", filepath.Join(dir, "b")}, common...)...)
	for _, f := range []string{format.PEFTWeightsFile, format.PEFTConfigFile} {
		x, errA := os.ReadFile(filepath.Join(dir, "a", f))
		y, errB := os.ReadFile(filepath.Join(dir, "b", f))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the straight and the resumed run", f)
		}
	}
	// Resuming with another accumulation is refused.
	other := append([]string{"train", "--steps", "8", "--resume", "--out", filepath.Join(dir, "b")}, common...)
	other[len(other)-1] = "3"
	if _, log, code := runErr(p, other...); code != 2 || !strings.Contains(log, "--grad-accum 2") {
		t.Errorf("resume with --grad-accum 3: exit %d, %s", code, log)
	}

	// eval on the JSONL: the trained tokens only. Each prompt/completion
	// trains its 1 or 2 completion bytes; the text record trains its first
	// 9 targets (cut to 10 tokens).
	want := 9
	for i := range 10 {
		want += len(fmt.Sprint(i + i%4))
	}
	out := run(t, p, "eval", "--base", base, "--adapter", filepath.Join(dir, "a"), "--data", data)
	if !strings.Contains(out, fmt.Sprintf("%d tokens scored", want)) {
		t.Errorf("eval: %q, want %d tokens scored", out, want)
	}

	// Flag mistakes.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--grad-accum", "0"}, "--grad-accum 0 must be at least 1"},
		{[]string{"--val-fraction", "0.2"}, "drop --val-fraction"},
	} {
		args := append(append([]string{"train", "--steps", "2", "--out", filepath.Join(dir, "c")}, common...), c.args...)
		if _, log, code := runErr(p, args...); code != 2 || !strings.Contains(log, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args, code, log, c.want)
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"text": "ok"}`+"\n"+`{"prompt": 1, "completion": "x"}`+"\n"), 0o644)
	if _, log, code := runErr(p, "train", "--data", bad, "--base", base, "--out", filepath.Join(dir, "d")); code != 1 || !strings.Contains(log, "bad.jsonl:2: \"prompt\" must be a string, not a number") {
		t.Errorf("bad JSONL: exit %d, %q", code, log)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
		t.Error("a run with bad data made its --out")
	}
}
