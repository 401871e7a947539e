//go:build servebench

package serve

import (
	"fmt"
	"testing"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/serve/benchmodel"
	"lorac.dev/lorac/serve/benchmodel16"
)

// BenchmarkServeGPT2Small is BenchmarkServe on GPT-2 small's shapes
// (examples/bench-gpt2s: vocab 50257, dim 768, 12 layers, LoRA r16 on
// c_attn), random weights, 32 tokens a request. serve/bench_large.sh
// compiles the model into serve/benchmodel and runs it.
func BenchmarkServeGPT2Small(b *testing.B) {
	m := benchmodel.New()
	m.InitBase(7)
	benchServe(b, m.State(), 8, 32, true)
}

// BenchmarkServeGPT2SmallRows16 is 16 requests on the same model: as two
// groups of its 8-row rows graph, and (benchmodel16: the same .lora with
// serve { rows 16 }) as one group of 16.
func BenchmarkServeGPT2SmallRows16(b *testing.B) {
	for _, m := range []*engine.Core{benchmodel.New().State(), benchmodel16.New().State()} {
		m.InitBase(7)
		b.Run(fmt.Sprintf("rows=%d", m.Spec.Rows), func(b *testing.B) { benchServe(b, m, 16, 32, false) })
	}
}

// BenchmarkTTFTGPT2Small is BenchmarkTTFT on GPT-2 small's shapes: a
// 256-token prompt with an adapter (serve/bench_large.sh TTFT runs it).
func BenchmarkTTFTGPT2Small(b *testing.B) {
	m := benchmodel.New()
	m.InitBase(7)
	benchTTFT(b, m.State(), 256)
}
