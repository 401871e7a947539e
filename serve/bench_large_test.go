//go:build servebench

package serve

import (
	"testing"

	"lorac.dev/lorac/serve/benchmodel"
)

// BenchmarkServeGPT2Small is BenchmarkServe on GPT-2 small's shapes
// (examples/bench-gpt2s: vocab 50257, dim 768, 12 layers, LoRA r16 on
// c_attn), random weights, 32 tokens a request. serve/bench_large.sh
// compiles the model into serve/benchmodel and runs it.
func BenchmarkServeGPT2Small(b *testing.B) {
	m := benchmodel.New()
	m.InitBase(7)
	benchServe(b, m.State(), 32)
}

// BenchmarkTTFTGPT2Small is BenchmarkTTFT on GPT-2 small's shapes: a
// 256-token prompt with an adapter (serve/bench_large.sh TTFT runs it).
func BenchmarkTTFTGPT2Small(b *testing.B) {
	m := benchmodel.New()
	m.InitBase(7)
	benchTTFT(b, m.State(), 256)
}
