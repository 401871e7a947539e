package passes_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/passes"
)

const bb, tt = 2, 3 // B and T of the per-op graphs

// opCase builds a graph around one op: trainable parameters feed it, and its
// output (shape [B, T, V]) feeds a cross-entropy loss.
type opCase struct {
	op    graph.Op
	name  string
	build func(g *graph.Graph, p func(frozen bool, shape ...int) *graph.Value, ids func(limit int) *graph.Value) *graph.Value
}

func node(g *graph.Graph, op graph.Op, attr graph.Attrs, in ...*graph.Value) *graph.Value {
	return g.Append(op, attr, in...)
}

var opCases = []opCase{
	{graph.OpEmbedding, "embedding", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpEmbedding, graph.Attrs{}, ids(5), p(false, 5, 4))
	}},
	{graph.OpLinear, "linear", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpLinear, graph.Attrs{}, p(false, bb, tt, 4), p(false, 5, 4), p(false, 5))
	}},
	{graph.OpLinear, "linear_conv1d_frozen_weight", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpLinear, graph.Attrs{Conv1D: true}, p(false, bb, tt, 4), p(true, 4, 5))
	}},
	{graph.OpLayerNorm, "layernorm", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpLayerNorm, graph.Attrs{Eps: 1e-5}, p(false, bb, tt, 6), p(false, 6), p(false, 6))
	}},
	{graph.OpRMSNorm, "rmsnorm", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpRMSNorm, graph.Attrs{Eps: 1e-6}, p(false, bb, tt, 6), p(false, 6))
	}},
	{graph.OpRoPE, "rope", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpRoPE, graph.Attrs{Heads: 2, Theta: 10000}, p(false, bb, tt, 8), ids(7))
	}},
	{graph.OpAttention, "attention_gqa", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpAttention, graph.Attrs{Heads: 2, KVHeads: 1}, p(false, bb, tt, 8), p(false, bb, tt, 4), p(false, bb, tt, 4))
	}},
	{graph.OpRMSNorm, "rmsnorm_offset", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpRMSNorm, graph.Attrs{Eps: 1e-6, Offset: 1}, p(false, bb, tt, 6), p(false, 6))
	}},
	{graph.OpSoftcap, "softcap", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpSoftcap, graph.Attrs{Softcap: 1.5}, p(false, bb, tt, 5))
	}},
	{graph.OpAttention, "attention_softcap", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpAttention, graph.Attrs{Heads: 2, KVHeads: 1, Window: 2, AttnScale: 0.3, Softcap: 1.2}, p(false, bb, tt, 8), p(false, bb, tt, 4), p(false, bb, tt, 4))
	}},
	{graph.OpScale, "scale", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpScale, graph.Attrs{Scale: 2.5}, p(false, bb, tt, 5))
	}},
	{graph.OpRMSNorm, "rmsnorm_per_head", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpRMSNorm, graph.Attrs{Eps: 1e-6, Heads: 2}, p(false, bb, tt, 6), p(false, 3))
	}},
	{graph.OpRoPE, "rope_llama3", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		r := graph.RoPEScaling{Kind: "llama3", Factor: 8, LowFreq: 1, HighFreq: 4, OrigContext: 16}
		return node(g, graph.OpRoPE, graph.Attrs{Heads: 2, Theta: 10000, Rope: r}, p(false, bb, tt, 8), ids(7))
	}},
	{graph.OpAttention, "attention_window", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpAttention, graph.Attrs{Heads: 2, KVHeads: 1, Window: 2}, p(false, bb, tt, 8), p(false, bb, tt, 4), p(false, bb, tt, 4))
	}},
	{graph.OpGELU, "gelu", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpGELU, graph.Attrs{}, p(false, bb, tt, 5))
	}},
	{graph.OpSiLU, "silu", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpSiLU, graph.Attrs{}, p(false, bb, tt, 5))
	}},
	{graph.OpAdd, "add_same_operand", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		x := p(false, bb, tt, 5)
		return node(g, graph.OpAdd, graph.Attrs{}, node(g, graph.OpAdd, graph.Attrs{}, x, p(false, bb, tt, 5)), x)
	}},
	{graph.OpMul, "mul", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpMul, graph.Attrs{}, p(false, bb, tt, 5), p(false, bb, tt, 5))
	}},
	{graph.OpSoftmax, "softmax", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpSoftmax, graph.Attrs{}, p(false, bb, tt, 5))
	}},
	{graph.OpCrossEntropy, "cross_entropy", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return p(false, bb, tt, 5) // the loss itself is the op under test
	}},
	{graph.OpSplit, "split_unused_part", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		n := g.NewNode(graph.OpSplit, graph.Attrs{Sizes: []int{2, 3, 4}}, 3, p(false, bb, tt, 9))
		g.AppendNode(n)
		return node(g, graph.OpConcat, graph.Attrs{}, n.Out[0], n.Out[2])
	}},
	{graph.OpConcat, "concat", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpConcat, graph.Attrs{}, p(false, bb, tt, 2), p(false, bb, tt, 3))
	}},
	{graph.OpLoRA, "lora_dropout", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpLoRA, graph.Attrs{Scale: 1.5, Dropout: 0.3, Seed: 7}, p(false, bb, tt, 4), p(false, 2, 4), p(false, 5, 2))
	}},
	{graph.OpLoRALinear, "lora_linear", func(g *graph.Graph, p func(bool, ...int) *graph.Value, ids func(int) *graph.Value) *graph.Value {
		return node(g, graph.OpLoRALinear, graph.Attrs{Scale: 2, Dropout: 0.2, Seed: 3, Conv1D: true},
			p(false, bb, tt, 4), p(true, 4, 5), p(false, 2, 4), p(false, 5, 2), p(false, 5))
	}},
}

