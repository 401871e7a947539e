package serve

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/engine"
)

// Synopsis is the usage line of `lorac serve`.
const Synopsis = "lorac serve FILE.lora --base PATH [--adapters DIR] [--addr :8080] [flags]\n  an OpenAI-compatible completions server with many LoRA adapters"

// Model is a generated model as the server uses it.
type Model interface{ State() *engine.Core }

// Options are the flags of `lorac serve`.
type Options struct {
	Base, Adapters, Addr, Tokenizer, Name string
	AdapterMemoryMiB                      int
	Config
	ShutdownTimeout time.Duration
}

// flags declares the options on fs.
func flags(fs *flag.FlagSet, o *Options) {
	fs.StringVar(&o.Base, "base", "", "`path` of the base weights (model.safetensors, a sharded .index.json or a model directory)")
	fs.StringVar(&o.Adapters, "adapters", "", "`directory` of PEFT adapters, each subdirectory one adapter named by it, loaded on first use")
	fs.StringVar(&o.Addr, "addr", ":8080", "`address` to listen on")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "`path` of a Hugging Face tokenizer.json (default: the one next to --base, else bytes)")
	fs.StringVar(&o.Name, "name", "", "the base model's `name` in requests and /v1/models (default: the model block's name)")
	fs.IntVar(&o.AdapterMemoryMiB, "adapter-memory", 1024, "`MiB` of adapter weights kept in memory; the least recently used idle adapters are evicted beyond it (0: no limit)")
	fs.IntVar(&o.MaxBatch, "max-batch", 16, "most `requests` decoding together")
	fs.IntVar(&o.MaxQueue, "max-queue", 256, "most `requests` waiting for a slot; more get 503 (0: no limit)")
	fs.IntVar(&o.MaxPromptTokens, "max-prompt-tokens", 0, "longest prompt in `tokens` (0: the context)")
	fs.IntVar(&o.MaxTokens, "max-tokens", 0, "largest max_tokens a request may ask (0: the context)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "longest `duration` of a request (0: none)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for running requests")
}

// Main runs `lorac serve` in a model program: args are the command's
// arguments after "serve". It returns the exit status, and prints errors
// as the driver does ("lorac: serve: …").
func Main(m Model, args []string, stdout, stderr io.Writer) int {
	err := run(m.State(), args, stdout, stderr)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, driver.ErrUsage):
		fmt.Fprintln(stderr, driver.Prefix("serve", err))
		return 2
	}
	fmt.Fprintln(stderr, driver.Prefix("serve", err))
	return 1
}

func run(core *engine.Core, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o Options
	flags(fs, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			driver.WriteUsage(stdout, Synopsis, fs)
			return err
		}
		return fmt.Errorf("%w: %v; \"lorac serve --help\" lists the flags", driver.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", driver.ErrUsage, fs.Arg(0))
	}
	switch {
	case o.Base == "":
		return fmt.Errorf("%w: --base PATH is required (a model.safetensors)", driver.ErrUsage)
	case o.MaxBatch < 1:
		return fmt.Errorf("%w: --max-batch %d: want 1 or more", driver.ErrUsage, o.MaxBatch)
	case o.MaxQueue < 0 || o.MaxPromptTokens < 0 || o.MaxTokens < 0 || o.AdapterMemoryMiB < 0 || o.Timeout < 0:
		return fmt.Errorf("%w: --max-queue, --max-prompt-tokens, --max-tokens, --adapter-memory and --timeout must not be negative", driver.ErrUsage)
	}
	if o.Adapters != "" {
		if fi, err := os.Stat(o.Adapters); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: --adapters %s is not a directory", driver.ErrUsage, o.Adapters)
		}
	}
	if err := core.LoadBase(o.Base); err != nil {
		return err
	}
	tk, tokName, err := driver.TokenizerFor(o.Tokenizer, o.Base, core.Spec.Vocab)
	if err != nil {
		return err
	}
	o.Config.Name = o.Name
	reg := NewRegistry(core.Spec, o.Adapters, int64(o.AdapterMemoryMiB)<<20)
	srv := New(core, tk, reg, o.Config)
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "lorac: serve: %s (tokenizer: %s) on http://%s\n", srv.cfg.Name, tokName, ln.Addr())
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		srv.Close()
		return err
	case sig := <-sigs:
		fmt.Fprintf(stderr, "lorac: serve: %v: finishing the running requests (up to %v)\n", sig, o.ShutdownTimeout)
	}
	return shutdown(hs, srv, o.ShutdownTimeout)
}

// shutdown stops accepting connections, lets the running requests finish
// (up to timeout), then stops the scheduler.
func shutdown(hs *http.Server, srv *Server, timeout time.Duration) error {
	srv.Draining()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := hs.Shutdown(ctx)
	if err != nil {
		// Past the timeout: cut the remaining connections; their
		// requests' contexts end and the scheduler drops them.
		hs.Close()
	}
	srv.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("requests were still running after %v; they were cut off", timeout)
	}
	return err
}

// Help writes the usage and flags of `lorac serve`.
func Help(w io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	flags(fs, &Options{})
	return driver.WriteUsage(w, Synopsis, fs)
}
