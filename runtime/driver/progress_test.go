package driver

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// progressClock is a fake clock that tests move by hand.
type progressClock struct{ t time.Time }

func (c *progressClock) now() time.Time { return c.t }

// newTestProgress returns a Progress on the fake clock, with terminal
// behaviour forced on or off.
func newTestProgress(w *bytes.Buffer, total int, tty bool) (*Progress, *progressClock) {
	c := &progressClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := NewProgress(w, total, "train")
	p.now, p.start, p.tty = c.now, c.t, tty
	return p, c
}

func TestProgressFigures(t *testing.T) {
	var buf bytes.Buffer
	p, c := newTestProgress(&buf, 100, true)
	// 10 steps of 1000 tokens in 10 s: 1000 tok/s, and 90 steps left take 90 s.
	c.t = c.t.Add(10 * time.Second)
	p.Update(10, 2.5, 10000)
	out := buf.String()
	for _, want := range []string{"\r", "train", "10/100", "10%", "loss 2.5000", "1.0k tok/s", "ETA 1m30s", "[##......"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}

	buf.Reset()
	c.t = c.t.Add(3590 * time.Second) // 3600 s for 50 steps: 1 h to go
	p.Update(50, 0.125, 2e6)
	out = buf.String()
	for _, want := range []string{"50/100", "loss 0.1250", "556 tok/s", "ETA 1h00m00s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	p.Done()
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Error("Done did not end the line")
	}
	n := buf.Len()
	p.Done()
	p.Update(60, 1, 1)
	if buf.Len() != n {
		t.Error("output after Done")
	}
}

func TestProgressTerminalThrottled(t *testing.T) {
	var buf bytes.Buffer
	p, c := newTestProgress(&buf, 1000, true)
	for step := 1; step <= 1000; step++ {
		c.t = c.t.Add(10 * time.Millisecond)
		p.Update(step, 1, int64(step)*64)
	}
	p.Done()
	out := buf.String()
	// 10 s of updates at one redraw per 100 ms, plus the first and last.
	if n := strings.Count(out, "\r"); n > 102 || n < 90 {
		t.Errorf("%d redraws for 1000 updates over 10 s, want about 100", n)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("terminal output has %d newlines, want 1", strings.Count(out, "\n"))
	}
	last := out[strings.LastIndex(out, "\r"):]
	if !strings.Contains(last, "1000/1000") || !strings.Contains(last, "100%") || !strings.Contains(last, "ETA 0s") {
		t.Errorf("final line %q does not show completion", last)
	}
}

func TestProgressLogBounded(t *testing.T) {
	var buf bytes.Buffer
	p, c := newTestProgress(&buf, 1000, false)
	for step := 1; step <= 1000; step++ {
		c.t = c.t.Add(time.Second)
		p.Update(step, 1, int64(step))
	}
	p.Done()
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Error("non-terminal output contains a carriage return")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 10 || len(lines) > 12 {
		t.Errorf("%d lines for 1000 steps, want about one per 10%%:\n%s", len(lines), out)
	}
	if !strings.Contains(lines[len(lines)-1], "1000/1000") {
		t.Errorf("last line %q is not the final step", lines[len(lines)-1])
	}

	// A run stopped early still gets its last state from Done.
	buf.Reset()
	p, c = newTestProgress(&buf, 1000, false)
	for step := 1; step <= 55; step++ {
		c.t = c.t.Add(time.Second)
		p.Update(step, 1, 0)
	}
	p.Done()
	if lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); !strings.Contains(lines[len(lines)-1], "55/1000") {
		t.Errorf("Done after step 55 ended with %q", lines[len(lines)-1])
	}
}

func TestProgressUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	p, c := newTestProgress(&buf, 0, false)
	for step := 1; step <= 100; step++ {
		c.t = c.t.Add(time.Second)
		p.Update(step, 3, int64(step)*100)
	}
	p.Done()
	out := buf.String()
	// One line at the start, then one per 10 s.
	if n := strings.Count(out, "\n"); n < 10 || n > 12 {
		t.Errorf("%d lines over 100 s, want about 10:\n%s", n, out)
	}
	if !strings.Contains(out, "step 100 loss 3.0000 100 tok/s elapsed 1m40s") {
		t.Errorf("output lacks the final state:\n%s", out)
	}
}

func TestProgressZeroElapsed(t *testing.T) {
	var buf bytes.Buffer
	p, _ := newTestProgress(&buf, 10, true)
	p.Update(0, 0, 0)
	p.Update(1, 0, 100)
	if out := buf.String(); !strings.Contains(out, "- tok/s ETA -") {
		t.Errorf("with no elapsed time: %q, want placeholders rather than Inf", out)
	}
}
