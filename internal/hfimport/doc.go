// Package hfimport turns a Hugging Face model directory (config.json) and,
// optionally, a PEFT adapter directory into a .lora file that describes the
// same model and the same adapters, for `lorac init --from`.
package hfimport
