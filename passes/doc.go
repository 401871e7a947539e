// Package passes transforms graphs: one ordered table of passes (Table) whose
// ordering rules (Constraints) are data, checked when the package loads.
package passes
