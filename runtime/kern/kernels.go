package kern

// Float is the element type of the reference kernels: float32 in production,
// float64 for gradient checks.
//
// Every kernel in this package follows one set of conventions (llm.c style):
//   - arguments come as outputs, inputs, weights, then dimensions;
//   - tensors are row-major flat slices, and N is the number of rows (B·T);
//   - a kernel overwrites its outputs, never accumulates into them;
//   - outputs must not overlap inputs unless the kernel's doc says they may;
//   - reductions accumulate in float64, even for float32, because these
//     kernels are the oracle the fast kernels are measured against;
//   - slices must hold at least the elements the shape comment gives; callers
//     (the interpreter, generated code) validate shapes, the kernels do not.
type Float interface{ ~float32 | ~float64 }

// dot returns a·b over len(a) elements, accumulated in float64. a and b may
// have different element types (a float64 scratch row against an F tensor).
func dot[F, G Float](a []F, b []G) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}

// axpy adds a·x to acc, elementwise over len(acc).
func axpy[F Float](acc []float64, a float64, x []F) {
	x = x[:len(acc)]
	for i, v := range x {
		acc[i] += a * float64(v)
	}
}

// store rounds acc into dst.
func store[F Float](dst []F, acc []float64) {
	dst = dst[:len(acc)]
	for i, v := range acc {
		dst[i] = F(v)
	}
}
