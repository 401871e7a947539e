// Package graph is lorac's intermediate representation: a dataflow graph of
// tensor operations over named parameters, with one op table, a verifier and
// text and DOT printers.
package graph
