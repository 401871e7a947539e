package devmodel

import (
	"fmt"
	"io"

	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/engine"
)

// Commands are the driver commands the device path runs.
var Commands = []string{"train", "generate", "eval", "merge"}

// Run runs driver command cmd (one of Commands) of the model in file, with
// args, on the device that open returns, in this process: the graphs are
// compiled here, checked (Supported) before the device is opened, and run
// by an Executor behind an engine.Core that runtime/driver drives as it
// drives a generated model in a model program. It returns the driver's
// exit status; an error reports a failure before the driver ran (the
// model does not compile, a graph is not on the device, no driver or no
// GPU). open is the seam tests use to run on the PTX simulator.
func Run(file, cmd string, args []string, open func() (*cuda.Device, error), stdout, stderr io.Writer) (int, error) {
	cfg, err := compile.Load(file)
	if err != nil {
		return 0, err
	}
	s, err := compile.Spec(cfg, "model", file)
	if err != nil {
		return 0, err
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			// The flags and this model's defaults; nothing runs, so
			// neither the device nor the stores are needed.
			info, err := s.Info()
			if err != nil {
				return 0, err
			}
			spec, err := ModelSpec(info)
			if err != nil {
				return 0, err
			}
			return driver.Main(&engine.Core{Spec: spec}, append([]string{cmd}, args...), stdout, stderr), nil
		}
	}
	if err := Supported(s); err != nil {
		return 0, fmt.Errorf("%s: the model cannot run on the CUDA device: %w", file, err)
	}
	d, err := open()
	if err != nil {
		return 0, err
	}
	defer d.Close()
	l, err := d.Lorac()
	if err != nil {
		return 0, err
	}
	defer l.Release()
	e, spec, err := New(l, s)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	arch, _ := d.Arch()
	fmt.Fprintf(stderr, "device: %s (compute capability %d.%d, PTX %s): weights, adapter, gradients and AdamW moments resident\n", d.Name, d.Major, d.Minor, arch)
	return driver.Main(engine.NewCoreOn(spec, e), append([]string{cmd}, args...), stdout, stderr), nil
}
