package kern

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks of the float32 matmul entry points at the kernel shapes of
// docs/perf.md, with 1 and 2 threads. docs/perf.md names a shape (M tokens, K in,
// N out, r); in the kernels' letters that is (N, K, M, R).
//
//	go test ./runtime/kern -run '^$' -bench 'CPU' -benchtime 3x

// cpuBenchShapes are docs/perf.md's (tokens, in, out, r) shapes used here.
var cpuBenchShapes = [][4]int{
	{2048, 768, 768, 8},
	{2048, 768, 768, 64},
	{2048, 768, 3072, 16},
	{2048, 3072, 768, 16},
	{1024, 4096, 4096, 16},
	{512, 256, 768, 8},
	// bench-tiny's layers at its batch (16 × 128 tokens): attention output,
	// MLP up and down.
	{2048, 256, 256, 8},
	{2048, 256, 1024, 8},
	{2048, 1024, 256, 8},
}

// cpuBenchInputs holds one shape's tensors.
type cpuBenchInputs struct {
	inp, w, bias, a, b, out, t, dout, dinp, da, db []float32
}

func newCPUBenchInputs(N, K, M, R int) *cpuBenchInputs {
	rng := newRand()
	return &cpuBenchInputs{
		inp:  cpuRandn(rng, N*K),
		w:    cpuScaled(rng, M*K, K),
		bias: cpuRandn(rng, M),
		a:    cpuScaled(rng, R*K, K),
		b:    cpuScaled(rng, M*R, R),
		out:  make([]float32, N*M),
		t:    make([]float32, N*R),
		dout: cpuRandn(rng, N*M),
		dinp: make([]float32, N*K),
		da:   make([]float32, R*K),
		db:   make([]float32, M*R),
	}
}

// cpuBench runs body at every shape and thread count and reports GFLOP/s,
// flops(N, K, M, R) being the work of one call.
func cpuBench(b *testing.B, flops func(N, K, M, R int) float64, body func(x *cpuBenchInputs, N, K, M, R int)) {
	for _, s := range cpuBenchShapes {
		N, K, M, R := s[0], s[1], s[2], s[3]
		x := newCPUBenchInputs(N, K, M, R)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d_r%d/%s/threads=%d", N, K, M, R, ISA(), threads), func(b *testing.B) {
				SetThreads(threads)
				defer SetThreads(0)
				for b.Loop() {
					body(x, N, K, M, R)
				}
				b.ReportMetric(flops(N, K, M, R)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// linearFlops is the base product, 2·N·K·M.
func linearFlops(N, K, M, _ int) float64 { return 2 * float64(N) * float64(K) * float64(M) }

// loraFlops adds the branch, 2·N·R·(K+M).
func loraFlops(N, K, M, R int) float64 {
	return linearFlops(N, K, M, R) + 2*float64(N)*float64(R)*float64(K+M)
}

// loraGradFlops counts the backward products with W frozen: dinp = dout·W
// (2·N·M·K), G = dout·B and dB (2·N·M·R each), the recomputed T, dA and G·A
// (2·N·K·R each).
func loraGradFlops(N, K, M, R int) float64 {
	return linearFlops(N, K, M, R) + 2*float64(N)*float64(R)*float64(2*M+3*K)
}

func BenchmarkCPULinear(b *testing.B) {
	cpuBench(b, linearFlops, func(x *cpuBenchInputs, N, K, M, _ int) {
		Linear(x.out, x.inp, x.w, x.bias, N, K, M, false)
	})
}

func BenchmarkCPULoRALinear(b *testing.B) {
	cpuBench(b, loraFlops, func(x *cpuBenchInputs, N, K, M, R int) {
		LoRALinear(x.out, x.t, x.inp, x.w, x.bias, x.a, x.b, nil, N, K, M, R, 2, false)
	})
}

func BenchmarkCPULoRALinearGrad(b *testing.B) {
	cpuBench(b, loraGradFlops, func(x *cpuBenchInputs, N, K, M, R int) {
		LoRALinearGrad(x.da, x.db, x.dinp, x.dout, x.inp, x.w, x.a, x.b, x.t, nil, N, K, M, R, 2, false)
	})
}

// BenchmarkCPULoRALinearRatio alternates Linear and LoRALinear on the same
// inputs (A B A B …, so drift hits both alike) and reports their time ratio
// next to the FLOP ratio 1 + R/K + R/M, the ideal.
func BenchmarkCPULoRALinearRatio(b *testing.B) {
	for _, s := range cpuBenchShapes {
		N, K, M, R := s[0], s[1], s[2], s[3]
		x := newCPUBenchInputs(N, K, M, R)
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d_r%d/%s/threads=%d", N, K, M, R, ISA(), threads), func(b *testing.B) {
				SetThreads(threads)
				defer SetThreads(0)
				var base, lora time.Duration
				for b.Loop() {
					t0 := time.Now()
					Linear(x.out, x.inp, x.w, x.bias, N, K, M, false)
					t1 := time.Now()
					LoRALinear(x.out, x.t, x.inp, x.w, x.bias, x.a, x.b, nil, N, K, M, R, 2, false)
					base += t1.Sub(t0)
					lora += time.Since(t1)
				}
				b.ReportMetric(float64(lora)/float64(base), "lora/base")
				b.ReportMetric(loraFlops(N, K, M, R)/linearFlops(N, K, M, R), "flop-ratio")
			})
		}
	}
}

