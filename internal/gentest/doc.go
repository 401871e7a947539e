// Package gentest tests the small packages lorac generates for it
// (internal/gen/gpt2 and internal/gen/llama, from internal/gen/*.lora)
// against the reference interpreter: losses, gradients, logits, merging and
// detaching, and runs the command-line driver on them. Regenerate them with
// go run ./internal/cmd/regen.
package gentest
