package gentest

import (
	"lorac.dev/lorac/runtime/engine"

	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/interp"
)

// TestPrefillThenDecodeMatchesDecode: a prompt prefilled into a slot in
// calls that cross chunk boundaries (the last chunk padded), then
// continued with DecodeRows, gives after every call and step the logits
// that Decode gives the same sequence alone, token by token (within 1e-5
// of the largest logit), on the base and with an adapter. Prefill writes
// exactly the prompt's positions of its own slot (padding writes nothing,
// other slots are untouched), and bad calls are errors.
func TestPrefillThenDecodeMatchesDecode(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			_, c := p.new()
			if !c.HasPrefill() || c.Spec.Prefill < 2 || c.Spec.Prefill*3 > c.Spec.Context {
				t.Fatalf("want a prefill graph of a chunk that a prompt can cross (chunk %d, context %d)", c.Spec.Prefill, c.Spec.Context)
			}
			c.InitBase(31)
			c.InitAdapter(41)
			adapter := slices.Clone(c.LoRA)
			R, V, ctx, T := c.Spec.Rows, c.Spec.Vocab, c.Spec.Context, c.Spec.Prefill
			perPos := c.Spec.KVRowsSize / (R * ctx) // cache elements a position of a slot
			rng := rand.New(rand.NewPCG(3, 4))
			for _, tc := range []struct {
				slot    int
				adapter []float32
				calls   []int // prompt tokens per PrefillRows call
			}{
				{1, adapter, []int{T + 1, 2*T - 1}}, // 3T tokens in 4 chunks, the calls crossing chunks
				{R - 1, nil, []int{T / 2, 1, T + T/2}},
				{0, adapter, []int{2*T + 1}},
			} {
				n := 0
				for _, k := range tc.calls {
					n += k
				}
				seq := make([]int32, ctx)
				for i := range seq {
					seq[i] = int32(rng.IntN(V))
				}
				m, ref := p.new()
				copy(ref.Base, c.Base)
				if tc.adapter == nil {
					ref.Detach()
				} else {
					copy(ref.LoRA, tc.adapter)
				}
				alone := make([][]float32, ctx)
				for i, tok := range seq {
					l, err := m.Decode(tok, i)
					if err != nil {
						t.Fatal(err)
					}
					alone[i] = slices.Clone(l)
				}

				nan := float32(math.NaN())
				c.KVRows = make([]float32, c.Spec.KVRowsSize)
				for i := range c.KVRows {
					c.KVRows[i] = nan
				}
				start := 0
				for _, k := range tc.calls {
					logits, err := c.PrefillRows(tc.slot, seq[start:start+k], start, mixOf(tc.adapter))
					if err != nil {
						t.Fatal(err)
					}
					start += k
					if e := maxRel(logits, toF64(alone[start-1])); e > 1e-5 {
						t.Fatalf("slot %d: prefill to position %d and Decode alone differ by %g", tc.slot, start-1, e)
					}
				}
				written := 0
				for _, x := range c.KVRows {
					if x == x {
						written++
					}
				}
				if written != n*perPos {
					t.Fatalf("slot %d: prefilling %d positions wrote %d cache elements, want %d", tc.slot, n, written, n*perPos)
				}
				// The other slots decode dummies at position 0 meanwhile;
				// the prefilled slot continues the sequence.
				tokens, pos, ads := make([]int32, R), make([]int32, R), make([][]float32, R)
				for i := n; i < ctx; i++ {
					tokens[tc.slot], pos[tc.slot], ads[tc.slot] = seq[i], int32(i), tc.adapter
					logits, err := c.DecodeRows(tokens, pos, ads)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxRel(logits[tc.slot*V:(tc.slot+1)*V], toF64(alone[i])); e > 1e-5 {
						t.Fatalf("slot %d: decoding position %d after prefill and Decode alone differ by %g", tc.slot, i, e)
					}
				}
			}

			// Bad calls are errors, not panics.
			tok := []int32{1, 2}
			for name, call := range map[string]func() error{
				"a slot past the rows":       func() error { _, err := c.PrefillRows(R, tok, 0, nil); return err },
				"a negative slot":            func() error { _, err := c.PrefillRows(-1, tok, 0, nil); return err },
				"no tokens":                  func() error { _, err := c.PrefillRows(0, nil, 0, nil); return err },
				"a negative start":           func() error { _, err := c.PrefillRows(0, tok, -1, nil); return err },
				"positions past the context": func() error { _, err := c.PrefillRows(0, tok, ctx-1, nil); return err },
				"a token past the vocab":     func() error { _, err := c.PrefillRows(0, []int32{int32(V)}, 0, nil); return err },
				"a short adapter store":      func() error { _, err := c.PrefillRows(0, tok, 0, mixOf(make([]float32, 3))); return err },
			} {
				if err := call(); err == nil {
					t.Errorf("PrefillRows accepted %s", name)
				}
			}
		})
	}
}

