// Package gguf reads GGUF files and exports PEFT LoRA adapters to them, for
// llama.cpp and Ollama. Only `lorac export` uses it, so it is not part of
// the runtime source that model programs are built from.
package gguf
