package driver

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"

	"lorac.dev/lorac/runtime/format"
)

// Loss plot geometry, in pixels. The margins leave room for the value
// labels: nine characters of the built-in font at plotScale.
const (
	plotWidth   = 640
	plotHeight  = 400
	plotLeft    = 80
	plotRight   = 16
	plotTop     = 16
	plotBottom  = 28
	plotScale   = 2 // font pixels per glyph pixel
	plotAdvance = (3 + 1) * plotScale
)

// Loss plot colours: the train curve and validation points use the first
// two matplotlib defaults, which readers of loss curves know at a glance.
var (
	plotBackground = color.RGBA{255, 255, 255, 255}
	plotGrid       = color.RGBA{228, 228, 228, 255}
	plotAxis       = color.RGBA{0, 0, 0, 255}
	plotText       = color.RGBA{60, 60, 60, 255}
	plotTrain      = color.RGBA{31, 119, 180, 255}
	plotVal        = color.RGBA{255, 127, 14, 255}
)

// WriteLossPNG draws the training loss (one value per step, step i at
// index i) and optional validation losses (val[j] measured at step
// valSteps[j]) as a plotWidth×plotHeight PNG at path. The y axis spans the
// finite values; NaN and ±Inf losses leave gaps instead of flattening the
// scale. The smallest and largest losses and the last step are labelled in
// a built-in pixel font, so no font files are needed.
//
// The file is written through WriteFileAtomic, so a reader
// never sees half a PNG. It is an error to pass no training losses, only
// non-finite ones, or valSteps and val of different lengths.
func WriteLossPNG(path string, train []float64, valSteps []int, val []float64) error {
	if len(train) == 0 {
		return fmt.Errorf("%s: no training losses to plot", path)
	}
	if len(valSteps) != len(val) {
		return fmt.Errorf("%s: %d validation steps but %d validation losses", path, len(valSteps), len(val))
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, vs := range [][]float64{train, val} {
		for _, v := range vs {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		return fmt.Errorf("%s: every loss is NaN or infinite; nothing to plot", path)
	}
	xmax := len(train) - 1
	for _, s := range valSteps {
		xmax = max(xmax, s)
	}
	img := plotRender(train, valSteps, val, lo, hi, max(xmax, 1))
	return format.WriteFileAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// plotFrame maps data coordinates to pixels inside the margins.
type plotFrame struct {
	img            *image.RGBA
	x0, y0, x1, y1 int // plot rectangle, inclusive
	xmax           float64
	lo, hi         float64 // y range after padding
}

// px maps a step to a column.
func (a *plotFrame) px(x float64) int {
	return a.x0 + int(math.Round(x/a.xmax*float64(a.x1-a.x0)))
}

// py maps a loss to a row; larger losses are higher up.
func (a *plotFrame) py(y float64) int {
	return a.y1 - int(math.Round((y-a.lo)/(a.hi-a.lo)*float64(a.y1-a.y0)))
}

// set colours one pixel, clipped to the plot rectangle so that curves never
// run over the axes labels.
func (a *plotFrame) set(x, y int, c color.RGBA) {
	if x >= a.x0 && x <= a.x1 && y >= a.y0 && y <= a.y1 {
		a.img.SetRGBA(x, y, c)
	}
}

// line draws a segment by Bresenham's algorithm, two pixels tall, so that
// a one-pixel line still reads as a curve when the image is shown small.
func (a *plotFrame) line(xa, ya, xb, yb int, c color.RGBA) {
	dx, dy := plotAbs(xb-xa), -plotAbs(yb-ya)
	sx, sy := 1, 1
	if xa > xb {
		sx = -1
	}
	if ya > yb {
		sy = -1
	}
	e := dx + dy
	for {
		a.set(xa, ya, c)
		a.set(xa, ya+1, c)
		if xa == xb && ya == yb {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			xa += sx
		} else {
			e += dx
			ya += sy
		}
	}
}

// plotAbs is |x| for ints, which math lacks.
func plotAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// square fills a (2r+1)-pixel square centred on (x, y).
func (a *plotFrame) square(x, y, r int, c color.RGBA) {
	for j := -r; j <= r; j++ {
		for i := -r; i <= r; i++ {
			a.set(x+i, y+j, c)
		}
	}
}

// plotRender draws the plot; lo and hi are the finite data range and xmax
// the last step, at least 1.
func plotRender(train []float64, valSteps []int, val []float64, lo, hi float64, xmax int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHeight))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = plotBackground.R, plotBackground.G, plotBackground.B, plotBackground.A
	}
	// A flat curve still needs a non-empty range; 5% headroom keeps the
	// extremes off the frame.
	span := hi - lo
	if span == 0 {
		span = max(math.Abs(hi)*0.1, 1)
	}
	a := &plotFrame{
		img: img,
		x0:  plotLeft, y0: plotTop,
		x1: plotWidth - 1 - plotRight, y1: plotHeight - 1 - plotBottom,
		xmax: float64(xmax),
		lo:   lo - 0.05*span, hi: hi + 0.05*span,
	}

	const divisions = 5
	for k := 1; k < divisions; k++ {
		gx := a.x0 + k*(a.x1-a.x0)/divisions
		gy := a.y0 + k*(a.y1-a.y0)/divisions
		for y := a.y0; y <= a.y1; y++ {
			img.SetRGBA(gx, y, plotGrid)
		}
		for x := a.x0; x <= a.x1; x++ {
			img.SetRGBA(x, gy, plotGrid)
		}
	}
	for y := a.y0; y <= a.y1; y++ {
		img.SetRGBA(a.x0, y, plotAxis)
	}
	for x := a.x0; x <= a.x1; x++ {
		img.SetRGBA(x, a.y1, plotAxis)
	}

	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	prevOK := false
	var px, py int
	for i, v := range train {
		if !finite(v) {
			prevOK = false
			continue
		}
		x, y := a.px(float64(i)), a.py(v)
		if prevOK {
			a.line(px, py, x, y, plotTrain)
		} else {
			// An isolated point (the first, or one after a gap) would
			// otherwise be a single invisible pixel.
			a.square(x, y, 1, plotTrain)
		}
		px, py, prevOK = x, y, true
	}
	for j, v := range val {
		if finite(v) {
			a.square(a.px(float64(valSteps[j])), a.py(v), 2, plotVal)
		}
	}

	// Labels: the data extremes at their heights left of the axis, and the
	// first and last step under it.
	plotDrawText(img, strconv.FormatFloat(hi, 'g', 4, 64), a.x0-6, a.py(hi), true)
	if lo != hi {
		plotDrawText(img, strconv.FormatFloat(lo, 'g', 4, 64), a.x0-6, a.py(lo), true)
	}
	baseline := a.y1 + 6 + 5*plotScale/2
	plotDrawText(img, "0", a.x0-3*plotScale/2, baseline, false)
	plotDrawText(img, strconv.Itoa(xmax), a.x1, baseline, true)
	return img
}