// TestPrefillAgainstInterpreter: the generated prefill graph, run through
// PrefillRows in slot 0, agrees with the interpreter running the same graph
// on the reference kernels: the last token's logits of each chunk and every
// cache entry, for a full chunk and a padded one, with an adapter.
func TestPrefillAgainstInterpreter(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			cfg := config(t, p.name)
			_, c := p.new()
			c.InitBase(13)
			c.InitAdapter(14)
			T := c.Spec.Prefill
			pg, err := compile.PrefillGraph(cfg, T)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := compile.RowsGraph(cfg, c.Spec.Rows)
			if err != nil {
				t.Fatal(err)
			}
			// Where each rows cache starts in KVRows: the rows graph's
			// float inputs in order (codegen's layout); slot 0 is the
			// first slot-sized piece of each.
			offsets := map[string]int{}
			off := 0
			for _, v := range rows.Inputs {
				if v.DType != graph.I32 {
					offsets[v.Name] = off
					off += v.Shape.Numel()
				}
			}
			if off != c.Spec.KVRowsSize {
				t.Fatalf("the rows caches total %d elements, the spec says %d", off, c.Spec.KVRowsSize)
			}
			e := env(pg, c, nil)
			e.State = map[string][]float64{}
			for _, v := range pg.Inputs {
				if v.DType != graph.I32 {
					e.State[v.Name] = make([]float64, v.Shape.Numel())
				}
			}
			rp := map[string][]float64{}
			for name, x := range e.Params {
				if strings.Contains(name, ".lora_") {
					rp[name] = x
				}
			}
			for range T {
				e.RowParams = append(e.RowParams, rp)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			V := c.Spec.Vocab
			c.KVRows = make([]float32, c.Spec.KVRowsSize)
			start := 0
			for _, n := range []int{T, T - 1} {
				tokens, pos := make([]int32, T), make([]int32, T)
				for i := range T {
					tokens[i], pos[i] = int32(rng.IntN(V)), int32(start+i-(T-n))
					if i < T-n {
						tokens[i], pos[i] = 0, -1 // padding in front, as PrefillRows pads
					}
				}
				e.Inputs = map[string][]int32{"tokens": tokens, "pos": pos}
				ref, err := interp.Run(pg, e)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.PrefillRows(0, tokens[T-n:], start, mixOf(c.LoRA))
				if err != nil {
					t.Fatal(err)
				}
				want := ref[pg.Outputs[0]]
				if len(want) != V {
					t.Fatalf("the prefill graph has %d logits, want the last token's %d", len(want), V)
				}
				if d := maxRel(got, want); d > 1e-4 {
					t.Errorf("chunk at %d: last logits differ from the interpreter's by %g", start, d)
				}
				start += n
				for _, v := range pg.Inputs {
					if v.DType == graph.I32 {
						continue
					}
					o, ok := offsets[codegen.RowsPrefix+strings.TrimPrefix(v.Name, codegen.SlotPrefix)]
					if !ok {
						t.Fatalf("%s has no rows cache", v.Name)
					}
					if d := maxRel(c.KVRows[o:o+v.Shape.Numel()], e.State[v.Name]); d > 1e-4 {
						t.Errorf("chunk at %d: cache %s differs from the interpreter's by %g", start, v.Name, d)
					}
				}
			}
		})
	}
}

// mixOf is the mix of one adapter store of weight 1, none for nil.
func mixOf(store []float32) []engine.Term {
	if store == nil {
		return nil
	}
	return []engine.Term{{Store: store, Weight: 1}}
}
