package gentest

import (
	"math/rand/v2"
	"slices"
	"testing"
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
