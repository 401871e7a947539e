package kern

import (
	"math"
	"testing"
)

// The float32 instantiation of a kernel, fed the same (float32-representable)
// inputs, agrees with the float64 one to float32 rounding: the kernels
// accumulate in float64 whatever F is.

const rel32 = 1e-5

// rounded returns n normal values rounded to float32, in both widths.
func rounded(rng interface{ NormFloat64() float64 }, n int) ([]float32, []float64) {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x, to64(x)
}

func TestFloat32Agrees(t *testing.T) {
	rng := newRand()
	const N, K, M, R = 7, 17, 33, 4
	inp32, inp64 := rounded(rng, N*K)
	w32, w64 := rounded(rng, M*K)
	b32, b64 := rounded(rng, M)

	t.Run("Linear", func(t *testing.T) {
		for _, conv1d := range []bool{false, true} {
			out32, out64 := nans[float32](N*M), nans[float64](N*M)
			LinearRef(out32, inp32, w32, b32, N, K, M, conv1d)
			LinearRef(out64, inp64, w64, b64, N, K, M, conv1d)
			checkClose(t, "out", to64(out32), out64, rel32)

			dinp32, dinp64 := nans[float32](N*K), nans[float64](N*K)
			LinearGradInputRef(dinp32, out32, w32, N, K, M, conv1d)
			LinearGradInputRef(dinp64, to64(out32), w64, N, K, M, conv1d)
			checkClose(t, "dinp", to64(dinp32), dinp64, rel32)
		}
	})

	t.Run("LayerNorm", func(t *testing.T) {
		g32, g64 := rounded(rng, K)
		out32, out64 := nans[float32](N*K), nans[float64](N*K)
		LayerNormRef(out32, inp32, g32, b32[:K], N, K, 1e-5)
		LayerNormRef(out64, inp64, g64, b64[:K], N, K, 1e-5)
		checkClose(t, "out", to64(out32), out64, rel32)
	})

	t.Run("RMSNorm", func(t *testing.T) {
		g32, g64 := rounded(rng, K)
		out32, out64 := nans[float32](N*K), nans[float64](N*K)
		RMSNormRef(out32, inp32, g32, N, K, 1e-6, 0)
		RMSNormRef(out64, inp64, g64, N, K, 1e-6, 0)
		checkClose(t, "out", to64(out32), out64, rel32)
	})

	t.Run("Softmax", func(t *testing.T) {
		out32, out64 := nans[float32](N*K), nans[float64](N*K)
		SoftmaxRef(out32, inp32, N, K)
		SoftmaxRef(out64, inp64, N, K)
		checkClose(t, "out", to64(out32), out64, rel32)
	})

	t.Run("CrossEntropy", func(t *testing.T) {
		targets := randIDs(rng, N, K)
		l32 := CrossEntropyRef(inp32, targets, N, K)
		l64 := CrossEntropyRef(inp64, targets, N, K)
		if !closeRel(float64(l32), l64, rel32, 0) {
			t.Errorf("float32 loss %g, float64 loss %g", l32, l64)
		}
	})

	t.Run("Attention", func(t *testing.T) {
		const B, T, NH, KVH, HS = 2, 7, 4, 2, 5
		q32, q64 := rounded(rng, B*T*NH*HS)
		k32, k64 := rounded(rng, B*T*KVH*HS)
		v32, v64 := rounded(rng, B*T*KVH*HS)
		out32, out64 := nans[float32](B*T*NH*HS), nans[float64](B*T*NH*HS)
		AttentionRef(out32, q32, k32, v32, B, T, NH, KVH, HS, 0, 0, 0)
		AttentionRef(out64, q64, k64, v64, B, T, NH, KVH, HS, 0, 0, 0)
		checkClose(t, "out", to64(out32), out64, rel32)
	})

	t.Run("LoRA", func(t *testing.T) {
		a32, a64 := rounded(rng, R*K)
		bb32, bb64 := rounded(rng, M*R)
		out32, out64 := nans[float32](N*M), nans[float64](N*M)
		LoRARef(out32, inp32, a32, bb32, nil, N, K, M, R, 0.5)
		LoRARef(out64, inp64, a64, bb64, nil, N, K, M, R, 0.5)
		checkClose(t, "out", to64(out32), out64, rel32)

		da32, db32, dinp32 := nans[float32](R*K), nans[float32](M*R), nans[float32](N*K)
		da64, db64, dinp64 := nans[float64](R*K), nans[float64](M*R), nans[float64](N*K)
		LoRAGradRef(da32, db32, dinp32, out32, inp32, a32, bb32, nil, N, K, M, R, 0.5)
		LoRAGradRef(da64, db64, dinp64, to64(out32), inp64, a64, bb64, nil, N, K, M, R, 0.5)
		checkClose(t, "da", to64(da32), da64, rel32)
		checkClose(t, "db", to64(db32), db64, rel32)
		checkClose(t, "dinp", to64(dinp32), dinp64, rel32)
	})

	t.Run("GELU", func(t *testing.T) {
		out32, out64 := nans[float32](N*K), nans[float64](N*K)
		GELURef(out32, inp32, N*K)
		GELURef(out64, inp64, N*K)
		for i := range out64 {
			if !closeRel(float64(out32[i]), out64[i], rel32, 1e-30) {
				t.Fatalf("GELU(%g): float32 %g, float64 %g", inp64[i], out32[i], out64[i])
			}
		}
	})

	// A defined float type instantiates the kernels too.
	type half32 float32
	x := []half32{1, -2}
	y := nans[half32](2)
	SiLURef(y, x, 2)
	if math.IsNaN(float64(y[0])) || math.IsNaN(float64(y[1])) {
		t.Errorf("SiLU over a defined float type = %v", y)
	}
}
