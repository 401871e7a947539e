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

// TinyModel is examples/tiny/tiny.lora, the model of `lorac demo`.
//
//go:embed examples/tiny/tiny.lora
var TinyModel []byte
