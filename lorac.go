// Package lorac holds what the lorac command carries inside itself: the
// source of the runtime package, which `lorac train` and friends compile
// together with a model's generated package, so they need no checkout and
// no network — only the Go toolchain.
package lorac

import "embed"

// RuntimeSource is the runtime package's source (tests included; the
// command skips them) and the module's go.mod.
//
//go:embed go.mod runtime/*.go runtime/*.s
var RuntimeSource embed.FS

// TinyModel is examples/tiny/tiny.lora, the model of `lorac demo`.
//
//go:embed examples/tiny/tiny.lora
var TinyModel []byte
