// Command servefixture writes what the end-to-end test of lorac serve
// serves: a base for examples/tiny with random weights (OUT/base) and
// adapters with random, nonzero weights (OUT/adapters/a0, a1, …), so that
// every adapter changes the outputs.
//
//	go run ./internal/cmd/servefixture [-adapters N] OUT
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"lorac.dev/lorac/examples/tiny/model"
	"lorac.dev/lorac/runtime/engine"
)

func main() {
	n := flag.Int("adapters", 4, "number of adapters")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: servefixture [-adapters N] OUT")
		os.Exit(2)
	}
	if err := write(flag.Arg(0), *n); err != nil {
		fmt.Fprintln(os.Stderr, "servefixture:", err)
		os.Exit(1)
	}
}

func write(out string, n int) error {
	m := model.New()
	m.InitBase(7)
	if err := os.MkdirAll(filepath.Join(out, "base"), 0o755); err != nil {
		return err
	}
	if err := m.SaveBase(filepath.Join(out, "base", "model.safetensors")); err != nil {
		return err
	}
	for i := range n {
		engine.InitNormal(m.LoRA, 0.2, engine.NewRNG(uint64(100+i)))
		if err := m.SaveAdapter(filepath.Join(out, "adapters", fmt.Sprintf("a%d", i))); err != nil {
			return err
		}
	}
	return nil
}
