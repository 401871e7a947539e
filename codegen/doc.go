// Package codegen writes the Go package that runs a compiled model: tables of
// its parameters and adapters, and one straight-line function per compiled
// graph in which every node is one call to a kernel of runtime/kern on fixed
// slices of a planned arena. Which kernel and which arguments come from the
// lowering table (package lower); codegen only renders them, through jennifer.
package codegen
