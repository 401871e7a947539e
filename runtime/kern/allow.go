package kern

import (
	"fmt"
	"os"
	"slices"
)

// AllowISAs selects the widest kernel variant this CPU runs among names, the
// variants a compiled model's `target cpu { isa … }` block lists ("avx512",
// "avx2", and "generic" or "go" for the pure-Go kernels). The pure-Go kernels
// remain the fallback when the CPU has none of them: every build must run.
//
// LORAC_ISA takes precedence: when it is set, AllowISAs leaves the variant it
// chose alone, so a user can still pin a variant (to compare variants or
// rule one out) for any compiled model. A later SetISA overrides both.
func AllowISAs(names ...string) error {
	for _, n := range names {
		if n != "generic" && n != "go" && !knownISA(n) {
			return fmt.Errorf("unknown kernel variant %q; use avx512, avx2 or generic", n)
		}
	}
	if os.Getenv("LORAC_ISA") != "" {
		return nil
	}
	for _, v := range ISAVariants() {
		if slices.Contains(names, v) {
			return SetISA(v)
		}
	}
	return SetISA("go")
}
