// Package format reads and writes the files lorac shares with other tools:
// safetensors weights (memory-mapped where the system allows), PEFT adapter
// directories and their adapter_config.json, each written atomically. It
// imports only the standard library.
package format
