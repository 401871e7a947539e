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
// prompts, 64 tokens each) on examples/tiny; benchServe says what it
// compares. serve/bench_large.sh runs the same on GPT-2 small's shapes.
// docs/perf.md reports both.
func BenchmarkServe(b *testing.B) {
	m := model.New()
	m.InitBase(7)
	benchServe(b, m.State(), 8, 64, true)
}

// benchServe measures, on core with random adapters, rows requests decoding
// gen tokens each: with the rows graph and one row at a time, all on the
// base, all on one adapter and on 8 distinct adapters in one batch, and
// (rows graph only) 8 distinct weighted mixes of 2 adapters each; and
// without the batcher, merging each request's adapter into the weights,
// generating, and unmerging (swapping merged weights per request).
//
// Without all, only the rows graph's runs (base, one adapter, distinct
// adapters).
func benchServe(b *testing.B, c *engine.Core, rows, gen int, all bool) {
	const prompt = 16
	ads := make([]*Adapter, rows)
	for i := range ads {
		w := make([]float32, len(c.LoRA))
		engine.InitNormal(w, 0.02, engine.NewRNG(uint64(100+i)))
		ads[i] = &Adapter{Name: fmt.Sprint("a", i), Weights: w}
	}
	p := tok.ByteTokenizer{}.Encode("0123456789abcdef")[:prompt]
	run := func(b *testing.B, pick func(i int, r *Request), perRow bool) {
		s := NewScheduler(c, rows, 0, perRow)
		defer s.Close()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			var wg sync.WaitGroup
			for i := range rows {
				r := &Request{Ctx: context.Background(), Prompt: p, MaxTokens: gen, Seed: uint64(i)}
				pick(i, r)
				ev, err := s.Submit(r)
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
		if perRow && !all {
			break
		}
		name := "rows/"
		if perRow {
			name = "per-row/"
		}
		b.Run(name+"base", func(b *testing.B) { run(b, func(int, *Request) {}, perRow) })
		b.Run(name+"one-adapter", func(b *testing.B) { run(b, func(_ int, r *Request) { r.Adapter = ads[0] }, perRow) })
		b.Run(name+fmt.Sprintf("%d-adapters", rows), func(b *testing.B) { run(b, func(i int, r *Request) { r.Adapter = ads[i] }, perRow) })
	}
	if !all {
		return
	}
	b.Run(fmt.Sprintf("rows/%d-mixes-of-2", rows), func(b *testing.B) {
		run(b, func(i int, r *Request) {
			r.Mix = []Weighted{{ads[i], 0.6}, {ads[(i+1)%rows], 0.4}}
		}, false)
	})
	b.Run("merged-swap", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			for i := range rows {
				copy(c.LoRA, ads[i].Weights)
				c.Attach()
				if err := c.Merge(); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Generate(p, gen, engine.Sampler{}, engine.NewRNG(1)); err != nil {
					b.Fatal(err)
				}
				if err := c.Unmerge(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*rows*gen)/time.Since(start).Seconds(), "tokens/s")
	})
}

// BenchmarkTTFT is the time to first token of one request alone (the
// longest prompt that fits examples/tiny's context, one token to
// generate), with prompts taken through the prefill graph a chunk a step
// and one token a step through the rows graph; benchTTFT says more.
func BenchmarkTTFT(b *testing.B) {
	m := model.New()
	m.InitBase(7)
	benchTTFT(b, m.State(), m.Spec.Context-1)
}

// benchTTFT measures the time from Submit to the first token of a request
// with a prompt of n tokens and an adapter, alone in the scheduler:
// "prefill" takes the prompt a chunk a step (Core.PrefillRows),
// "token-steps" one token a step through DecodeRows, as before the
// prefill graph. It reports milliseconds per first token.
func benchTTFT(b *testing.B, c *engine.Core, n int) {
	w := make([]float32, len(c.LoRA))
	engine.InitNormal(w, 0.02, engine.NewRNG(100))
	ad := &Adapter{Name: "a", Weights: w}
	prompt := make([]int32, n)
	for i := range prompt {
		prompt[i] = int32((i * 7919) % c.Spec.Vocab)
	}
	for _, mode := range []string{"prefill", "token-steps"} {
		b.Run(fmt.Sprintf("%s/prompt=%d", mode, n), func(b *testing.B) {
			s := NewScheduler(c, 8, 0, false)
			defer s.Close()
			s.noPrefill = mode == "token-steps"
			var total time.Duration
			for i := range b.N + 1 {
				p := prompt
				if i == 0 {
					p = prompt[:1] // allocates the group's caches, untimed
				}
				start := time.Now()
				ev, err := s.Submit(&Request{Ctx: context.Background(), Prompt: p, MaxTokens: 1, Adapter: ad})
				if err != nil {
					b.Fatal(err)
				}
				first := true
				for e := range ev {
					if first && i > 0 {
						total += time.Since(start)
						first = false
					}
					if e.Done {
						if e.Err != nil {
							b.Fatal(e.Err)
						}
						break
					}
				}
			}
			b.ReportMetric(total.Seconds()*1000/float64(b.N), "ms/ttft")
		})
	}
}
