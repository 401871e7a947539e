// Package driver is the command line a model program runs: Main, with its
// train (checkpoints, validation, loss plot, progress), generate, merge,
// eval, bench and demo commands, and the corpus, text-file and batching
// helpers they read data with. `lorac train` and friends compile it
// together with a model's generated package. It imports engine and the
// packages below it, and the standard library.
package driver
