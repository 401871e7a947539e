package driver

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"

	"lorac.dev/lorac/runtime/format"
)

// LossPlotFile is the name of the loss plot a training run writes into its
// output directory.
const LossPlotFile = "loss.svg"

// The loss plot is SVG, written by hand: the runtime may import only the
// standard library (a model program is built offline from the runtime
// source lorac embeds), so no plotting library can come along, and SVG
// gives real text (title, axis labels, legend) in any browser without
// a font in the program. Geometry in SVG user units (pixels at 100%).
const (
	plotWidth  = 720
	plotHeight = 440
	plotLeft   = 78 // room for the y tick labels and the rotated axis label
	plotRight  = 24
	plotTop    = 44 // the title
	plotBottom = 58 // x tick labels and the axis label
)

// Loss plot colours: the first two matplotlib defaults, which readers of
// loss curves know at a glance: blue for training, orange for validation.
const (
	plotTrainColor = "#1f77b4"
	plotValColor   = "#ff7f0e"
	plotGridColor  = "#e4e4e4"
)

// Plot axis labels.
const (
	plotXLabel = "step"
	plotYLabel = "loss (nats per token)"
)

// WriteLossSVG draws the training loss (one value per step, step i+1 at
// index i, as a line) and the validation losses (val[j] measured after
// step valSteps[j], as points joined by a line) as an SVG image at path,
// with title, axis labels, ticks and a legend. The y axis spans the finite
// values and is logarithmic when they cover more than a factor of 10 (all
// positive), else linear; NaN and ±Inf losses leave gaps instead of
// flattening the scale.
//
// The file is written through WriteFileAtomic, so a reader never sees half
// a plot. It is an error to pass no training losses, only non-finite ones,
// or valSteps and val of different lengths.
func WriteLossSVG(path, title string, train []float64, valSteps []int, val []float64) error {
	if len(train) == 0 {
		return fmt.Errorf("%s: no training losses to plot", path)
	}
	if len(valSteps) != len(val) {
		return fmt.Errorf("%s: %d validation steps but %d validation losses", path, len(valSteps), len(val))
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, vs := range [][]float64{train, val} {
		for _, v := range vs {
			if finite(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		return fmt.Errorf("%s: every loss is NaN or infinite; nothing to plot", path)
	}
	xmax := len(train)
	for _, s := range valSteps {
		xmax = max(xmax, s)
	}
	svg := plotSVG(title, train, valSteps, val, lo, hi, xmax)
	return format.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, svg)
		return err
	})
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// plotAxes maps data to SVG coordinates inside the margins.
type plotAxes struct {
	x0, y0, x1, y1 float64 // the plot rectangle; y0 is the top
	xmin, xmax     float64
	lo, hi         float64 // y range, of log10 of the loss when log
	log            bool
}

func (a *plotAxes) px(step float64) float64 {
	return a.x0 + (step-a.xmin)/(a.xmax-a.xmin)*(a.x1-a.x0)
}

func (a *plotAxes) py(loss float64) float64 {
	if a.log {
		loss = math.Log10(loss)
	}
	return a.y1 - (loss-a.lo)/(a.hi-a.lo)*(a.y1-a.y0)
}

// plotSVG renders the plot; lo and hi are the finite data range and xmax
// the last step.
func plotSVG(title string, train []float64, valSteps []int, val []float64, lo, hi float64, xmax int) string {
	a := &plotAxes{
		x0: plotLeft, y0: plotTop, x1: plotWidth - plotRight, y1: plotHeight - plotBottom,
		xmin: 0, xmax: float64(max(xmax, 1)),
		log: lo > 0 && hi/lo > 10,
	}
	var yticks []float64
	if a.log {
		a.lo, a.hi = math.Log10(lo), math.Log10(hi)
		pad := 0.04 * (a.hi - a.lo)
		a.lo, a.hi = a.lo-pad, a.hi+pad
		yticks = logTicks(math.Pow(10, a.lo), math.Pow(10, a.hi))
	} else {
		// A flat curve still needs a non-empty range; 5% headroom keeps
		// the extremes off the frame.
		span := hi - lo
		if span == 0 {
			span = max(math.Abs(hi)*0.1, 1)
		}
		a.lo, a.hi = lo-0.05*span, hi+0.05*span
		yticks = niceTicks(a.lo, a.hi, 6)
	}
	xticks := niceTicks(0, a.xmax, 8)

	var b strings.Builder
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotWidth, plotHeight, plotWidth, plotHeight)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotWidth, plotHeight)
	fmt.Fprintf(&b, `<text class="title" x="%s" y="26" text-anchor="middle" font-size="16">%s</text>`+"\n", f((a.x0+a.x1)/2), html.EscapeString(title))

	// Grid and ticks.
	b.WriteString(`<g class="xticks" text-anchor="middle">` + "\n")
	for _, t := range xticks {
		x := f(a.px(t))
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`, x, f(a.y0), x, f(a.y1), plotGridColor)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black"/>`, x, f(a.y1), x, f(a.y1+5))
		fmt.Fprintf(&b, `<text x="%s" y="%s">%s</text>`+"\n", x, f(a.y1+19), tickLabel(t))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g class="yticks" text-anchor="end">` + "\n")
	for _, t := range yticks {
		y := f(a.py(t))
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`, f(a.x0), y, f(a.x1), y, plotGridColor)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black"/>`, f(a.x0-5), y, f(a.x0), y)
		fmt.Fprintf(&b, `<text x="%s" y="%s" dy="0.35em">%s</text>`+"\n", f(a.x0-8), y, tickLabel(t))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="black"/>`+"\n", f(a.x0), f(a.y0), f(a.x1-a.x0), f(a.y1-a.y0))

	// Axis labels.
	fmt.Fprintf(&b, `<text class="xlabel" x="%s" y="%d" text-anchor="middle" font-size="13">%s</text>`+"\n", f((a.x0+a.x1)/2), plotHeight-14, plotXLabel)
	ylabel := plotYLabel
	if a.log {
		ylabel = strings.TrimSuffix(ylabel, ")") + ", log scale)"
	}
	cy := (a.y0 + a.y1) / 2
	fmt.Fprintf(&b, `<text class="ylabel" x="18" y="%s" text-anchor="middle" font-size="13" transform="rotate(-90 18 %s)">%s</text>`+"\n", f(cy), f(cy), ylabel)

	// The data, clipped to the plot rectangle.
	fmt.Fprintf(&b, `<clipPath id="plot"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>`+"\n", f(a.x0), f(a.y0), f(a.x1-a.x0), f(a.y1-a.y0))
	fmt.Fprintf(&b, `<g class="training" clip-path="url(#plot)" fill="none" stroke="%s" stroke-width="1.5">`+"\n", plotTrainColor)
	// One polyline per run of finite losses; an isolated point is a dot.
	run := []string{}
	flush := func() {
		switch len(run) {
		case 0:
		case 1:
			xy := strings.Split(run[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2" fill="%s" stroke="none"/>`+"\n", xy[0], xy[1], plotTrainColor)
		default:
			fmt.Fprintf(&b, `<polyline points="%s"/>`+"\n", strings.Join(run, " "))
		}
		run = run[:0]
	}
	for i, v := range train {
		if !finite(v) {
			flush()
			continue
		}
		run = append(run, f(a.px(float64(i+1)))+","+f(a.py(v)))
	}
	flush()
	b.WriteString("</g>\n")
	nval := 0
	if len(val) > 0 {
		fmt.Fprintf(&b, `<g class="validation" fill="%s" stroke="%s" stroke-width="1.5">`+"\n", plotValColor, plotValColor)
		var pts []string
		for j, v := range val {
			if finite(v) {
				pts = append(pts, f(a.px(float64(valSteps[j])))+","+f(a.py(v)))
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none"/>`+"\n", strings.Join(pts, " "))
		}
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5"/>`+"\n", xy[0], xy[1])
		}
		nval = len(pts)
		b.WriteString("</g>\n")
	}

	// The legend, top right inside the plot.
	lx, ly := a.x1-130, a.y0+10
	rows := 1
	if nval > 0 {
		rows = 2
	}
	fmt.Fprintf(&b, `<g class="legend"><rect x="%s" y="%s" width="120" height="%d" fill="white" fill-opacity="0.85" stroke="#bbbbbb"/>`+"\n", f(lx), f(ly), 8+18*rows)
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/><text x="%s" y="%s" dy="0.35em">training</text>`+"\n",
		f(lx+8), f(ly+13), f(lx+32), f(ly+13), plotTrainColor, f(lx+40), f(ly+13))
	if nval > 0 {
		fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3.5" fill="%s"/><text x="%s" y="%s" dy="0.35em">validation</text>`+"\n",
			f(lx+20), f(ly+31), plotValColor, f(lx+40), f(ly+31))
	}
	b.WriteString("</g>\n</svg>\n")
	return b.String()
}

// niceTicks returns about n ticks at a step of 1, 2 or 5 times a power of
// ten that lie in [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * p
	for _, m := range []float64{1, 2, 5} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	var ticks []float64
	for k := math.Ceil(lo / step); k*step <= hi*(1+1e-12); k++ {
		// Multiplying the index (not adding steps) keeps 0.3 from
		// becoming 0.30000000000000004.
		t := k * step
		if math.Abs(t) < step*1e-9 {
			t = 0
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logTicks returns the ticks of a log axis over [lo, hi] (lo > 0): 1, 2
// and 5 times the powers of ten, or only the powers when the range spans
// many decades.
func logTicks(lo, hi float64) []float64 {
	mults := []float64{1, 2, 5}
	if math.Log10(hi/lo) > 4 {
		mults = []float64{1}
	}
	var ticks []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range mults {
			t := m * math.Pow(10, e)
			if t >= lo && t <= hi {
				ticks = append(ticks, t)
			}
		}
	}
	return ticks
}

// tickLabel prints a tick value briefly: 0.5, 2, 1500, 1e-05.
func tickLabel(v float64) string {
	return strconv.FormatFloat(v, 'g', 4, 64)
}
