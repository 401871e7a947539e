// Command lorac compiles .lora model descriptions. It checks them (sizes,
// parameters, memory), prints their graphs after any pass, compiles them
// into Go packages, imports Hugging Face models and PEFT adapters (init),
// exports adapters to llama.cpp's GGUF (export), and trains, evaluates,
// generates with, merges and benchmarks LoRA adapters by building and
// running the model's generated package (train, eval, generate, merge,
// bench, demo). `lorac help` lists the commands; `lorac CMD --help` lists a
// command's flags.
package main
