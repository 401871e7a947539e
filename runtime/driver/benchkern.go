package driver

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
)

// linearShape is one distinct linear layer of a model: K in, M out features,
// the rank of an adapter on it (0 for none) and the weight's layout.
type linearShape struct {
	K, M, R int
	conv1d  bool
}

// linearShapes lists the model's distinct linear layers (embeddings
// excluded), with the largest adapter rank found on each shape.
func linearShapes(spec *engine.ModelSpec) []linearShape {
	rank := map[[3]int]int{}
	for _, a := range spec.Adapters {
		conv := 0
		if a.Conv1D {
			conv = 1
		}
		key := [3]int{a.In, a.Out, conv}
		rank[key] = max(rank[key], a.Rank)
	}
	var out []linearShape
	seen := map[[3]int]bool{}
	for _, p := range spec.Base {
		if len(p.Shape) != 2 || !strings.HasSuffix(p.Name, ".weight") ||
			strings.Contains(p.Name, "wte") || strings.Contains(p.Name, "wpe") || strings.Contains(p.Name, "embed_tokens") {
			continue
		}
		// GPT-2 stores its block linears as Conv1D (in, out); every other
		// weight is nn.Linear's (out, in).
		conv := spec.Arch == "gpt2" && strings.Contains(p.Name, ".h.")
		in, out1 := p.Shape[1], p.Shape[0]
		c := 0
		if conv {
			in, out1, c = p.Shape[0], p.Shape[1], 1
		}
		key := [3]int{in, out1, c}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, linearShape{K: in, M: out1, R: rank[key], conv1d: conv})
	}
	return out
}

// benchKernels times the GEMM kernels at the model's own linear shapes and
// N tokens (the training batch): the base product, the fused LoRA forward
// against it (interleaved, so drift hits both), and the LoRA backward with W
// frozen, each in GFLOP/s and as a share of the measured FMA peak.
func benchKernels(w io.Writer, spec *engine.ModelSpec, N int, counts []int, repeats int) {
	fmt.Fprintf(w, "kernels at the model's linear shapes, N = %d tokens; kernels %s; median of %d runs\n", N, kern.ISA(), repeats)
	fmt.Fprintf(w, "%-24s %7s %9s %7s %9s %16s %9s\n", "shape (N×K×M, r)", "threads", "linear", "% peak", "LoRA fwd", "LoRA/linear (≤)", "LoRA bwd")
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	for _, s := range linearShapes(spec) {
		K, M, R := s.K, s.M, max(s.R, 1)
		inp, w1, bias := randn(N*K), randn(K*M), randn(M)
		a, b, dout := randn(R*K), randn(M*R), randn(N*M)
		out, tk, dinp := make([]float32, N*M), make([]float32, N*R), make([]float32, N*K)
		da, db := make([]float32, R*K), make([]float32, M*R)
		base := 2 * float64(N) * float64(K) * float64(M)
		lora := base + 2*float64(N)*float64(R)*float64(K+M)
		grad := base + 2*float64(N)*float64(R)*float64(2*M+3*K)
		for _, t := range counts {
			kern.SetThreads(t)
			peak, ok := kern.FMAPeak(t, 1<<22)
			var lin, fused, bwd []float64
			for range repeats + 1 { // the first round warms up
				t0 := time.Now()
				kern.Linear(out, inp, w1, bias, N, K, M, s.conv1d)
				t1 := time.Now()
				kern.LoRALinear(out, tk, inp, w1, bias, a, b, nil, N, K, M, R, 2, s.conv1d)
				t2 := time.Now()
				kern.LoRALinearGrad(da, db, dinp, dout, inp, w1, a, b, tk, nil, N, K, M, R, 2, s.conv1d)
				t3 := time.Now()
				lin, fused, bwd = append(lin, t1.Sub(t0).Seconds()), append(fused, t2.Sub(t1).Seconds()), append(bwd, t3.Sub(t2).Seconds())
			}
			lin, fused, bwd = lin[1:], fused[1:], bwd[1:]
			ratio := make([]float64, len(lin))
			for i := range lin {
				ratio[i] = fused[i] / lin[i]
			}
			pct := "-"
			if ok {
				pct = fmt.Sprintf("%.0f%%", 100*base/median(lin)/1e9/peak)
			}
			if s.R == 0 {
				// No adapter on this shape: the LoRA columns would time a
				// branch the model does not have.
				fmt.Fprintf(w, "%-24s %7d %9.1f %7s %9s %16s %9s\n", fmt.Sprintf("%d×%d×%d", N, K, M), t,
					base/median(lin)/1e9, pct, "-", "-", "-")
				continue
			}
			fmt.Fprintf(w, "%-24s %7d %9.1f %7s %9.1f %9.3f (%.3f) %9.1f\n", fmt.Sprintf("%d×%d×%d r%d", N, K, M, R), t,
				base/median(lin)/1e9, pct, lora/median(fused)/1e9, median(ratio), lora/base, grad/median(bwd)/1e9)
		}
	}
}

// median returns the middle of x (sorted in place).
func median(x []float64) float64 {
	slices.Sort(x)
	return x[len(x)/2]
}
