// Package conformance checks lorac against Hugging Face transformers and
// PEFT: make_fixtures.py builds tiny random llama and gpt2 models with LoRA
// adapters and saves their weights, adapters and reference numbers under
// testdata/; the Go tests import each model with lorac's importer, run it,
// and compare logits, loss, LoRA gradients and merged weights — no Python
// needed to test. The packages lorac generates for the fixtures, which the
// tests also run, are internal/gen/hfgpt2 and internal/gen/hfllama.
package conformance