// buildCase returns a training graph for c with random data for it.
func buildCase(t *testing.T, c opCase, rng *rand.Rand) (*graph.Graph, interp.Env[float64]) {
	g := graph.New(c.name, graph.Train)
	env := interp.Env[float64]{Params: map[string][]float64{}, Inputs: map[string][]int32{}, Step: 1}
	p := func(frozen bool, shape ...int) *graph.Value {
		name := "p" + string(rune('a'+len(g.Params)))
		v := g.AddParam(&graph.Param{Name: name, Shape: shape, Trainable: !frozen})
		data := make([]float64, v.Shape.Numel())
		for i := range data {
			data[i] = rng.NormFloat64() * 0.7
		}
		env.Params[name] = data
		return v
	}
	ids := func(limit int) *graph.Value {
		name := "ids" + string(rune('a'+len(g.Inputs)))
		v := g.AddInput(name, graph.Shape{bb, tt}, graph.I32)
		data := make([]int32, bb*tt)
		for i := range data {
			data[i] = int32(rng.IntN(limit))
		}
		env.Inputs[name] = data
		return v
	}
	logits := c.build(g, p, ids)
	targets := ids(logits.Shape.Last())
	if logits.Shape == nil {
		if err := passes.InferShapes(g, &passes.Config{}); err != nil {
			t.Fatal(err)
		}
		targets.Shape = graph.Shape{bb, tt}
		data := env.Inputs[targets.Name]
		for i := range data {
			data[i] = int32(rng.IntN(logits.Shape.Last()))
		}
	}
	g.Outputs = []*graph.Value{g.Append(graph.OpCrossEntropy, graph.Attrs{}, logits, targets)}
	return g, env
}

