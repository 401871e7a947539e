package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/devexec"
	"lorac.dev/lorac/internal/devmodel"
	"lorac.dev/lorac/runtime/cuda"
)

// deviceArg takes "--device X" or "--device=X" out of args.
func deviceArg(args []string) (string, []string, error) {
	var rest []string
	dev := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--device" || a == "-device":
			if i+1 >= len(args) {
				return "", nil, fmt.Errorf("%w: --device needs a value (cpu or cuda)", errUsage)
			}
			dev = args[i+1]
			i++
		case strings.HasPrefix(a, "--device=") || strings.HasPrefix(a, "-device="):
			_, dev, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	switch dev {
	case "", "cpu", "cuda":
		return dev, rest, nil
	}
	return "", nil, fmt.Errorf("%w: --device %q: want cpu or cuda", errUsage, dev)
}

// benchCUDA times the compiled graphs on a GPU through internal/devexec:
// a training step (forward, backward and AdamW on the device), a forward
// pass and a decode step, with random weights. Without a driver or a GPU
// it fails with the driver's error.
func benchCUDA(file string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	gpu := fs.Int("gpu", 0, "GPU ordinal")
	steps := fs.Int("steps", 10, "timed repeats of each measurement")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: bench --device cuda: %v (flags: --gpu N, --steps N)", errUsage, err)
	}
	if fs.NArg() > 0 || *steps < 1 {
		return fmt.Errorf("%w: bench --device cuda takes FILE.lora, --gpu N and --steps N (≥ 1)", errUsage)
	}
	cfg, err := compile.Load(file)
	if err != nil {
		return err
	}
	spec, err := compile.Spec(cfg, "model", file)
	if err != nil {
		return err
	}
	d, err := cuda.Open(*gpu)
	if err != nil {
		return err
	}
	defer d.Close()
	l, err := d.Lorac()
	if err != nil {
		return err
	}
	defer l.Release()
	arch, _ := d.Arch()
	fmt.Fprintf(stdout, "device: %s (compute capability %d.%d, PTX %s); activations in the memory plan's arena, launches from the lorac process\n",
		d.Name, d.Major, d.Minor, arch)
	train, forward, decode, kind := spec.TrainLoRA, spec.ForwardLoRA, spec.DecodeLoRA, "LoRA"
	if train == nil {
		train, forward, decode, kind = spec.TrainFull, spec.ForwardBase, spec.DecodeBase, "full"
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Train.Seed), 1))
	t := cfg.Train
	for _, m := range []struct {
		name   string
		g      *graph.Graph
		tokens int
		adamw  bool
	}{
		{fmt.Sprintf("train step, %s (%d×%d)", kind, t.Batch, t.Seq), train, t.Batch * t.Seq, true},
		{fmt.Sprintf("forward (1×%d)", cfg.Model.Context), forward, cfg.Model.Context, false},
		{"decode step", decode, 1, false},
	} {
		ms, err := devexec.Time(l, m.g, devexec.RandomEnv(m.g, rng, cfg.Model.Vocab), m.adamw, *steps)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		fmt.Fprintf(stdout, "%-32s %9.3f ms  %10.0f tokens/s\n", m.name, ms, float64(m.tokens)/ms*1000)
	}
	return nil
}

// openDevice opens a GPU for the device path; tests replace it.
var openDevice = cuda.Open

// gpuArg reads --gpu N (or --gpu=N) from args, 0 when absent; the driver
// checks it again with the other flags.
func gpuArg(args []string) (int, error) {
	gpu := 0
	for i := 0; i < len(args); i++ {
		a, v := args[i], ""
		switch {
		case a == "--gpu" || a == "-gpu":
			if i+1 >= len(args) {
				return 0, fmt.Errorf("%w: --gpu needs a value (a GPU ordinal)", errUsage)
			}
			v = args[i+1]
			i++
		case strings.HasPrefix(a, "--gpu=") || strings.HasPrefix(a, "-gpu="):
			_, v, _ = strings.Cut(a, "=")
		default:
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: --gpu %q: want a GPU ordinal, 0 or more", errUsage, v)
		}
		gpu = n
	}
	return gpu, nil
}

// runDevice runs train, generate, eval or merge with --device cuda in
// this process (internal/devmodel): the model program is std-only and
// cannot reach the CUDA driver, while lorac has the compiler, the device
// and the same driver code. args still hold --device cuda, which the
// driver accepts from a core on a device.
func runDevice(cmd, file string, args []string, stdout, stderr io.Writer) error {
	gpu, err := gpuArg(args)
	if err != nil {
		return err
	}
	code, err := devmodel.Run(file, cmd, args, func() (*cuda.Device, error) { return openDevice(gpu) }, stdout, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}
