// Package interp is the reference interpreter: it runs any graph, at any
// point of the pass pipeline, on the pure-Go reference kernels of package kern,
// calling them as the lowering table (package lower) says, the same table
// the generated code is rendered from. It is
// the oracle the passes and the generated code are tested against.
package interp