// BenchmarkCPUAttention runs causal attention forward and backward at the
// bench-tiny shape (B 16, T 128, NH 4, HS 64), a GQA one (NH 16, KVH 4), and
// a long sequence (T 1024) without and with a sliding window of 128
// (Mistral's attention, whose blocks skip the keys before the window). The
// GFLOP/s count the whole causal triangle either way, so the windowed case
// reads as the speed-up.
func BenchmarkCPUAttention(b *testing.B) {
	for _, s := range [][6]int{{16, 128, 4, 4, 64, 0}, {4, 256, 16, 4, 64, 0}, {1, 1024, 8, 8, 64, 0}, {1, 1024, 8, 8, 64, 128}} {
		B, T, NH, KVH, HS, W := s[0], s[1], s[2], s[3], s[4], s[5]
		rng := newRand()
		q, dq, dout := cpuRandn(rng, B*T*NH*HS), make([]float32, B*T*NH*HS), cpuRandn(rng, B*T*NH*HS)
		k, v := cpuRandn(rng, B*T*KVH*HS), cpuRandn(rng, B*T*KVH*HS)
		dk, dv := make([]float32, len(k)), make([]float32, len(v))
		// QKᵀ and PV over the causal half: 2·T²·HS flops per head and sequence.
		flops := 2 * float64(B*NH) * float64(T*T) * float64(HS)
		name := fmt.Sprintf("B%d_T%d_NH%d_KVH%d_HS%d_W%d", B, T, NH, KVH, HS, W)
		b.Run(name+"/forward", func(b *testing.B) {
			for b.Loop() {
				Attention(dq, q, k, v, B, T, NH, KVH, HS, W, 0, 0)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(name+"/backward", func(b *testing.B) {
			for b.Loop() {
				AttentionGrad(dq, dk, dv, dout, q, k, v, B, T, NH, KVH, HS, W, 0, 0)
			}
			// Recomputed scores, dP, dQ, dK and dV: 2.5× the forward.
			b.ReportMetric(2.5*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkFMAPeak reports this core's FMA throughput with the widest
// variant's register-only loop: the ceiling the GEMM figures compare with.
func BenchmarkFMAPeak(b *testing.B) {
	for b.Loop() {
		g, ok := FMAPeak(1, 1<<22)
		if !ok {
			b.Skip("no SIMD kernel variant runs on this CPU")
		}
		b.ReportMetric(g, "GFLOP/s")
	}
}
