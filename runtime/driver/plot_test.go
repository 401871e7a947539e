package driver

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// svgNode is an element of a parsed SVG document.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []svgNode  `xml:",any"`
}

func (n *svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *svgNode) num(t *testing.T, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return v
}

// find returns every element below n (n included) with the given tag and,
// if class is set, inside an element of that class.
func (n *svgNode) find(tag, class string, inClass bool) []*svgNode {
	var out []*svgNode
	in := inClass || class == "" || n.attr("class") == class
	if n.XMLName.Local == tag && in {
		out = append(out, n)
	}
	for i := range n.Children {
		out = append(out, n.Children[i].find(tag, class, in)...)
	}
	return out
}

// plotParse reads and parses the SVG at path; a malformed file fails.
func plotParse(t *testing.T, path string) *svgNode {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root svgNode
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s is not well-formed XML: %v", path, err)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v, want svg in the SVG namespace", root.XMLName)
	}
	return &root
}

// texts are the texts of the elements of a class.
func texts(root *svgNode, class string) []string {
	var out []string
	for _, n := range root.find("text", class, false) {
		out = append(out, strings.TrimSpace(n.Text))
	}
	return out
}

// points parses a polyline's points.
func points(t *testing.T, n *svgNode) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for _, p := range strings.Fields(n.attr("points")) {
		x, y, ok := strings.Cut(p, ",")
		fx, err1 := strconv.ParseFloat(x, 64)
		fy, err2 := strconv.ParseFloat(y, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("bad point %q", p)
		}
		out = append(out, [2]float64{fx, fy})
	}
	return out
}

func TestWriteLossSVG(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LossPlotFile)
	train := make([]float64, 500)
	for i := range train {
		train[i] = 1 + 4.5*math.Exp(-float64(i)/80) + 0.05*math.Sin(float64(i))
	}
	train[200] = math.NaN() // a gap, not a crash
	valSteps := []int{0, 100, 200, 300, 400, 500}
	val := []float64{5.6, 2.4, 1.6, 1.3, 1.2, 1.15}
	const title = "tiny: loss, training the <LoRA> adapter"
	if err := WriteLossSVG(path, title, train, valSteps, val); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	root := plotParse(t, path)
	if got := texts(root, "title"); len(got) != 1 || got[0] != title {
		t.Errorf("title %q, want %q (escaped in the file, read back whole)", got, title)
	}
	if got := texts(root, "xlabel"); len(got) != 1 || got[0] != "step" {
		t.Errorf("x axis label %q", got)
	}
	// Losses from 1 to 5.6 are less than a decade: a linear axis.
	if got := texts(root, "ylabel"); len(got) != 1 || got[0] != "loss (nats per token)" {
		t.Errorf("y axis label %q", got)
	}
	if got := texts(root, "legend"); strings.Join(got, ",") != "training,validation" {
		t.Errorf("legend %q, want training and validation", got)
	}

	// Ticks: increasing, labelled, and the y ticks inside the data range
	// (padded by 5%).
	ticks := func(class string) []float64 {
		var v []float64
		for _, s := range texts(root, class) {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s label %q is not a number", class, s)
			}
			if len(v) > 0 && f <= v[len(v)-1] {
				t.Errorf("%s labels not increasing: %v then %v", class, v[len(v)-1], f)
			}
			v = append(v, f)
		}
		return v
	}
	xt, yt := ticks("xticks"), ticks("yticks")
	if len(xt) < 4 || xt[0] != 0 || xt[len(xt)-1] > 500 || xt[len(xt)-1] < 400 {
		t.Errorf("x ticks %v, want from 0 to near 500", xt)
	}
	if len(yt) < 3 || yt[0] < 1-0.3 || yt[len(yt)-1] > 5.6+0.3 {
		t.Errorf("y ticks %v, want within the losses 1..5.6", yt)
	}

	// The training curve: two polylines around the NaN, 499 points in all,
	// in the training colour, spanning the plot's width, and falling.
	lines := root.find("polyline", "training", false)
	if len(lines) != 2 {
		t.Fatalf("%d training polylines, want 2 (a gap at the NaN)", len(lines))
	}
	var all [][2]float64
	for _, l := range lines {
		all = append(all, points(t, l)...)
	}
	if len(all) != 499 {
		t.Errorf("%d training points, want 499 finite losses", len(all))
	}
	g := root.find("g", "training", false)
	if len(g) != 1 || g[0].attr("stroke") != plotTrainColor {
		t.Errorf("training group stroke, want %s", plotTrainColor)
	}
	first, last := all[0], all[len(all)-1]
	if first[0] > plotLeft+5 || last[0] < plotWidth-plotRight-5 {
		t.Errorf("training curve spans x %v..%v, want the plot width", first[0], last[0])
	}
	if !(first[1] < last[1]) {
		t.Errorf("a falling loss drawn rising: y %v → %v (SVG y grows downwards)", first[1], last[1])
	}
	for _, p := range all {
		if p[0] < plotLeft || p[0] > plotWidth-plotRight || p[1] < plotTop || p[1] > plotHeight-plotBottom {
			t.Fatalf("point %v outside the plot rectangle", p)
		}
	}
	dots := root.find("circle", "validation", false)
	if len(dots) != len(val) {
		t.Errorf("%d validation points, want %d", len(dots), len(val))
	}
	if vg := root.find("g", "validation", false); len(vg) != 1 || vg[0].attr("fill") != plotValColor {
		t.Errorf("validation group, want fill %s", plotValColor)
	}
	// The first validation point (step 0, loss 5.6, the maximum) is at the
	// left edge and the top of the padded range.
	if x, y := dots[0].num(t, "cx"), dots[0].num(t, "cy"); math.Abs(x-plotLeft) > 0.1 || y > plotTop+0.06*(plotHeight-plotBottom-plotTop) {
		t.Errorf("validation point of step 0, loss 5.6 at (%v, %v)", x, y)
	}

	// A second write replaces the first; a single loss is a dot; no
	// validation, no validation legend.
	if err := WriteLossSVG(path, "one", []float64{3}, nil, nil); err != nil {
		t.Fatalf("single point: %v", err)
	}
	root = plotParse(t, path)
	if n := len(root.find("circle", "training", false)); n != 1 {
		t.Errorf("a single loss draws %d dots, want 1", n)
	}
	if got := texts(root, "legend"); strings.Join(got, ",") != "training" {
		t.Errorf("legend without validation data: %q", got)
	}
}

