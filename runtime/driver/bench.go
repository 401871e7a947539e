package driver

import (
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
)

// bench measures the compiled model on random weights and tokens: training
// steps (LoRA and full), forward passes and KV-cache decoding, adapter
// merged and unmerged, at each thread count. It prints medians with the
// min–max range of the repeats, since single samples on a busy machine vary.
func (d *driver) bench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	repeats := fs.Int("repeats", 5, "timed repeats of each measurement (the median is reported)")
	decodeTokens := fs.Int("decode-tokens", 64, "tokens per decoding measurement")
	threads := fs.String("threads", "", "comma-separated thread `counts` (default: 1 and all cores)")
	peak := fs.Bool("peak", false, "also measure this machine's float32 FMA peak at each thread count")
	kernels := fs.Bool("kernels", false, "also time the GEMM kernels at the model's linear shapes (GFLOP/s, % of peak, fused LoRA ÷ base)")
	only := fs.String("only", "", "measure only the rows whose name contains this `text` (e.g. decode, train, forward)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if bad := firstBad(*repeats < 1, fmt.Sprintf("--repeats %d: want a positive count", *repeats),
		*decodeTokens < 1, fmt.Sprintf("--decode-tokens %d: want a positive count", *decodeTokens)); bad != "" {
		return fmt.Errorf("%w: %s", errUsage, bad)
	}
	counts := []int{1, runtime.GOMAXPROCS(0)}
	if *threads != "" {
		counts = nil
		for _, f := range strings.FieldsFunc(*threads, func(r rune) bool { return r == ',' }) {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
				return fmt.Errorf("%w: --threads: %q is not a positive count", errUsage, f)
			}
			counts = append(counts, n)
		}
	}
	counts = slices.Compact(counts)
	defer kern.SetThreads(0)

	c, spec := d.c, d.c.Spec.Train
	c.InitBase(1)
	c.InitAdapter(2)
	r := engine.NewRNG(3)
	n := spec.Batch * spec.Seq
	tokens, targets := make([]int32, n), make([]int32, n)
	for i := range tokens {
		tokens[i], targets[i] = int32(r.IntN(c.Spec.Vocab)), int32(r.IntN(c.Spec.Vocab))
	}
	// The prompt is a full context of tokens; a context longer than the
	// training batch (bench-llama: 2048 > 4 × 256) repeats the batch's tokens.
	prompt := make([]int32, c.Spec.Context)
	for i := range prompt {
		prompt[i] = tokens[i%n]
	}
	type row struct {
		name   string
		tokens int
		run    func() error
	}
	decode := func() error {
		for i := range min(*decodeTokens, c.Spec.Context) {
			if _, err := d.m.Decode(prompt[i], i); err != nil {
				return err
			}
		}
		return nil
	}
	rows := []row{
		{"train step, LoRA", n, func() error { _, err := d.m.TrainStep(tokens, targets); return err }},
		{"train step, full", n, func() error { _, err := d.m.TrainStepFull(tokens, targets); return err }},
		{"forward, adapter unmerged", c.Spec.Context, func() error { _, err := d.m.Forward(prompt); return err }},
		{"decode, adapter unmerged", min(*decodeTokens, c.Spec.Context), decode},
		{"decode, adapter merged", min(*decodeTokens, c.Spec.Context), decode},
		{"decode, base only", min(*decodeTokens, c.Spec.Context), decode},
	}
	if len(c.Spec.Adapters) == 0 {
		rows = slices.Delete(rows, 0, 1)
	}
	rows = slices.DeleteFunc(rows, func(r row) bool { return !strings.Contains(r.name, *only) })
	if len(rows) == 0 {
		return fmt.Errorf("%w: --only %q matches no measurement", errUsage, *only)
	}
	fmt.Fprintf(d.stdout, "%s (%s): batch %d × %d, context %d; kernels %s; median [min–max] of %d runs\n",
		c.Spec.Name, c.Spec.Arch, spec.Batch, spec.Seq, c.Spec.Context, kern.ISA(), *repeats)
	if *peak {
		for _, t := range counts {
			g, ok := kern.FMAPeak(t, 1<<24)
			if !ok {
				fmt.Fprintln(d.stdout, "FMA peak: not measured (no SIMD kernel variant runs on this CPU)")
				break
			}
			fmt.Fprintf(d.stdout, "FMA peak (%s), %d thread(s): %.1f GFLOP/s\n", kern.ISA(), t, g)
		}
	}
	if *kernels {
		benchKernels(d.stdout, c.Spec, n, counts, *repeats)
	}
	fmt.Fprintf(d.stdout, "%-28s %8s %26s\n", "measurement", "threads", "tokens/s")
	for _, rw := range rows {
		for _, t := range counts {
			kern.SetThreads(t)
			switch rw.name {
			case "decode, adapter merged":
				if err := c.Merge(); err != nil {
					return err
				}
			case "decode, base only":
				c.Detach()
			}
			if err := rw.run(); err != nil { // warm up
				return err
			}
			var rates []float64
			for range *repeats {
				start := time.Now()
				if err := rw.run(); err != nil {
					return err
				}
				rates = append(rates, float64(rw.tokens)/time.Since(start).Seconds())
			}
			if c.Merged {
				if err := c.Unmerge(); err != nil {
					return err
				}
			}
			c.Attach()
			slices.Sort(rates)
			fmt.Fprintf(d.stdout, "%-28s %8d %10.0f [%.0f–%.0f]\n", rw.name, t, rates[len(rates)/2], rates[0], rates[len(rates)-1])
		}
	}
	return nil
}
