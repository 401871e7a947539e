package kern

import (
	"fmt"
	"testing"
)

// BenchmarkLoRALinearRows compares, for 8 rows on 8 different adapters at
// GPT-2 small's shapes (docs/perf.md): the rows kernel (one base product
// over the 8 rows, then each row's branch; and with all 8 rows on one
// adapter, one segment: one branch product over the 8 rows), the same 8
// rows one at a time
// through the fused one-row LoRALinear (each row reads all of W), and the
// base product alone over the 8 rows.
func BenchmarkLoRALinearRows(b *testing.B) {
	const N, R = 8, 16
	for _, sh := range [][2]int{{768, 2304}, {768, 3072}, {3072, 768}} {
		K, M := sh[0], sh[1]
		rng := newRand()
		inp, w, bias := f32(randn(rng, N*K)), f32(randn(rng, K*M)), f32(randn(rng, M))
		a, bb := make([][]float32, N), make([][]float32, N)
		rows, weights := make([]int32, N), make([]float32, N)
		for r := range N {
			a[r], bb[r] = f32(randn(rng, R*K)), f32(randn(rng, M*R))
			rows[r], weights[r] = int32(r), 1
		}
		out := make([]float32, N*M)
		name := fmt.Sprintf("%dx%d", K, M)
		b.Run(name+"/rows", func(b *testing.B) {
			for b.Loop() {
				LoRALinearRows(out, inp, w, bias, a, bb, rows, weights, N, K, M, R, 2, false)
			}
		})
		one, oneB := make([][]float32, N), make([][]float32, N)
		for r := range N {
			one[r], oneB[r] = a[0], bb[0]
		}
		b.Run(name+"/rows-one-adapter", func(b *testing.B) {
			for b.Loop() {
				LoRALinearRows(out, inp, w, bias, one, oneB, rows, weights, N, K, M, R, 2, false)
			}
		})
		b.Run(name+"/one-row-at-a-time", func(b *testing.B) {
			for b.Loop() {
				for r := range N {
					LoRALinear(out[r*M:(r+1)*M], nil, inp[r*K:(r+1)*K], w, bias, a[r], bb[r], nil, 1, K, M, R, 2, false)
				}
			}
		})
		b.Run(name+"/base-only", func(b *testing.B) {
			for b.Loop() {
				Linear(out, inp, w, bias, N, K, M, false)
			}
		})
	}
}
