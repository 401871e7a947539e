package graph

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// small builds y = linear(layernorm(x)) → cross-entropy, shaped.
func small(t *testing.T) *Graph {
	g := New("small", Train)
	x := g.AddParam(&Param{Name: "x", Shape: Shape{2, 3, 4}})
	gain := g.AddParam(&Param{Name: "ln.weight", Shape: Shape{4}, Init: InitOnes})
	bias := g.AddParam(&Param{Name: "ln.bias", Shape: Shape{4}})
	w := g.AddParam(&Param{Name: "head.weight", Shape: Shape{5, 4}, Trainable: true})
	tg := g.AddInput("targets", Shape{2, 3}, I32)
	h := g.Append(OpLayerNorm, Attrs{Eps: 1e-5}, x, gain, bias)
	y := g.Append(OpLinear, Attrs{}, h, w)
	y.Name = "logits"
	g.Outputs = []*Value{g.Append(OpCrossEntropy, Attrs{}, y, tg)}
	for _, n := range g.Nodes {
		if err := g.Infer(n); err != nil {
			t.Fatal(err)
		}
	}
	g.Facts["InferShapes"] = true
	return g
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestTextAndDOT(t *testing.T) {
	g := small(t)
	if err := g.Verify(); err != nil {
		t.Fatal(err)
	}
	var text, dot bytes.Buffer
	if err := g.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteDOT(&dot); err != nil {
		t.Fatal(err)
	}
	golden(t, "small.txt", text.Bytes())
	golden(t, "small.dot", dot.Bytes())
}

// TestVerifyCatches breaks one invariant at a time.
func TestVerifyCatches(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(g *Graph)
		want   string
	}{
		{"use before definition", func(g *Graph) { g.Nodes[0], g.Nodes[1] = g.Nodes[1], g.Nodes[0] }, "used before it is defined"},
		{"wrong arity", func(g *Graph) { g.Nodes[1].In = g.Nodes[1].In[:1] }, "inputs, want"},
		{"wrong shape", func(g *Graph) { g.Nodes[1].Out[0].Shape = Shape{2, 3, 6} }, "want [2, 3, 5]"},
		{"frozen gradient", func(g *Graph) {
			d := g.Append(OpFill, Attrs{Shape: Shape{4}}, nil...)
			d.Shape, d.DType = Shape{4}, F32
			d.GradOf = g.Params[1].Param
			g.Grads = append(g.Grads, d)
		}, "frozen parameter ln.weight has a gradient"},
		{"backward op in inference", func(g *Graph) {
			g.Mode = Infer
			n := g.NewNode(OpGELUGrad, Attrs{}, 1, g.Params[0], g.Params[0])
			g.Infer(n)
			g.AppendNode(n)
		}, "backward op gelu_grad in an inference graph"},
		{"duplicate parameter", func(g *Graph) { g.AddParam(&Param{Name: "x", Shape: Shape{1}}) }, "declared twice"},
		{"missing gradient", func(g *Graph) { g.Facts["Differentiate"] = true }, "trainable parameter head.weight has no gradient"},
		{"weight gradient of a frozen weight", func(g *Graph) {
			n := g.NewNode(OpLinearGradWeight, Attrs{}, 1, g.Nodes[1].Out[0], g.Nodes[0].Out[0])
			g.Infer(n)
			g.AppendNode(n)
			g.Facts["Differentiate"] = true
		}, "computes a weight gradient nobody trains"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := small(t)
			c.mutate(g)
			err := g.Verify()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Verify = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestInferRejects: shape rules report mistakes instead of panicking.
func TestInferRejects(t *testing.T) {
	g := New("bad", Infer)
	x := g.AddParam(&Param{Name: "x", Shape: Shape{2, 3, 4}})
	w := g.AddParam(&Param{Name: "w", Shape: Shape{5, 6}})
	q := g.AddParam(&Param{Name: "q", Shape: Shape{2, 3, 8}})
	k := g.AddParam(&Param{Name: "k", Shape: Shape{2, 3, 6}})
	ids := g.AddInput("ids", Shape{2, 3}, I32)
	for _, n := range []*Node{
		g.NewNode(OpLinear, Attrs{}, 1, x, w),
		g.NewNode(OpAttention, Attrs{Heads: 2, KVHeads: 1}, 1, q, k, k),
		g.NewNode(OpAttention, Attrs{Heads: 3, KVHeads: 2}, 1, q, k, k),
		g.NewNode(OpEmbedding, Attrs{}, 1, x, w),
		g.NewNode(OpCrossEntropy, Attrs{}, 1, x, x),
		g.NewNode(OpSplit, Attrs{Sizes: []int{1, 2}}, 2, x),
		g.NewNode(OpRoPE, Attrs{Heads: 3, Theta: 1e4}, 1, q, ids),
		g.NewNode(OpLayerNorm, Attrs{}, 1, x, w, w),
		g.NewNode(OpLoRA, Attrs{}, 1, x, w, w),
	} {
		if err := g.Infer(n); err == nil {
			t.Errorf("Infer accepted %s", n)
		}
	}
}

func TestOpTable(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range Ops() {
		info := op.Info()
		if info.Name == "" || info.Infer == nil {
			t.Errorf("op %d has no name or shape rule", op)
		}
		if seen[info.Name] {
			t.Errorf("op name %s is used twice", info.Name)
		}
		seen[info.Name] = true
		if back, ok := OpByName(info.Name); !ok || back != op {
			t.Errorf("OpByName(%q) = %v", info.Name, back)
		}
	}
}

func TestAdapterScale(t *testing.T) {
	if s := (Adapter{Rank: 16, Alpha: 32}).Scale(); s != 2 {
		t.Errorf("scale = %g, want alpha/r = 2", s)
	}
	if s := (Adapter{Rank: 16, Alpha: 32, RSLoRA: true}).Scale(); s != 8 {
		t.Errorf("rsLoRA scale = %g, want alpha/√r = 8", s)
	}
}

// TestCheckedSizes: sizes from a user's file are multiplied and summed
// without overflow, and a tensor larger than MaxBytes is refused.
func TestCheckedSizes(t *testing.T) {
	big := Shape{1 << 24, 1 << 24, 1 << 24} // 2⁷² elements: Numel wraps
	if _, ok := big.CheckedNumel(); ok {
		t.Errorf("CheckedNumel(%v) did not report the overflow", big)
	}
	if n, ok := (Shape{1 << 20, 1 << 20}).CheckedNumel(); !ok || n != 1<<40 {
		t.Errorf("CheckedNumel = %d, %v", n, ok)
	}
	if _, ok := (Shape{1 << 22, 1 << 24}).CheckedBytes(F32); ok {
		t.Errorf("a 2⁴⁸-byte tensor fits in MaxBytes")
	}
	if _, ok := AddInt64(math.MaxInt64, 1); ok {
		t.Errorf("AddInt64 did not report the overflow")
	}
	if _, ok := MulInt64(1<<32, 1<<31); ok {
		t.Errorf("MulInt64 did not report the overflow")
	}
	g := New("big", Train)
	g.AddInput("tokens", Shape{1 << 24, 1 << 24}, I32)
	x := g.AddParam(&Param{Name: "w", Shape: Shape{1 << 24, 1 << 24}})
	if err := x.CheckSize(); err == nil || !strings.Contains(err.Error(), "128 TiB") {
		t.Errorf("CheckSize = %v", err)
	}
}
