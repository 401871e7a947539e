package serve

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"lorac.dev/lorac/examples/tiny/model"
	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// BenchmarkServe is the throughput of one batch of 8 requests (16-token
// prompts, 64 tokens each) on examples/tiny: all on the base, all on one
// adapter, on 8 distinct adapters in one batch, and without the batcher,
// merging each request's adapter into the weights and unmerging it after
// (swapping merged weights per request). docs/perf.md reports it.
func BenchmarkServe(b *testing.B) {
	const rows, prompt, gen = 8, 16, 64
	m := model.New()
	m.InitBase(7)
	ads := make([]*Adapter, rows)
	for i := range ads {
		w := make([]float32, len(m.LoRA))
		engine.InitNormal(w, 0.2, engine.NewRNG(uint64(100+i)))
		ads[i] = &Adapter{Name: fmt.Sprint("a", i), Weights: w}
	}
	p := tok.ByteTokenizer{}.Encode("0123456789abcdef")[:prompt]
	run := func(b *testing.B, pick func(i int) *Adapter, perRow bool) {
		s := NewScheduler(m.State(), rows, 0, perRow)
		defer s.Close()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			var wg sync.WaitGroup
			for i := range rows {
				ev, err := s.Submit(&Request{Ctx: context.Background(), Prompt: p, MaxTokens: gen, Adapter: pick(i), Seed: uint64(i)})
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					for e := range ev {
						if e.Done {
							return
						}
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.N*rows*gen)/time.Since(start).Seconds(), "tokens/s")
	}
	for _, perRow := range []bool{false, true} {
		name := "rows/"
		if perRow {
			name = "per-row/"
		}
		b.Run(name+"base", func(b *testing.B) { run(b, func(int) *Adapter { return nil }, perRow) })
		b.Run(name+"one-adapter", func(b *testing.B) { run(b, func(int) *Adapter { return ads[0] }, perRow) })
		b.Run(name+"8-adapters", func(b *testing.B) { run(b, func(i int) *Adapter { return ads[i] }, perRow) })
	}
	b.Run("merged-swap", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			for i := range rows {
				copy(m.LoRA, ads[i].Weights)
				m.Attach()
				if err := m.Merge(); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Generate(p, gen, engine.Sampler{}, engine.NewRNG(1)); err != nil {
					b.Fatal(err)
				}
				if err := m.Unmerge(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*rows*gen)/time.Since(start).Seconds(), "tokens/s")
	})
}