// TestLossSVGLogScale: losses over more than a decade get a log axis, with
// ticks at 1, 2 and 5 times powers of ten, and equal ratios at equal
// distances.
func TestLossSVGLogScale(t *testing.T) {
	path := filepath.Join(t.TempDir(), LossPlotFile)
	train := []float64{100, 10, 1, 0.1}
	if err := WriteLossSVG(path, "log", train, nil, nil); err != nil {
		t.Fatal(err)
	}
	root := plotParse(t, path)
	if got := texts(root, "ylabel"); len(got) != 1 || got[0] != "loss (nats per token, log scale)" {
		t.Errorf("y axis label %q, want the log scale named", got)
	}
	var yt []string
	for _, s := range texts(root, "yticks") {
		yt = append(yt, s)
	}
	if got := strings.Join(yt, " "); got != "0.1 0.2 0.5 1 2 5 10 20 50 100" {
		t.Errorf("log y ticks %q", got)
	}
	p := points(t, root.find("polyline", "training", false)[0])
	d1, d2, d3 := p[1][1]-p[0][1], p[2][1]-p[1][1], p[3][1]-p[2][1]
	if math.Abs(d1-d2) > 0.2 || math.Abs(d2-d3) > 0.2 || d1 <= 0 {
		t.Errorf("decades drawn %v, %v, %v apart; want equal", d1, d2, d3)
	}
}

func TestWriteLossSVGErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LossPlotFile)
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
		{"no directory", filepath.Join(dir, "missing", LossPlotFile), []float64{1, 2}, nil, nil},
	} {
		err := WriteLossSVG(c.path, "t", c.train, c.valSteps, c.val)
		if err == nil || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.path)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a failed plot left a file")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 500, "0 100 200 300 400 500"},
		{0.95, 5.8, "1 2 3 4 5"},
		{0, 1, "0 0.2 0.4 0.6 0.8 1"},
		{2.31, 2.37, "2.32 2.34 2.36"},
	} {
		var got []string
		for _, v := range niceTicks(c.lo, c.hi, 6) {
			got = append(got, tickLabel(v))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("niceTicks(%v, %v) = %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}
