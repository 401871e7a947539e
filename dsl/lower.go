package dsl

import (
	"fmt"
	"math"
	"strings"

	"lorac.dev/lorac/graph"
)

// LowerOptions choose the graph Lower builds.
type LowerOptions struct {
	Mode graph.Mode
	// Batch and Seq size the run-time inputs. Zero means the train block's
	// batch and seq for a training or evaluation graph, and 1 × context for
	// inference.
	Batch, Seq int
	// Decode builds an inference graph for Seq new tokens per sequence
	// (zero means 1) that reads and extends a KV cache: the inputs
	// "kcache.L" and "vcache.L", [Batch, context, kv width] each, hold keys
	// and values of earlier positions. With Seq > 1 it is a prefill graph:
	// a chunk of a prompt at once, tokens at position −1 being padding,
	// with the logits of the chunk's last token only ([Batch, 1, vocab]).
	Decode bool
}

// Lower builds the forward graph of a checked config with Hugging Face
// parameter names. Every parameter starts frozen; the passes decide what
// trains. The adapters the lora blocks ask for are recorded in
// graph.Adapters for InsertLoRA.
func Lower(cfg *Config, opt LowerOptions) (*graph.Graph, error) {
	m := &cfg.Model
	b, t := opt.Batch, opt.Seq
	if b == 0 {
		b = 1
		if opt.Mode != graph.Infer {
			b = cfg.Train.Batch
		}
	}
	if t == 0 {
		t = m.Context
		if opt.Mode != graph.Infer {
			t = cfg.Train.Seq
		}
	}
	if opt.Decode {
		if opt.Mode != graph.Infer {
			return nil, fmt.Errorf("lower: a decoding graph is an inference graph")
		}
		if opt.Seq == 0 {
			t = 1
		}
	}
	if b <= 0 || t <= 0 || t > m.Context {
		return nil, fmt.Errorf("lower: batch %d × seq %d does not fit context %d", b, t, m.Context)
	}
	l := &lowering{g: graph.New(m.Name, opt.Mode), m: m, decode: opt.Decode}
	if err := l.model(b, t); err != nil {
		return nil, err
	}
	for _, blk := range cfg.LoRA {
		for _, mod := range blk.Modules {
			a := graph.Adapter{Module: mod, Rank: blk.Rank, Alpha: blk.Alpha, RSLoRA: blk.RSLoRA,
				Dropout: blk.Dropout, InitA: graph.InitKaiming, InitB: graph.InitZeros}
			switch blk.Init {
			case "gaussian":
				a.InitA = graph.InitGaussian
			case "random":
				a.InitB = graph.InitSmallNormal
			}
			l.g.Adapters = append(l.g.Adapters, a)
		}
	}
	return l.g, nil
}

type lowering struct {
	g      *graph.Graph
	m      *Model
	decode bool
}

// attention emits causal self-attention, or with decode, one step of it
// against layer i's KV cache.
func (l *lowering) attention(i int, module string, q, k, v, pos *graph.Value) *graph.Value {
	attr := graph.Attrs{Heads: l.m.Heads, KVHeads: l.m.KVHeads, Window: l.m.LayerWindow(i), Softcap: l.m.AttnSoftcap}
	if l.m.AttnScalar > 0 {
		attr.AttnScale = 1 / math.Sqrt(l.m.AttnScalar)
	}
	if !l.decode {
		return l.node(graph.OpAttention, attr, module, q, k, v)
	}
	shape := graph.Shape{pos.Shape[0], l.m.Context, l.m.KVHeads * l.m.HeadSize()}
	kc := l.g.AddInput(fmt.Sprintf("kcache.%d", i), shape, graph.F32)
	vc := l.g.AddInput(fmt.Sprintf("vcache.%d", i), shape, graph.F32)
	return l.node(graph.OpAttentionDecode, attr, module, q, k, v, kc, vc, pos)
}

func (l *lowering) param(name string, init graph.Init, shape ...int) *graph.Value {
	return l.g.AddParam(&graph.Param{Name: name, Role: graph.Base, Shape: shape, Init: init, Module: moduleOf(name)})
}

