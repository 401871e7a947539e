package driver

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Progress reports a long run on one line: step/total, a bar, the loss,
// tokens per second and the time left.
//
// On a terminal the line is redrawn in place (carriage return), at most ten
// times a second so that fast steps do not spend their time printing. On
// anything else (a log file, a pipe, CI output) a carriage return would
// pile up unreadable text, so a full line is printed each time another 10%
// of the steps is done: about a dozen lines for the whole run. Without a
// total (total ≤ 0) the non-terminal form prints at most every ten seconds.
//
// A Progress is not safe for concurrent use.
type Progress struct {
	w     io.Writer
	total int
	label string
	tty   bool
	now   func() time.Time // injectable so tests control elapsed time

	start     time.Time
	lastDraw  time.Time
	drawn     bool // anything written yet
	nextTenth int  // non-terminal: the next 10% mark that prints a line
	width     int  // terminal: length of the line on screen, to blank its tail
	pending   bool // the latest Update has not been written
	done      bool

	step   int
	loss   float64
	tokens int64
}

// Redraw and log intervals; see Progress.
const (
	progressRedraw  = 100 * time.Millisecond
	progressLogTick = 10 * time.Second
	progressBarLen  = 24
)

// NewProgress returns a progress line for a run of total steps, written to
// w and prefixed by label. The clock starts now: rates and the ETA count
// from this call.
func NewProgress(w io.Writer, total int, label string) *Progress {
	p := &Progress{w: w, total: total, label: label, tty: progressIsTerminal(w), now: time.Now}
	p.start = p.now()
	return p
}

// progressIsTerminal reports whether w is a character device, the one test the
// standard library allows without a syscall package per OS.
func progressIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update records that step steps (counting from 1) are done, the latest
// loss, and tokens, the number of tokens processed since NewProgress
// (cumulative, not per step), and writes the line if it is due.
func (p *Progress) Update(step int, loss float64, tokens int64) {
	if p.done {
		return
	}
	p.step, p.loss, p.tokens = step, loss, tokens
	p.pending = true
	now := p.now()
	final := p.total > 0 && step >= p.total
	if p.tty {
		if final || !p.drawn || now.Sub(p.lastDraw) >= progressRedraw {
			p.draw(now)
		}
		return
	}
	if p.total > 0 {
		tenth := min(step*10/p.total, 10)
		if tenth >= p.nextTenth {
			p.nextTenth = tenth + 1
			p.draw(now)
		}
		return
	}
	if !p.drawn || now.Sub(p.lastDraw) >= progressLogTick {
		p.draw(now)
	}
}

// Done writes the last state if it has not been shown and ends the line.
// Calls after the first do nothing.
func (p *Progress) Done() {
	if p.done {
		return
	}
	if p.pending {
		p.draw(p.now())
	}
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
	p.done = true
}

// draw writes the current state: in place on a terminal, as a new line
// elsewhere. Write errors are ignored; losing a progress line must not stop
// a training run.
func (p *Progress) draw(now time.Time) {
	line := p.line(now.Sub(p.start))
	if p.tty {
		pad := max(p.width-len(line), 0)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		p.width = len(line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.lastDraw, p.drawn, p.pending = now, true, false
}

// line formats the state after elapsed time.
func (p *Progress) line(elapsed time.Duration) string {
	var b strings.Builder
	if p.label != "" {
		b.WriteString(p.label)
		b.WriteByte(' ')
	}
	secs := elapsed.Seconds()
	rate := "-"
	if secs > 0 {
		rate = progressCount(float64(p.tokens) / secs)
	}
	if p.total > 0 {
		frac := min(max(float64(p.step)/float64(p.total), 0), 1)
		fill := int(frac * progressBarLen)
		fmt.Fprintf(&b, "%d/%d [%s%s] %3.0f%% loss %.4f %s tok/s ETA ",
			p.step, p.total,
			strings.Repeat("#", fill), strings.Repeat(".", progressBarLen-fill),
			100*frac, p.loss, rate)
		if p.step > 0 && secs > 0 {
			left := max(p.total-p.step, 0)
			b.WriteString(progressETA(time.Duration(float64(elapsed) * float64(left) / float64(p.step))))
		} else {
			b.WriteString("-")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "step %d loss %.4f %s tok/s elapsed %s", p.step, p.loss, rate, progressETA(elapsed))
	return b.String()
}

// progressCount writes a rate with a k or M suffix, keeping the line short
// and its length steady as throughput varies.
func progressCount(x float64) string {
	switch {
	case x < 1e3:
		return fmt.Sprintf("%.0f", x)
	case x < 1e6:
		return fmt.Sprintf("%.1fk", x/1e3)
	default:
		return fmt.Sprintf("%.2fM", x/1e6)
	}
}

// progressETA writes d to the second as 1h02m03s, 2m03s or 3s: finer figures
// would only flicker.
func progressETA(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	h, m := s/3600, s/60%60
	s %= 60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}
