// Package runtime is what generated code and the lorac command call at run
// time: tensors, files, tokenizers, optimizers and the pure-Go reference
// kernels that every AVX and PTX kernel is tested against.
package runtime
