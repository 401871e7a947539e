// Package interp is the reference interpreter: it runs any graph, at any
// point of the pass pipeline, on the pure-Go kernels of package kern. It is
// the oracle the passes and the generated code are tested against.
package interp
