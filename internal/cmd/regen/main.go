// Command regen regenerates every committed generated package listed in
// internal/gen (the examples' and the tests'): run it from anywhere in the
// module, or through go generate ./internal/gen. It imports none of the
// generated packages, so it works when they no longer compile (after a
// change to the runtime's API, say). internal/gen's TestFresh fails when a
// committed package is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"lorac.dev/lorac/internal/gen"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/cmd/regen")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	root, err := gen.Root()
	if err == nil {
		err = gen.Regenerate(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "regen:", err)
		os.Exit(1)
	}
}
