package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"lorac.dev/lorac/internal/combine"
	"lorac.dev/lorac/runtime/format"
)

// cmdCombine writes one adapter made of several (PEFT's
// add_weighted_adapter, offline).
func cmdCombine(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("combine", flag.ContinueOnError)
	method := fs.String("method", "svd", "how to combine: linear (one rank; an approximation), cat (ranks add; exact) or svd (the best approximation at --rank)")
	weights := fs.String("weights", "", "comma-separated `weights`, one per adapter (default: 1 each; negative subtracts)")
	rank := fs.Int("rank", 0, "rank of the svd method's adapter (default: the largest input rank)")
	out := fs.String("o", "", "output adapter `directory` (new or empty)")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return flagError(fs, err)
	}
	dirs := fs.Args()
	switch {
	case len(dirs) == 0:
		return fmt.Errorf("%w: name the PEFT adapter directories to combine", errUsage)
	case *out == "":
		return fmt.Errorf("%w: -o DIR is required", errUsage)
	case *rank < 0:
		return fmt.Errorf("%w: --rank %d: want a positive rank", errUsage, *rank)
	}
	w := make([]float64, len(dirs))
	for i := range w {
		w[i] = 1
	}
	if *weights != "" {
		parts := strings.Split(*weights, ",")
		if len(parts) != len(dirs) {
			return fmt.Errorf("%w: --weights has %d values for %d adapters", errUsage, len(parts), len(dirs))
		}
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || v != v {
				return fmt.Errorf("%w: --weights: %q is not a number", errUsage, p)
			}
			w[i] = v
		}
	}
	// The output must be a new or empty directory, none of the inputs,
	// checked before any work.
	absOut, _ := filepath.Abs(*out)
	for _, d := range dirs {
		if a, _ := filepath.Abs(d); a == absOut {
			return fmt.Errorf("%w: -o %s is one of the adapters to combine; write elsewhere", errUsage, *out)
		}
	}
	if des, err := os.ReadDir(*out); err == nil && len(des) > 0 {
		return fmt.Errorf("%w: -o %s is a directory with files in it; give a new or empty one", errUsage, *out)
	} else if fi, err := os.Stat(*out); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: -o %s is a file; give a directory", errUsage, *out)
	}
	var in []combine.Input
	for i, d := range dirs {
		ad, err := format.ReadPEFT(d)
		if err != nil {
			return err
		}
		in = append(in, combine.Input{Name: d, Adapter: ad, Weight: w[i]})
	}
	ad, err := combine.Combine(in, *method, *rank)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := format.WritePEFT(*out, ad); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s of %d adapters: rank %d, %d modules)\n", *out, *method, len(dirs), ad.Config.R, len(ad.Modules))
	return nil
}
