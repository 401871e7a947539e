// Package lorac holds what the lorac command carries inside itself: the
// source of the runtime packages, which `lorac train` and friends compile
// together with a model's generated package, so they need no checkout and
// no network — only the Go toolchain.
package lorac

import "embed"

// RuntimeSource is the source of the packages under runtime/, their
// subdirectories and assembly included, and the module's go.mod. Tests and
// testdata come along (a directory embeds whole); the command skips them.
//
//go:embed go.mod runtime
var RuntimeSource embed.FS

// GoMod and GoSum are the module's go.mod and go.sum: the model program of
// `lorac serve` requires the versions they pin (see ServeSource).
//
//go:embed go.mod
var GoMod []byte

//go:embed go.sum
var GoSum []byte

// ServeSource is the source of package serve, the server of `lorac serve`,
// which the command compiles into that model program. Unlike the runtime it
// imports a third-party module, the Prometheus client library.
//
//go:embed serve
var ServeSource embed.FS

// ModelBuildSkips are the runtime directories the lorac command leaves out
// of model builds. runtime/cuda, the CUDA device, needs purego, a module an
// offline build with a go.mod that requires nothing cannot fetch, and no
// model program imports it (docs/design.md, "The CUDA backend"): the one
// generated file that reaches it, a package's cuda.go (through package
// device), is left out of model builds as well.
var ModelBuildSkips = []string{"runtime/cuda"}

// TinyModel is examples/tiny/tiny.lora, the model of `lorac demo`.
//
//go:embed examples/tiny/tiny.lora
var TinyModel []byte