// moduleOf strips the ".weight" / ".bias" suffix.
func moduleOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return name
}

// linear emits one Hugging Face linear (or GPT-2 Conv1D) module.
func (l *lowering) linear(x *graph.Value, module string, lin Linear) *graph.Value {
	shape := []int{lin.Out, lin.In}
	if lin.Conv1D {
		shape = []int{lin.In, lin.Out}
	}
	in := []*graph.Value{x, l.param(module+".weight", graph.InitDefault, shape...)}
	if l.m.LinearBias(lin.Short) {
		in = append(in, l.param(module+".bias", graph.InitZeros, lin.Out))
	}
	n := l.g.NewNode(graph.OpLinear, graph.Attrs{Conv1D: lin.Conv1D}, 1, in...)
	n.Module = module
	l.g.AppendNode(n)
	return n.Out[0]
}

func (l *lowering) node(op graph.Op, attr graph.Attrs, module string, in ...*graph.Value) *graph.Value {
	n := l.g.NewNode(op, attr, 1, in...)
	n.Module = module
	l.g.AppendNode(n)
	return n.Out[0]
}

func (l *lowering) norm(x *graph.Value, module string) *graph.Value {
	c := l.m.Dim
	gain := l.param(module+".weight", graph.InitOnes, c)
	attr := graph.Attrs{Eps: l.m.NormEps, Offset: l.m.NormOffset}
	if l.m.Arch == "gpt2" {
		bias := l.param(module+".bias", graph.InitZeros, c)
		return l.node(graph.OpLayerNorm, attr, module, x, gain, bias)
	}
	return l.node(graph.OpRMSNorm, attr, module, x, gain)
}

// headNorm is an RMSNorm over each of heads equal parts of x's rows, with
// one gain of a head's size shared by all heads.
func (l *lowering) headNorm(x *graph.Value, module string, heads int) *graph.Value {
	gain := l.param(module+".weight", graph.InitOnes, l.m.HeadSize())
	return l.node(graph.OpRMSNorm, graph.Attrs{Eps: l.m.NormEps, Offset: l.m.NormOffset, Heads: heads}, module, x, gain)
}