// plotGlyphs is a 3×5 pixel font for the characters strconv uses to print
// a float: each row is three bits, most significant on the left.
var plotGlyphs = map[byte][5]uint8{
	'0': {7, 5, 5, 5, 7},
	'1': {2, 6, 2, 2, 7},
	'2': {7, 1, 7, 4, 7},
	'3': {7, 1, 7, 1, 7},
	'4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7},
	'6': {7, 4, 7, 5, 7},
	'7': {7, 1, 1, 1, 1},
	'8': {7, 5, 7, 5, 7},
	'9': {7, 5, 7, 1, 7},
	'.': {0, 0, 0, 0, 2},
	'-': {0, 0, 7, 0, 0},
	'+': {0, 2, 7, 2, 0},
	'e': {7, 4, 7, 4, 7},
}

// plotDrawText writes s with its right edge at x (left edge when !right) and
// vertically centred on y. Characters without a glyph are left blank, and
// pixels outside the image are dropped by SetRGBA.
func plotDrawText(img *image.RGBA, s string, x, y int, right bool) {
	if right {
		x -= len(s)*plotAdvance - plotScale
	}
	top := y - 5*plotScale/2
	for k := 0; k < len(s); k++ {
		g, ok := plotGlyphs[s[k]]
		if !ok {
			continue
		}
		for row, bitsRow := range g {
			for col := range 3 {
				if bitsRow&(4>>col) == 0 {
					continue
				}
				for dy := range plotScale {
					for dx := range plotScale {
						img.SetRGBA(x+k*plotAdvance+col*plotScale+dx, top+row*plotScale+dy, plotText)
					}
				}
			}
		}
	}
}
