package kern

import (
	"math"
	"testing"
)

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// TestLoRALinearRows: each row gets the base product plus the weighted
// branches of its mix, as LoRALinear gives that row with each adapter alone
// (the plain linear for a row without one; a weight-1 branch exactly), for
// both weight layouts; the reference agrees.
func TestLoRALinearRows(t *testing.T) {
	rng := newRand()
	const N, K, M, R = 5, 37, 29, 3
	const scale = float32(1.7)
	for _, conv1d := range []bool{false, true} {
		inp, w, bias := f32(randn(rng, N*K)), f32(randn(rng, K*M)), f32(randn(rng, M))
		type adapter struct{ a, b []float32 }
		ads := make([]adapter, 3)
		for i := range ads {
			ads[i] = adapter{f32(randn(rng, R*K)), f32(randn(rng, M*R))}
		}
		// Row 1 on the base; rows 0, 2 one adapter each (weight 1); row 3 a
		// mix of two; row 4 a mix of three with a negative weight.
		type branch struct {
			row, ad int
			weight  float32
		}
		brs := []branch{{0, 0, 1}, {2, 1, 1}, {3, 0, 0.7}, {3, 2, 0.3}, {4, 1, 0.5}, {4, 2, -1.25}, {4, 0, 2}}
		var a, b [][]float32
		var rows []int32
		var weights []float32
		for _, br := range brs {
			a, b = append(a, ads[br.ad].a), append(b, ads[br.ad].b)
			rows, weights = append(rows, int32(br.row)), append(weights, br.weight)
		}
		out := make([]float32, N*M)
		for i := range out {
			out[i] = float32(math.NaN())
		}
		LoRALinearRows(out, inp, w, bias, a, b, rows, weights, N, K, M, R, scale, conv1d)
		ref := make([]float32, N*M)
		LoRALinearRowsRef(ref, inp, w, bias, a, b, rows, weights, N, K, M, R, scale, conv1d)
		for r := range N {
			x := inp[r*K : (r+1)*K]
			want := make([]float32, M)
			Linear(want, x, w, bias, 1, K, M, conv1d)
			base := append([]float32(nil), want...)
			for _, br := range brs {
				if br.row != r {
					continue
				}
				alone := make([]float32, M)
				LoRALinear(alone, nil, x, w, bias, ads[br.ad].a, ads[br.ad].b, nil, 1, K, M, R, scale, conv1d)
				for m := range M {
					want[m] += br.weight * (alone[m] - base[m])
				}
			}
			for m := range M {
				got := out[r*M+m]
				if d := math.Abs(float64(got - want[m])); !(d <= 1e-4*(1+math.Abs(float64(want[m])))) {
					t.Fatalf("conv1d %v row %d col %d: %g, from LoRALinear alone %g", conv1d, r, m, got, want[m])
				}
				if d := math.Abs(float64(got - ref[r*M+m])); !(d <= 1e-4*(1+math.Abs(float64(ref[r*M+m])))) {
					t.Fatalf("conv1d %v row %d col %d: %g, reference %g", conv1d, r, m, got, ref[r*M+m])
				}
			}
		}
		// A row's result does not depend on the other rows: row 2 alone
		// through LoRALinearRows gives the same bits.
		one := make([]float32, M)
		LoRALinearRows(one, inp[2*K:3*K], w, bias, a[1:2], b[1:2], []int32{0}, []float32{1}, 1, K, M, R, scale, conv1d)
		for m := range M {
			if one[m] != out[2*M+m] {
				t.Fatalf("conv1d %v: row 2 among 5 rows %g, alone %g: a row depends on its batch", conv1d, out[2*M+m], one[m])
			}
		}
	}
}

// TestLoRALinearRowsSegments: branches on consecutive rows with one adapter
// and weight run as one product (a segment); each row still gets the bits
// it gets from its own one-row branch after the base product over all rows,
// so a request's output does not depend on its neighbours' adapters.
func TestLoRALinearRowsSegments(t *testing.T) {
	rng := newRand()
	const K, M, R = 67, 45, 8
	const scale = float32(0.9)
	for _, N := range []int{2, 3, 8, 17, 32} {
		inp, w := f32(randn(rng, N*K)), f32(randn(rng, K*M))
		a1, b1 := f32(randn(rng, R*K)), f32(randn(rng, M*R))
		a2, b2 := f32(randn(rng, R*K)), f32(randn(rng, M*R))
		var a, b [][]float32
		var rows []int32
		var weights []float32
		for r := range N {
			// Mostly one segment on adapter 1, a row on adapter 2 in the
			// middle and one row with another weight.
			switch {
			case r == N/2 && N > 2:
				a, b = append(a, a2), append(b, b2)
				weights = append(weights, 1)
			case r == N-1 && N > 3:
				a, b = append(a, a1), append(b, b1)
				weights = append(weights, 0.5)
			default:
				a, b = append(a, a1), append(b, b1)
				weights = append(weights, 1)
			}
			rows = append(rows, int32(r))
		}
		out := make([]float32, N*M)
		LoRALinearRows(out, inp, w, nil, a, b, rows, weights, N, K, M, R, scale, false)
		want := make([]float32, N*M)
		Linear(want, inp, w, nil, N, K, M, false)
		br := make([]float32, M)
		for r := range N {
			LoRA(br, inp[r*K:(r+1)*K], a[r], b[r], nil, 1, K, M, R, scale*weights[r])
			Add(want[r*M:(r+1)*M], want[r*M:(r+1)*M], br, M)
		}
		for i := range want {
			if want[i] != out[i] {
				t.Fatalf("N %d row %d col %d: %g in a segment, %g with its own branch", N, i/M, i%M, out[i], want[i])
			}
		}
	}
}
