// Package kern holds the float32 kernels generated code is made of, and the
// pure-Go reference kernels (generic over float32 and float64) that every
// fast, AVX and PTX kernel is tested against; with them ParallelFor and
// SetThreads, which bound the threads a kernel uses, and the scratch pools.
// It imports only the standard library.
package kern
