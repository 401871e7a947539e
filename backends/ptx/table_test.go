package ptx_test

import (
	"testing"

	"lorac.dev/lorac/backends/ptx"
	"lorac.dev/lorac/lower"
)

// TestTableServesLowering: every kernel the PTX table says it serves is a
// kernel of the lowering table, and entries are unique.
func TestTableServesLowering(t *testing.T) {
	known := map[string]bool{}
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			known[c.Kernel] = true
		}
	}
	seen := map[string]bool{}
	for _, k := range ptx.Kernels() {
		if seen[k.Entry] {
			t.Errorf("entry %s twice", k.Entry)
		}
		seen[k.Entry] = true
		if k.Kern != "" && !known[k.Kern] {
			t.Errorf("%s serves %s, which the lowering table does not name", k.Entry, k.Kern)
		}
		switch k.Launch {
		case "elementwise", "rows", "gemm", "gemv", "attention":
		default:
			t.Errorf("%s: unknown launch shape %q", k.Entry, k.Launch)
		}
	}
}
