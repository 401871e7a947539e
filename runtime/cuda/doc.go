// Package cuda is lorac's CUDA device: the driver API bound at run time
// (dlopen of libcuda.so.1 through purego, so it builds with CGO_ENABLED=0),
// the PTX modules that backends/ptx generates (embedded from ptx/, one per
// arch), argument packing checked against each entry's .param list, and
// launch helpers that size grids the way each kernel expects.
//
// Without a driver or a GPU every entry point returns an error starting
// "no CUDA driver found: " or naming the failing driver call; nothing
// panics, and nothing else in lorac depends on this package: model programs
// do not import it yet (docs/design.md, "The CUDA backend").
package cuda

//go:generate go run lorac.dev/lorac/internal/cmd/ptxgen -o ptx
