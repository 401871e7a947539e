// Package engine is what generated model packages bind to: Core holds a
// model's weights, adapter, gradients and optimizer state, loads and saves
// them (base weights, PEFT adapters, merges), and runs the graphs a package
// binds to it (TrainStep, Eval, Forward, Decode, Generate). With it come
// the pieces a training step needs: AdamW and learning-rate schedules,
// weight initialisation, the RNG and sampling. It imports kern, format and
// tok, and the standard library.
package engine
