package driver

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// plotRead decodes the PNG at path.
func plotRead(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s does not decode: %v", path, err)
	}
	return img
}

// plotCount counts the pixels of colour c, and returns the bounding box of
// them.
func plotCount(img image.Image, c color.RGBA) (n int, box image.Rectangle) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == c {
				n++
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return n, box
}

func TestWriteLossPNG(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loss.png")
	train := make([]float64, 500)
	for i := range train {
		train[i] = 1 + 4.5*math.Exp(-float64(i)/80) + 0.05*math.Sin(float64(i))
	}
	train[200] = math.NaN() // a gap, not a crash
	valSteps := []int{0, 100, 200, 300, 400, 499}
	val := []float64{5.6, 2.4, 1.6, 1.3, 1.2, 1.15}
	if err := WriteLossPNG(path, train, valSteps, val); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	img := plotRead(t, path)
	if b := img.Bounds(); b.Dx() != plotWidth || b.Dy() != plotHeight {
		t.Fatalf("image is %v, want %dx%d", b, plotWidth, plotHeight)
	}
	n, box := plotCount(img, plotTrain)
	// The curve spans the plot: from the left axis to the right edge, and
	// from near the top (the first loss) to near the bottom.
	if n < 500 {
		t.Errorf("%d train-curve pixels, want a curve", n)
	}
	if box.Min.X > plotLeft+2 || box.Max.X < plotWidth-plotRight-3 {
		t.Errorf("train curve spans columns %d..%d, want the plot width", box.Min.X, box.Max.X)
	}
	if box.Min.Y > plotTop+30 || box.Max.Y < plotHeight-plotBottom-30 {
		t.Errorf("train curve spans rows %d..%d, want most of the plot height", box.Min.Y, box.Max.Y)
	}
	if n, _ := plotCount(img, plotVal); n < len(val)*10 {
		t.Errorf("%d validation pixels for %d points", n, len(val))
	}
	if n, _ := plotCount(img, plotText); n == 0 {
		t.Error("no labels drawn")
	}
	if n, _ := plotCount(img, plotGrid); n < 1000 {
		t.Errorf("%d grid pixels", n)
	}

	// A second write replaces the first.
	if err := WriteLossPNG(path, []float64{3}, nil, nil); err != nil {
		t.Fatalf("single point: %v", err)
	}
	if n, _ := plotCount(plotRead(t, path), plotTrain); n == 0 {
		t.Error("a single loss draws nothing")
	}
	if n, _ := plotCount(plotRead(t, path), plotVal); n != 0 {
		t.Error("validation points drawn without validation data")
	}
}

func TestWriteLossPNGErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "loss.png")
	nan := math.NaN()
	for _, c := range []struct {
		name     string
		path     string
		train    []float64
		valSteps []int
		val      []float64
	}{
		{"empty", path, nil, nil, nil},
		{"empty with val", path, []float64{}, []int{1}, []float64{2}},
		{"all NaN", path, []float64{nan, math.Inf(1)}, nil, nil},
		{"val lengths", path, []float64{1, 2}, []int{1}, nil},
		{"no directory", filepath.Join(dir, "missing", "loss.png"), []float64{1, 2}, nil, nil},
	} {
		err := WriteLossPNG(c.path, c.train, c.valSteps, c.val)
		if err == nil || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.path)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed plot left a file")
	}
}

func TestPlotFontCoversFloats(t *testing.T) {
	for _, v := range []float64{0, -1.5, 1234567, 1.5e-7, 3.25e12, 2.718} {
		s := strconv.FormatFloat(v, 'g', 4, 64)
		for k := 0; k < len(s); k++ {
			if _, ok := plotGlyphs[s[k]]; !ok {
				t.Errorf("no glyph for %q in %q", s[k], s)
			}
		}
	}
}
