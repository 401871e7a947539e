package dsl

import (
	"fmt"
	"strconv"

	"github.com/alecthomas/participle/v2/lexer"
	"lorac.dev/lorac/graph"
)

// A factor is one size in a product: its field, its value and, when the
// file sets it, where.
type factor struct {
	key string
	n   int
	pos *lexer.Position
}

// A term is a storage size: 4 bytes (F32) times the product of its factors.
type term struct {
	what    string
	factors []factor
}

// at finds where a block sets a size, if it does.
func at(es map[string]*Entry, key string) *lexer.Position {
	if e, ok := es[key]; ok && len(e.Values) == 1 {
		return &e.Values[0].Pos
	}
	return nil
}

// sizes bounds what the sizes ask for by what a process can allocate: the
// largest tensors (the embedding, an mlp weight, the logits of a training
// step and of a full-context forward pass) and the base weights together
// must each fit in graph.MaxBytes. Every size is capped (maxSize), but their
// products are not; without this check they would overflow int64 or ask for
// exabytes. Sizes are multiplied in float64, which cannot overflow here.
// It runs only on a model whose sizes checked clean.
func (c *checker) sizes(m *Model, t *Train, model, train map[string]*Entry) {
	f := func(es map[string]*Entry, key string, n int) factor { return factor{key, n, at(es, key)} }
	vocab, dim, ffn := f(model, "vocab", m.Vocab), f(model, "dim", m.Dim), f(model, "ffn", m.FFN)
	context, layers := f(model, "context", m.Context), f(model, "layers", m.Layers)
	batch, seq := f(train, "batch", t.Batch), f(train, "seq", t.Seq)
	if seq.pos == nil {
		seq = factor{"context", t.Seq, context.pos} // seq defaults to the context
	}
	for _, tm := range []term{
		{"the token embedding (vocab × dim × 4 B) needs", []factor{vocab, dim}},
		{"each mlp weight (dim × ffn × 4 B) needs", []factor{dim, ffn}},
		{"the q projection (dim × heads × head size × 4 B) needs", []factor{dim, f(model, "heads", m.Heads), f(model, "head_dim", m.HeadSize())}},
		{"the logits of a training step (batch × seq × vocab × 4 B) need", []factor{batch, seq, vocab}},
		{"the logits of a forward pass over the context (context × vocab × 4 B) need", []factor{context, vocab}},
		// Backward reads at least each layer's input and mlp hidden.
		{"a training step's saved activations (layers × batch × seq × (dim + ffn) × 4 B) need", []factor{layers, batch, seq, {"dim + ffn", m.Dim + m.FFN, nil}}},
	} {
		bytes := func(key string, n int) float64 {
			b := 4.0
			for _, f := range tm.factors {
				if f.key == key {
					f.n = n
				}
				b *= float64(f.n)
			}
			return b
		}
		if c.tooBig(tm.what, tm.factors, bytes) {
			return
		}
	}
	// The weights together; ParamCount cannot overflow, as every size is
	// capped and layers more so.
	weights := func(key string, n int) float64 {
		w := *m
		switch key {
		case "vocab":
			w.Vocab = n
		case "dim":
			w.Dim = n
		case "ffn":
			w.FFN = n
		case "layers":
			w.Layers = n
		case "context":
			w.Context = n
		}
		return 4 * float64(w.ParamCount())
	}
	c.tooBig(fmt.Sprintf("the model's %d parameters (4 B each) need", m.ParamCount()), []factor{dim, ffn, vocab, layers, context}, weights)
}

// tooBig reports a size over graph.MaxBytes: bytes(key, n) is the size with
// the factor key set to n ("" for as written). It blames the factor the file
// sets that needs the smallest relative cut to fit, and suggests the largest
// value of it that fits.
func (c *checker) tooBig(what string, factors []factor, bytes func(key string, n int) float64) bool {
	need := bytes("", 0)
	if need <= graph.MaxBytes {
		return false
	}
	var worst *factor
	bestFit, bestRatio := 0, 0.0
	for i, f := range factors {
		if f.pos == nil || bytes(f.key, 1) > graph.MaxBytes {
			continue
		}
		lo, hi := 1, f.n // bytes(key, lo) fits, bytes(key, hi) does not
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if bytes(f.key, mid) <= graph.MaxBytes {
				lo = mid
			} else {
				hi = mid
			}
		}
		if r := float64(lo) / float64(f.n); worst == nil || r > bestRatio {
			worst, bestFit, bestRatio = &factors[i], lo, r
		}
	}
	if worst == nil {
		return false // no one size to point at; the graph's own check reports it
	}
	c.errorf(*worst.pos, "%s %s, more than the 128 TiB a process can address", what, humanBytes(need)).
		hintf("use at most %s %d, or shrink the other sizes", worst.key, bestFit)
	return true
}

// humanBytes formats a byte count for messages: "2.0 EiB".
func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + " " + units[i]
}
