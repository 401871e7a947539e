package kern

import (
	"fmt"
	"testing"
)

// Finite-difference checks of every backward kernel, in float64: for a random
// projection r of the output, the backward kernel run with dout = r must give
// the gradient of Σ r⊙forward(x) for every input and weight element.

func TestEmbeddingBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ N, V, C int }{{1, 1, 1}, {17, 7, 5}, {7, 33, 3}} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			N, V, C := sz.N, sz.V, sz.C
			ids := randIDs(rng, N, V)
			table := randn(rng, V*C)
			r := randn(rng, N*C)
			dtable := nans[float64](V * C)
			EmbeddingGradRef(dtable, r, ids, N, V, C)
			checkGrad(t, "dtable", table, dtable, func() float64 {
				out := nans[float64](N * C)
				EmbeddingRef(out, ids, table, N, C)
				return proj(r, out)
			})
		})
	}
}

func TestLinearBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, conv1d := range []bool{false, true} {
		for _, sz := range []struct{ N, K, M int }{{1, 1, 1}, {7, 17, 5}, {3, 7, 33}, {17, 1, 7}} {
			t.Run(fmt.Sprint(sz, conv1d), func(t *testing.T) {
				N, K, M := sz.N, sz.K, sz.M
				inp, w, bias := randn(rng, N*K), randn(rng, K*M), randn(rng, M)
				r := randn(rng, N*M)
				loss := func() float64 {
					out := nans[float64](N * M)
					LinearRef(out, inp, w, bias, N, K, M, conv1d)
					return proj(r, out)
				}
				dinp, dw, dbias := nans[float64](N*K), nans[float64](K*M), nans[float64](M)
				LinearGradInputRef(dinp, r, w, N, K, M, conv1d)
				LinearGradWeightRef(dw, r, inp, N, K, M, conv1d)
				LinearGradBiasRef(dbias, r, N, M)
				checkGrad(t, "dinp", inp, dinp, loss)
				checkGrad(t, "dw", w, dw, loss)
				checkGrad(t, "dbias", bias, dbias, loss)
			})
		}
	}
}

func TestLayerNormBackwardGrad(t *testing.T) {
	rng := newRand()
	const eps = 1e-5
	for _, sz := range []struct{ N, C int }{{1, 1}, {1, 7}, {7, 17}, {3, 33}} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			N, C := sz.N, sz.C
			inp, gain, bias := randn(rng, N*C), randn(rng, C), randn(rng, C)
			r := randn(rng, N*C)
			loss := func() float64 {
				out := nans[float64](N * C)
				LayerNormRef(out, inp, gain, bias, N, C, eps)
				return proj(r, out)
			}
			dinp, dgain, dbias := nans[float64](N*C), nans[float64](C), nans[float64](C)
			LayerNormGradRef(dinp, r, inp, gain, N, C, eps)
			LayerNormGradParamsRef(dgain, dbias, r, inp, N, C, eps)
			checkGrad(t, "dinp", inp, dinp, loss)
			checkGrad(t, "dgain", gain, dgain, loss)
			checkGrad(t, "dbias", bias, dbias, loss)

			// Without a bias: dbias nil is skipped, dgain is unchanged.
			dgain2 := nans[float64](C)
			LayerNormGradParamsRef(dgain2, nil, r, inp, N, C, eps)
			checkClose(t, "dgain without bias", dgain2, dgain, 0)
		})
	}
}

func TestRMSNormBackwardGrad(t *testing.T) {
	rng := newRand()
	const eps = 1e-6
	for _, sz := range []struct {
		N, C int
		off  float64
	}{{1, 1, 0}, {1, 7, 0}, {7, 17, 0}, {3, 33, 0}, {7, 17, 1}} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			N, C := sz.N, sz.C
			inp, gain := randn(rng, N*C), randn(rng, C)
			r := randn(rng, N*C)
			loss := func() float64 {
				out := nans[float64](N * C)
				RMSNormRef(out, inp, gain, N, C, eps, sz.off)
				return proj(r, out)
			}
			dinp, dgain := nans[float64](N*C), nans[float64](C)
			RMSNormGradRef(dinp, r, inp, gain, N, C, eps, sz.off)
			RMSNormGradGainRef(dgain, r, inp, N, C, eps)
			checkGrad(t, "dinp", inp, dinp, loss)
			checkGrad(t, "dgain", gain, dgain, loss)
		})
	}
}

func TestRoPEBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ N, NH, HS int }{{1, 1, 2}, {7, 3, 8}, {17, 2, 6}} {
		sc := ropeScalings[(sz.N+sz.HS)%len(ropeScalings)]
		t.Run(fmt.Sprint(sz, sc.kind), func(t *testing.T) {
			N, NH, HS := sz.N, sz.NH, sz.HS
			inp := randn(rng, N*NH*HS)
			pos := randIDs(rng, N, 1000)
			r := randn(rng, N*NH*HS)
			dinp := nans[float64](N * NH * HS)
			RoPEGradRef(dinp, r, pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.low, sc.high, sc.orig)
			checkGrad(t, "dinp", inp, dinp, func() float64 {
				out := nans[float64](N * NH * HS)
				RoPERef(out, inp, pos, N, NH, HS, 10000, sc.kind, sc.factor, sc.low, sc.high, sc.orig)
				return proj(r, out)
			})
		})
	}
}

func TestAttentionBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ B, T, NH, KVH, HS, W int }{
		{1, 1, 1, 1, 1, 0},
		{2, 1, 4, 2, 3, 0}, // T = 1
		{1, 7, 1, 1, 5, 0},
		{2, 7, 4, 4, 3, 0},
		{2, 7, 4, 2, 3, 0}, // grouped-query
		{1, 7, 4, 1, 4, 0}, // multi-query
		{1, 17, 2, 1, 2, 0},
		{2, 7, 4, 2, 3, 3}, // sliding window
		{1, 17, 2, 1, 2, 1},
	} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			B, T, NH, KVH, HS, W := sz.B, sz.T, sz.NH, sz.KVH, sz.HS, sz.W
			// Every other case with Gemma 2's own scale and soft-capping.
			scale, cap := 0.0, 0.0
			if (T+HS)%2 == 0 {
				scale, cap = 0.4, 2
			}
			nq, nkv := B*T*NH*HS, B*T*KVH*HS
			q, k, v := randn(rng, nq), randn(rng, nkv), randn(rng, nkv)
			r := randn(rng, nq)
			loss := func() float64 {
				out := nans[float64](nq)
				AttentionRef(out, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
				return proj(r, out)
			}
			dq, dk, dv := nans[float64](nq), nans[float64](nkv), nans[float64](nkv)
			AttentionGradRef(dq, dk, dv, r, q, k, v, B, T, NH, KVH, HS, W, scale, cap)
			checkGrad(t, "dq", q, dq, loss)
			checkGrad(t, "dk", k, dk, loss)
			checkGrad(t, "dv", v, dv, loss)
		})
	}
}

func TestActivationBackwardGrad(t *testing.T) {
	rng := newRand()
	kernels := []struct {
		name     string
		forward  func(out, inp []float64, N int)
		backward func(dinp, dout, inp []float64, N int)
	}{
		{"GELU", GELURef[float64], GELUGradRef[float64]},
		{"SiLU", SiLURef[float64], SiLUGradRef[float64]},
	}
	for _, kern := range kernels {
		for _, N := range []int{1, 7, 33} {
			t.Run(fmt.Sprint(kern.name, N), func(t *testing.T) {
				inp := randn(rng, N)
				for i := range inp {
					inp[i] *= 3
				}
				r := randn(rng, N)
				dinp := nans[float64](N)
				kern.backward(dinp, r, inp, N)
				checkGrad(t, "dinp", inp, dinp, func() float64 {
					out := nans[float64](N)
					kern.forward(out, inp, N)
					return proj(r, out)
				})
			})
		}
	}
}

func TestSoftmaxBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ N, C int }{{1, 1}, {7, 17}, {3, 33}} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			N, C := sz.N, sz.C
			inp, r := randn(rng, N*C), randn(rng, N*C)
			out := nans[float64](N * C)
			SoftmaxRef(out, inp, N, C)
			dinp := nans[float64](N * C)
			SoftmaxGradRef(dinp, r, out, N, C)
			checkGrad(t, "dinp", inp, dinp, func() float64 {
				out := nans[float64](N * C)
				SoftmaxRef(out, inp, N, C)
				return proj(r, out)
			})
		})
	}
}

func TestCrossEntropyBackwardGrad(t *testing.T) {
	rng := newRand()
	for _, sz := range []struct{ N, V int }{{1, 1}, {1, 7}, {7, 17}, {17, 33}} {
		t.Run(fmt.Sprint(sz), func(t *testing.T) {
			N, V := sz.N, sz.V
			logits := randn(rng, N*V)
			for i := range logits {
				logits[i] *= 2
			}
			targets := randIDs(rng, N, V)
			dloss := 0.5 + rng.Float64()
			dlogits := nans[float64](N * V)
			CrossEntropyGradRef(dlogits, dloss, logits, targets, N, V)
			checkGrad(t, "dlogits", logits, dlogits, func() float64 {
				return dloss * CrossEntropyRef(logits, targets, N, V)
			})
		})
	}
}

func TestLoRABackwardGrad(t *testing.T) {
	rng := newRand()
	for _, dropout := range []bool{false, true} {
		for _, withDinp := range []bool{false, true} {
			for _, sz := range []struct{ N, K, M, R int }{{1, 1, 1, 1}, {7, 17, 5, 3}, {3, 7, 33, 2}, {17, 5, 7, 8}} {
				t.Run(fmt.Sprint(sz, "dropout", dropout, "dinp", withDinp), func(t *testing.T) {
					N, K, M, R := sz.N, sz.K, sz.M, sz.R
					inp, a, b := randn(rng, N*K), randn(rng, R*K), randn(rng, M*R)
					var mask []float64
					if dropout {
						mask = make([]float64, N*K)
						DropoutMask(mask, 0.3, 7, uint64(N*K))
					}
					const scale = 1.75
					r := randn(rng, N*M)
					loss := func() float64 {
						out := nans[float64](N * M)
						LoRARef(out, inp, a, b, mask, N, K, M, R, scale)
						return proj(r, out)
					}
					da, db := nans[float64](R*K), nans[float64](M*R)
					var dinp []float64
					if withDinp {
						dinp = nans[float64](N * K)
					}
					LoRAGradRef(da, db, dinp, r, inp, a, b, mask, N, K, M, R, scale)
					checkGrad(t, "da", a, da, loss)
					checkGrad(t, "db", b, db, loss)
					if withDinp {
						checkGrad(t, "dinp", inp, dinp, loss)
					}
				})
			}
		}
	}
}