// TestGradientRules checks every gradient rule against central finite
// differences of the loss, for every element of every trainable parameter.
func TestGradientRules(t *testing.T) {
	covered := map[graph.Op]bool{}
	for _, c := range opCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.op)))
			g, env := buildCase(t, c, rng)
			cfg := &passes.Config{}
			if err := passes.InferShapes(g, cfg); err != nil {
				t.Fatal(err)
			}
			g.Facts["InferShapes"] = true
			if err := passes.Differentiate(g, cfg); err != nil {
				t.Fatal(err)
			}
			g.Facts["Differentiate"] = true
			if err := g.Verify(); err != nil {
				t.Fatal(err)
			}
			vals, err := interp.Run(g, env)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range g.Params {
				if !v.Param.Trainable {
					if g.GradOf(v.Param) != nil {
						t.Errorf("frozen %s has a gradient", v.Param.Name)
					}
					continue
				}
				grad := vals[g.GradOf(v.Param)]
				data := env.Params[v.Param.Name]
				for i := range data {
					num, err := interp.NumericGrad(g, env, v.Param.Name, i, 1e-5)
					if err != nil {
						t.Fatal(err)
					}
					if d := math.Abs(num - grad[i]); d > 1e-7+1e-5*math.Abs(num) {
						t.Fatalf("d loss / d %s[%d] = %g analytically, %g numerically", v.Param.Name, i, grad[i], num)
					}
				}
			}
		})
		covered[c.op] = true
	}
	for op, rule := range passes.Rules {
		if rule != nil && !covered[op] && op != graph.OpFill && op != graph.OpLoRAMerge && op != graph.OpAttentionDecode && op != graph.OpLoRALinearRows && op != graph.OpLastToken {
			t.Errorf("gradient rule of %s has no finite-difference case", op)
		}
	}
}

// TestEveryForwardOpHasARule keeps the gradient table complete.
func TestEveryForwardOpHasARule(t *testing.T) {
	for _, op := range graph.Ops() {
		_, has := passes.Rules[op]
		if op.Info().Backward && has {
			t.Errorf("backward op %s has a gradient rule; lorac does not differentiate twice", op)
		}
		if !op.Info().Backward && !has {
			t.Errorf("forward op %s has no gradient rule", op)
		}
	}
}

// TestFrozenWeightGetsNoWeightGradient: the point of LoRA.
func TestFrozenWeightGetsNoWeightGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	g, _ := buildCase(t, opCases[2], rng) // linear with a frozen conv1d weight
	cfg := &passes.Config{}
	if err := passes.InferShapes(g, cfg); err != nil {
		t.Fatal(err)
	}
	if err := passes.Differentiate(g, cfg); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if n.Op == graph.OpLinearGradWeight {
			t.Errorf("node %s computes a weight gradient for a frozen weight", n)
		}
	}
	if len(g.Grads) != 1 || g.Grads[0].GradOf.Name != "pa" {
		t.Errorf("gradients %v, want only the input's", g.Grads)
	}
}

func TestDifferentiateRejectsMergedGraphs(t *testing.T) {
	g := graph.New("merged", graph.Train)
	x := g.AddParam(&graph.Param{Name: "x", Shape: graph.Shape{1, 2, 3}, Trainable: true})
	w := g.AddParam(&graph.Param{Name: "w", Shape: graph.Shape{4, 3}})
	a := g.AddParam(&graph.Param{Name: "a", Shape: graph.Shape{1, 3}, Trainable: true})
	b := g.AddParam(&graph.Param{Name: "b", Shape: graph.Shape{4, 1}, Trainable: true})
	m := g.Append(graph.OpLoRAMerge, graph.Attrs{Scale: 1}, w, a, b)
	y := g.Append(graph.OpLinear, graph.Attrs{}, x, m)
	tg := g.AddInput("t", graph.Shape{1, 2}, graph.I32)
	g.Outputs = []*graph.Value{g.Append(graph.OpCrossEntropy, graph.Attrs{}, y, tg)}
	cfg := &passes.Config{}
	if err := passes.InferShapes(g, cfg); err != nil {
		t.Fatal(err)
	}
	if err := passes.Differentiate(g, cfg); err == nil {
		t.Fatal("Differentiate accepted a merged adapter")
	}
}
