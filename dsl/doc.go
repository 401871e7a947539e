// Package dsl parses .lora files, checks them, and lowers them to a graph.
//
// The grammar (participle structs in ast.go) is deliberately generic — blocks of
// `key value, value…` entries — so that every semantic mistake is reported by
// Check with a position and a suggestion rather than as a parse error.
package dsl
