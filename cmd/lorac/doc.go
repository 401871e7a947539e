// Command lorac compiles .lora model descriptions: it checks them, prints
// their graphs after any pass, and (in later releases) trains, generates and
// merges LoRA adapters.
package main