func (l *lowering) model(b, t int) error {
	g, m := l.g, l.m
	c, v := m.Dim, m.Vocab
	tokens := g.AddInput("tokens", graph.Shape{b, t}, graph.I32)
	pos := g.AddInput("pos", graph.Shape{b, t}, graph.I32)
	lin := map[string]Linear{}
	for _, x := range m.Linears() {
		lin[x.Short] = x
	}

	var wte, h *graph.Value
	var headName, finalNorm string
	if m.Arch == "gpt2" {
		wte = l.param("transformer.wte.weight", graph.InitDefault, v, c)
		wpe := l.param("transformer.wpe.weight", graph.InitDefault, m.Context, c)
		h = l.node(graph.OpAdd, graph.Attrs{}, "",
			l.node(graph.OpEmbedding, graph.Attrs{}, "transformer.wte", tokens, wte),
			l.node(graph.OpEmbedding, graph.Attrs{}, "transformer.wpe", pos, wpe))
		finalNorm = "transformer.ln_f"
	} else {
		wte = l.param("model.embed_tokens.weight", graph.InitDefault, v, c)
		h = l.node(graph.OpEmbedding, graph.Attrs{}, "model.embed_tokens", tokens, wte)
		if m.EmbedScale {
			// Gemma: transformers multiplies by √hidden_size as a float32.
			s := float64(float32(math.Sqrt(float64(c))))
			h = l.node(graph.OpScale, graph.Attrs{Scale: s}, "model.embed_tokens", h)
		}
		finalNorm = "model.norm"
	}
	headName = "lm_head"

	for i := range m.Layers {
		p := m.BlockPrefix(i)
		if m.Arch == "gpt2" {
			a := l.norm(h, p+"ln_1")
			qkv := l.linear(a, p+lin["qkv"].Suffix, lin["qkv"])
			split := g.NewNode(graph.OpSplit, graph.Attrs{Sizes: []int{c, c, c}}, 3, qkv)
			g.AppendNode(split)
			y := l.attention(i, p+"attn", split.Out[0], split.Out[1], split.Out[2], pos)
			h = l.node(graph.OpAdd, graph.Attrs{}, "", h, l.linear(y, p+lin["o"].Suffix, lin["o"]))
			f := l.norm(h, p+"ln_2")
			u := l.node(graph.OpGELU, graph.Attrs{}, p+"mlp.act", l.linear(f, p+lin["up"].Suffix, lin["up"]))
			h = l.node(graph.OpAdd, graph.Attrs{}, "", h, l.linear(u, p+lin["down"].Suffix, lin["down"]))
			continue
		}
		a := l.norm(h, p+"input_layernorm")
		q := l.linear(a, p+lin["q"].Suffix, lin["q"])
		k := l.linear(a, p+lin["k"].Suffix, lin["k"])
		vv := l.linear(a, p+lin["v"].Suffix, lin["v"])
		if m.QKNorm {
			// Qwen3: an RMSNorm over each head of q and of k, before RoPE.
			q = l.headNorm(q, p+"self_attn.q_norm", m.Heads)
			k = l.headNorm(k, p+"self_attn.k_norm", m.KVHeads)
		}
		theta, rope := m.LayerRoPE(i)
		q = l.node(graph.OpRoPE, graph.Attrs{Heads: m.Heads, Theta: theta, Rope: rope}, p+"self_attn.rotary_emb", q, pos)
		k = l.node(graph.OpRoPE, graph.Attrs{Heads: m.KVHeads, Theta: theta, Rope: rope}, p+"self_attn.rotary_emb", k, pos)
		y := l.attention(i, p+"self_attn", q, k, vv, pos)
		o := l.linear(y, p+lin["o"].Suffix, lin["o"])
		mlpNorm := p + "post_attention_layernorm"
		if m.SandwichNorms {
			// Gemma 2: post_attention_layernorm is on the attention's
			// output; the MLP has norms before and after it.
			o = l.norm(o, p+"post_attention_layernorm")
			mlpNorm = p + "pre_feedforward_layernorm"
		}
		h = l.node(graph.OpAdd, graph.Attrs{}, "", h, o)
		f := l.norm(h, mlpNorm)
		act := graph.OpSiLU
		if m.MLPAct == "gelu" {
			act = graph.OpGELU
		}
		gate := l.node(act, graph.Attrs{}, p+"mlp.act_fn", l.linear(f, p+lin["gate"].Suffix, lin["gate"]))
		up := l.linear(f, p+lin["up"].Suffix, lin["up"])
		prod := l.node(graph.OpMul, graph.Attrs{}, "", gate, up)
		down := l.linear(prod, p+lin["down"].Suffix, lin["down"])
		if m.SandwichNorms {
			down = l.norm(down, p+"post_feedforward_layernorm")
		}
		h = l.node(graph.OpAdd, graph.Attrs{}, "", h, down)
	}
	if l.decode && t > 1 {
		// Prefill: only the chunk's last token's logits are wanted (the
		// runtime places the prompt's last token there).
		h = l.node(graph.OpLastToken, graph.Attrs{}, "", h)
	}
	x := l.norm(h, finalNorm)
	head := wte
	if !m.TieEmbeddings {
		head = l.param(headName+".weight", graph.InitDefault, v, c)
	}
	logits := l.node(graph.OpLinear, graph.Attrs{}, headName, x, head)
	if m.LogitSoftcap > 0 {
		logits = l.node(graph.OpSoftcap, graph.Attrs{Softcap: m.LogitSoftcap}, headName, logits)
	}
	logits.Name = "logits"
	if g.Mode == graph.Infer {
		g.Outputs = []*graph.Value{logits}
		return nil
	}
	targets := g.AddInput("targets", graph.Shape{b, t}, graph.I32)
	loss := l.node(graph.OpCrossEntropy, graph.Attrs{}, "", logits, targets)
	loss.Name = "loss"
	g.Outputs = []*graph.Value{loss}
	return nil
}
