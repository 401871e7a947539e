// Package kern holds the float32 kernels generated code is made of, and the
// pure-Go reference kernels (generic over float32 and float64) that every
// fast, AVX and PTX kernel is tested against; with them ParallelFor and
// SetThreads, which bound the threads a kernel uses, and the scratch pools.
// It imports only the standard library.
//
// Names: a kernel that runs one graph op is named after the op (op
// layernorm_grad_params runs LayerNormGradParams, op add runs Add), and its
// reference kernel is that name with the suffix Ref (LayerNormGradParamsRef,
// AddRef). The op → kernel table is package lorac.dev/lorac/lower.
package kern
