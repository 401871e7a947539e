// Package compile runs lorac's front and middle end for the command line:
// read a .lora file, check it, lower it and run the pass pipeline, and sum up
// what a person wants to know before training.
package compile
