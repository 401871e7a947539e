// Package ptx generates lorac's CUDA kernels as PTX text, one module per
// target arch (sm_80, sm_90; `target cuda { arch … }`), for the driver to
// JIT-compile. Kernels are written through a small typed builder (Func,
// Reg, Emitter): registers belong to a class checked against each
// instruction's type, immediates print as exact bit patterns, and labels
// and shared arrays are named per kernel. The per-op table (Kernels) names,
// for each PTX entry, the kernel of the lowering table it serves and how
// the host sizes its launch.
//
// The generated modules are committed under runtime/cuda/ptx
// (internal/cmd/ptxgen writes them); a test fails when they are stale and
// another assembles them with ptxas when it is installed. docs/design.md
// ("The CUDA backend") describes the kernels and what is not built yet.
package ptx
