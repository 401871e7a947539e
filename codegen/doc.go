// Package codegen writes the Go package that runs a compiled model: tables of
// its parameters and adapters, and one straight-line function per compiled
// graph in which every node is one call to a kernel of runtime/kern on fixed
// slices of a planned arena. Code is built only through jennifer.
package codegen
