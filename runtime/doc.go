// Package runtime is what generated code and the lorac command call at run
// time besides the kernels of package kern: tensors, files, tokenizers and
// optimizers.
package runtime
