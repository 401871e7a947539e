// Package amd64 generates lorac's x86-64 kernels — AVX-512 and AVX2 — by
// driving avo as a library: each kernel is built in an avo build context,
// compiled by avo's passes and printed as Go assembly plus its Go
// declarations. The compiler calls it; model programs never run avo.
//
// docs/design.md ("Backends") describes how the kernels plug into the
// runtime's ISA dispatch table.
package amd64
