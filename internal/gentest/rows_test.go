package gentest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"lorac.dev/lorac/runtime/engine"
)

// TestDecodeRowsMatchesDecode: the rows graph (lora_linear_rows: the base
// products once over all rows, each row's branch from its own adapter)
// gives every row the logits that Decode gives the same sequence alone,
// with the same adapter or none, while rows start at different steps and
// idle rows run dummy tokens.
func TestDecodeRowsMatchesDecode(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			_, c := p.new()
			if !c.HasRows() || c.Spec.Rows < 4 {
				t.Fatalf("the package has no rows graph (rows %d)", c.Spec.Rows)
			}
			c.InitBase(31)
			stores := make([][]float32, 3)
			for i := range stores {
				c.InitAdapter(uint64(40 + i))
				stores[i] = slices.Clone(c.LoRA)
			}
			R, V, ctx := c.Spec.Rows, c.Spec.Vocab, c.Spec.Context
			rng := rand.New(rand.NewPCG(7, 7))
			type row struct {
				adapter []float32
				start   int
				seq     []int32
				alone   func(tok int32, pos int) ([]float32, error)
			}
			rows := make([]row, R)
			for r := range rows {
				rows[r].start = r % 3
				if r%4 != 1 {
					rows[r].adapter = stores[r%3]
				}
				rows[r].seq = make([]int32, ctx-rows[r].start)
				for i := range rows[r].seq {
					rows[r].seq[i] = int32(rng.IntN(V))
				}
				m, ref := p.new()
				copy(ref.Base, c.Base)
				if rows[r].adapter == nil {
					ref.Detach()
				} else {
					copy(ref.LoRA, rows[r].adapter)
				}
				rows[r].alone = m.Decode
			}
			tokens, pos, ads := make([]int32, R), make([]int32, R), make([][]float32, R)
			for step := range ctx {
				for r, rw := range rows {
					if i := step - rw.start; i >= 0 {
						tokens[r], pos[r], ads[r] = rw.seq[i], int32(i), rw.adapter
					} else {
						tokens[r], pos[r], ads[r] = 0, 0, nil // idle
					}
				}
				logits, err := c.DecodeRows(tokens, pos, ads)
				if err != nil {
					t.Fatal(err)
				}
				logits = slices.Clone(logits)
				for r, rw := range rows {
					i := step - rw.start
					if i < 0 {
						continue
					}
					want, err := rw.alone(rw.seq[i], i)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxRel(logits[r*V:(r+1)*V], toF64(want)); e > 1e-5 {
						t.Fatalf("step %d row %d (position %d): rows graph and Decode alone differ by %g", step, r, i, e)
					}
				}
			}
			// Bad calls are errors, not panics.
			if _, err := c.DecodeRows(tokens[:1], pos[:1], ads[:1]); err == nil {
				t.Error("DecodeRows accepted one row")
			}
			pos[0] = int32(ctx)
			if _, err := c.DecodeRows(tokens, pos, ads); err == nil {
				t.Error("DecodeRows accepted a position past the context")
			}
			pos[0], ads[0] = 0, make([]float32, 3)
			if _, err := c.DecodeRows(tokens, pos, ads); err == nil {
				t.Error("DecodeRows accepted a short adapter store")
			}
		})
	}
}

// TestDecodeMixMatchesMergedMix: a row's weighted mix of adapters (DecodeMix)
// gives the logits of the base with every adapter's update, times its
// weight, merged in (negative weights and one adapter twice included),
// while the other rows run other mixes; a mix of one adapter of weight 1 is
// that adapter, bit for bit, as DecodeRows runs it.
func TestDecodeMixMatchesMergedMix(t *testing.T) {
	for _, p := range pkgs {
		t.Run(p.name, func(t *testing.T) {
			_, c := p.new()
			c.InitBase(31)
			stores := make([][]float32, 3)
			for i := range stores {
				c.InitAdapter(uint64(40 + i))
				// InitAdapter zeroes B; give it values so the mix matters.
				rng := rand.New(rand.NewPCG(uint64(i), 9))
				for _, a := range c.Spec.Adapters {
					for j := range a.Out * a.Rank {
						c.LoRA[a.BOffset+j] = float32(rng.NormFloat64() * 0.05)
					}
				}
				stores[i] = slices.Clone(c.LoRA)
			}
			R, V, ctx := c.Spec.Rows, c.Spec.Vocab, c.Spec.Context
			mixes := [][]engine.Term{
				{{Store: stores[0], Weight: 0.7}, {Store: stores[1], Weight: 0.3}},
				nil,
				{{Store: stores[2], Weight: -0.5}, {Store: stores[0], Weight: 1.5}, {Store: stores[0], Weight: 0.25}},
				{{Store: stores[1], Weight: 1}},
			}
			for len(mixes) < R {
				mixes = append(mixes, mixes[len(mixes)%4])
			}
			// The reference of a mix: a fresh model whose base has each
			// adapter merged in with its B scaled by the weight.
			alone := make([]func(int32, int) ([]float32, error), R)
			for r, mix := range mixes {
				base := slices.Clone(c.Base)
				for _, term := range mix {
					_, m := p.new()
					copy(m.Base, base)
					copy(m.LoRA, term.Store)
					for _, a := range m.Spec.Adapters {
						for j := range a.Out * a.Rank {
							m.LoRA[a.BOffset+j] *= term.Weight
						}
					}
					if err := m.Merge(); err != nil {
						t.Fatal(err)
					}
					copy(base, m.Base)
				}
				d, ref := p.new()
				copy(ref.Base, base)
				ref.Detach()
				alone[r] = d.Decode
			}
			rng := rand.New(rand.NewPCG(3, 3))
			tokens, pos := make([]int32, R), make([]int32, R)
			for step := range min(ctx, 12) {
				for r := range R {
					tokens[r], pos[r] = int32(rng.IntN(V)), int32(step)
				}
				logits, err := c.DecodeMix(tokens, pos, mixes)
				if err != nil {
					t.Fatal(err)
				}
				logits = slices.Clone(logits)
				for r := range R {
					want, err := alone[r](tokens[r], step)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxRel(logits[r*V:(r+1)*V], toF64(want)); e > 1e-5 {
						t.Fatalf("step %d row %d: the mix and the merged mix differ by %g", step, r, e)
					}
				}
			}
			// A weight-1 mix of one adapter is DecodeRows with that adapter.
			c.KVRows = nil
			one := make([][]engine.Term, R)
			ads := make([][]float32, R)
			for r := range R {
				one[r] = []engine.Term{{Store: stores[r%3], Weight: 1}}
				ads[r] = stores[r%3]
				tokens[r], pos[r] = int32(r), 0
			}
			got, err := c.DecodeMix(tokens, pos, one)
			if err != nil {
				t.Fatal(err)
			}
			got = slices.Clone(got)
			c.KVRows = nil
			want, err := c.DecodeRows(tokens, pos, ads)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Error("a weight-1 mix of one adapter differs from DecodeRows with it")
			}
			one[0] = append(one[0], engine.Term{Store: stores[1], Weight: float32(math.NaN())})
			if _, err := c.DecodeMix(tokens, pos, one); err == nil {
				t.Error("DecodeMix accepted a NaN weight")
			}
		})
	}
}
