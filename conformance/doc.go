// Package conformance checks lorac against Hugging Face transformers and
// PEFT: make_fixtures.py builds a tiny random model of each family (gpt2,
// llama, llama3, qwen2, qwen3, mistral, gemma, gemma2, gemma3) with a LoRA
// adapter and saves their weights, adapters and reference numbers under
// testdata/; the Go tests import each model with lorac's importer, run it,
// and compare logits, loss, LoRA gradients and merged weights — no Python
// needed to test. The packages lorac generates for the fixtures, which the
// tests also run, are internal/gen/hf<family>.
package conformance
