package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/gguf"
	"lorac.dev/lorac/internal/hfimport"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/driver"
	"lorac.dev/lorac/runtime/format"
	"lorac.dev/lorac/serve"
)

// version is lorac's release.
const version = "0.1.0-dev"

const usage = `lorac compiles LoRA fine-tuning of transformers.

Usage:
  lorac CMD --help  (or lorac help CMD) lists a command's flags, with their
                    meanings and defaults

  lorac check [--json] FILE.lora
        check a model description and report parameters, adapter size and
        memory for training and inference
  lorac graph FILE.lora [--mode train|infer|eval] [--after PASS] [--format text|dot]
        print the graph after a pass (default: after the whole pipeline)
  lorac init --from MODEL_DIR [--adapter ADAPTER_DIR] [-o FILE.lora]
        write the .lora of a Hugging Face model (config.json; model_type gpt2,
        llama, mistral, qwen2, qwen3, gemma, gemma2 or gemma3_text),
        with lora blocks matching a PEFT adapter if one is given
  lorac export --gguf ADAPTER_DIR -o adapter.gguf [--from MODEL_DIR | --model FILE.lora]
        write a PEFT adapter as a llama.cpp / Ollama LoRA adapter (GGUF)
  lorac combine [--method linear|cat|svd] [--weights W1,W2,…] [--rank N] -o OUT_DIR ADAPTER_DIR…
        one PEFT adapter made of several, weighted, as PEFT's
        add_weighted_adapter makes it (offline)
  lorac compile FILE.lora -o DIR [--pkg NAME]
        write a Go package that trains and runs the model (for go:generate)
  lorac train FILE.lora --data TEXT|FILE.jsonl [--base model.safetensors] [--steps N]
        [--out DIR] [--resume | --overwrite] [--full] [--val-data FILE]
        [--grad-accum N] [--chat-template chatml] [--tokenizer JSON] …
        train a LoRA adapter (or, with --full, every parameter of a base) and
        write it as a PEFT directory, with a checkpoint and a loss plot
        (loss.svg); an earlier run in --out is continued (--resume) or
        replaced (--overwrite); JSONL records (text, prompt/completion,
        messages) train only their completions and assistant turns
  lorac generate FILE.lora --base B [--adapter DIR] [--merge] --prompt TEXT [--chat]
        [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
  lorac merge FILE.lora --base B --adapter DIR -o merged.safetensors
  lorac eval FILE.lora --base B [--adapter DIR] --data TEXT|FILE.jsonl [--chat-template chatml]
  lorac eval FILE.lora --base B [--adapter DIR] --tokens 1,2,3 --dump-logits OUT.safetensors
  lorac bench FILE.lora [--repeats N] [--threads 1,2] [--only TEXT] [--peak] [--kernels]
        tokens/s of training, forward and KV-cache decoding (merged and
        unmerged) on random weights, median of repeats, per thread count
  lorac serve FILE.lora --base B [--adapters DIR] [--addr :8080] [--max-batch N] …
        an OpenAI-compatible completions server (/v1/completions with
        streaming, /v1/models, vLLM's load/unload_lora_adapter, /health,
        /metrics) that serves the base and many PEFT adapters at once
  lorac bench FILE.lora --device cuda [--gpu N] [--steps N]
        the same compiled graphs on a GPU (the CUDA kernels of backends/ptx,
        run by the lorac process itself): a training step with AdamW, a
        forward pass and a decode step; fails without a CUDA driver
  lorac train|generate|eval|merge FILE.lora --device cuda [--gpu N] …
        the command on a GPU, run by the lorac process: weights, adapter,
        gradients, AdamW moments and KV caches resident on the device; the
        same flags, data, checkpoints (--resume too) and output files as on
        the CPU
  lorac demo [--out DIR] [--base-steps N] [--lora-steps N]
        the whole LoRA story on a small built-in model and two built-in
        text domains: base, adapter, detach, merge, PEFT files
  lorac help
  lorac version

train, generate, merge, eval, bench, serve and demo run the model's generated
package, compiled once with the Go toolchain (go on PATH) and cached; with
--device cuda, lorac runs the compiled graphs on the GPU itself.

Exit status: 0 on success (and for --help), 1 when a command fails, 2 for a
mistake in how it was called. Errors and warnings start "lorac: CMD: ".

Passes, in order: ` + "%s" + `
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors in how lorac was called (exit status 2); it is the
// model program's, so that both sort their errors alike.
var errUsage = driver.ErrUsage

// ownCommands are lorac's commands that run in lorac itself, with their
// usage lines; the others run the model program (runtime/driver).
var ownCommands = map[string]string{
	"check":   "lorac check [--json] FILE.lora\n  check a model description; report parameters, adapter size and memory",
	"graph":   "lorac graph FILE.lora [--mode train|infer|eval] [--after PASS] [--format text|dot]\n  print the graph after a pass (default: after the whole pipeline)",
	"compile": "lorac compile FILE.lora -o DIR [--pkg NAME]\n  write a Go package that trains and runs the model (for go:generate)",
	"init":    "lorac init --from MODEL_DIR [--adapter ADAPTER_DIR] [-o FILE.lora]\n  write the .lora of a Hugging Face gpt2 or llama model",
	"export":  "lorac export --gguf ADAPTER_DIR -o adapter.gguf [--from MODEL_DIR | --model FILE.lora]\n  write a PEFT adapter as a llama.cpp LoRA adapter (GGUF)",
	"combine": "lorac combine [--method linear|cat|svd] [--weights W1,W2,…] [--rank N] -o OUT_DIR ADAPTER_DIR…\n  write one PEFT adapter made of several, weighted (PEFT's add_weighted_adapter)",
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, strings.Join(passes.Names(), ", "))
		return 2
	}
	cmd := args[0]
	var err error
	switch cmd {
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "graph":
		err = cmdGraph(args[1:], stdout)
	case "compile":
		err = cmdCompile(args[1:], stderr)
	case "init":
		err = cmdInit(args[1:], stdout)
	case "combine":
		err = cmdCombine(args[1:], stdout)
	case "export":
		err = cmdExport(args[1:], stdout)
	case "train", "generate", "merge", "eval", "bench", "serve":
		err = runModel(cmd, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		err = cmdHelp(args[1:], stdout)
	case "version", "--version":
		fmt.Fprintf(stdout, "lorac %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	default:
		cmd = ""
		err = fmt.Errorf("%w: unknown command %q; run \"lorac help\" for the commands", errUsage, args[0])
	}
	var code exitCode
	var help *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &help):
		if err := driver.WriteUsage(stdout, ownCommands[cmd], help.fs); err != nil {
			fmt.Fprintln(stderr, driver.Prefix(cmd, err))
			return 1
		}
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, driver.Prefix(cmd, err))
		return 2
	default:
		fmt.Fprintln(stderr, driver.Prefix(cmd, err))
		return 1
	}
}

// cmdHelp prints lorac's usage, or with a command the flags of that command.
func cmdHelp(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stdout, usage, strings.Join(passes.Names(), ", "))
		return nil
	}
	if len(args) > 1 {
		return fmt.Errorf("%w: help takes one command, got %q", errUsage, args)
	}
	if _, ok := ownCommands[args[0]]; ok {
		if code := run([]string{args[0], "--help"}, stdout, io.Discard); code != 0 {
			return exitCode(code)
		}
		return nil
	}
	if args[0] == "serve" {
		return serve.Help(stdout)
	}
	if err := driver.Help(args[0], stdout); err != nil {
		return fmt.Errorf("%w: no command %q; run \"lorac help\" for the commands", errUsage, args[0])
	}
	return nil
}

// helpRequest is what a command's flag parsing returns for -h or --help:
// run prints the flags of fs on stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }

// parseOnly parses a command's flags, which take no positional arguments.
func parseOnly(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return flagError(fs, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q; \"lorac %s --help\" lists the flags", errUsage, fs.Arg(0), fs.Name())
	}
	return nil
}

// flagError is the error of a failed fs.Parse: a help request or a usage
// error.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{fs}
	}
	return fmt.Errorf("%w: %v; \"lorac %s --help\" lists the flags", errUsage, err, fs.Name())
}

// parse parses flags that may come before or after the one positional
// argument, as in "lorac graph FILE --after FuseLoRA".
func parse(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", flagError(fs, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%w: want one FILE.lora, got %d arguments; \"lorac %s --help\" shows the usage", errUsage, len(pos), fs.Name())
	}
	return pos[0], nil
}

// warn prints what the config asks for that this build cannot deliver.
func warn(stderr io.Writer, cmd string, cfg *dsl.Config) {
	for _, w := range compile.Warnings(cfg) {
		fmt.Fprintf(stderr, "lorac: %s: warning: %s\n", cmd, w)
	}
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the figures as JSON (params_total, params_trainable, adapter_bytes, train_memory_bytes, infer_memory_bytes, …)")
	file, err := parse(fs, args)
	if err != nil {
		return err
	}
	cfg, err := compile.Load(file)
	if err != nil {
		return err
	}
	s, err := compile.Summarize(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	warn(stderr, "check", cfg)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	h, c := compile.Human, compile.Count
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ok\n\n", file)
	fmt.Fprintf(&b, "model %s: %s, %d layers, dim %d, %d heads", s.Name, s.Arch, s.Layers, s.Dim, s.Heads)
	if s.KVHeads != s.Heads {
		fmt.Fprintf(&b, " (%d kv heads)", s.KVHeads)
	}
	fmt.Fprintf(&b, ", ffn %d, vocab %d, context %d", s.FFN, s.Vocab, s.Context)
	if s.TieEmbeddings {
		b.WriteString(", tied embeddings")
	}
	b.WriteString("\n\n")
	if s.TrainFull {
		fmt.Fprintf(&b, "parameters  %15s  base model, all trainable (no lora block)\n\n", c(s.ParamsTotal))
	} else {
		fmt.Fprintf(&b, "parameters  %15s  base model (frozen)\n", c(s.ParamsTotal))
		fmt.Fprintf(&b, "            %15s  trainable LoRA in %d modules (%.4f%% of %s)\n", c(s.ParamsTrainable), s.AdaptedModules, s.TrainablePercent, c(s.ParamsAll))
		fmt.Fprintf(&b, "adapter     %15s  adapter_model.safetensors (f32)\n\n", h(s.AdapterBytes))
	}
	mem := func(title string, m compile.Memory) {
		fmt.Fprintf(&b, "%s  %s\n", title, h(m.Total))
		fmt.Fprintf(&b, "  weights      %12s\n", h(m.Weights))
		fmt.Fprintf(&b, "  adapter      %12s\n", h(m.Adapter))
		if m.Gradients > 0 {
			fmt.Fprintf(&b, "  gradients    %12s\n", h(m.Gradients))
			fmt.Fprintf(&b, "  AdamW state  %12s\n", h(m.Optimizer))
		}
		fmt.Fprintf(&b, "  activations  %12s  (%s without buffer reuse)\n", h(m.Activations), h(m.ActivationsRaw))
		fmt.Fprintf(&b, "  kernel scratch %10s  (the largest call's, %d threads)\n", h(m.KernelScratch), runtime.GOMAXPROCS(0))
	}
	what := ""
	if s.TrainFull {
		what = ", every parameter"
	}
	mem(fmt.Sprintf("training memory at batch %d × seq %d%s:", s.TrainBatch, s.TrainSeq, what), s.Train)
	merged := ", adapter merged"
	if s.TrainFull {
		merged = ""
	}
	mem(fmt.Sprintf("inference memory at batch 1 × context %d%s:", s.Context, merged), s.Infer)
	b.WriteString("\n" + fitsLine(s))
	_, err = io.WriteString(stdout, b.String())
	return err
}

// fitsLine says plainly whether training and inference fit this machine's
// memory.
func fitsLine(s *compile.Summary) string {
	if s.MachineMemory <= 0 {
		return "this machine's memory is unknown: cannot say whether training fits\n"
	}
	h := compile.Human
	fits := func(ok bool) string {
		if ok {
			return "fits"
		}
		return "does not fit"
	}
	return fmt.Sprintf("training %s this machine's memory (%s); inference %s\n",
		fits(s.TrainFits), h(s.MachineMemory), fits(s.InferFits))
}

func cmdGraph(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	after := fs.String("after", "", "stop after this `pass` (default: run them all): "+strings.Join(passes.Names(), ", "))
	format := fs.String("format", "text", "output `format`: text, or dot for Graphviz")
	mode := fs.String("mode", "train", "the graph's `mode`: train, infer (inference, adapter merged) or eval")
	file, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "dot" {
		return fmt.Errorf("%w: --format %q; write --format text or --format dot", errUsage, *format)
	}
	var m graph.Mode
	switch *mode {
	case "train":
		m = graph.Train
	case "infer":
		m = graph.Infer
	case "eval":
		m = graph.Eval
	default:
		return fmt.Errorf("%w: --mode %q; write --mode train, infer or eval", errUsage, *mode)
	}
	if *after != "" {
		p, ok := passes.Lookup(*after)
		if !ok {
			return fmt.Errorf("%w: unknown pass %q; passes are %s", errUsage, *after, strings.Join(passes.Names(), ", "))
		}
		runs := false
		for _, pm := range p.Modes {
			runs = runs || pm == m
		}
		if !runs {
			return fmt.Errorf("%w: pass %s does not run in %s mode", errUsage, *after, m)
		}
	}
	cfg, err := compile.Load(file)
	if err != nil {
		return err
	}
	g, err := compile.Build(cfg, m, passes.Config{StopAfter: *after, Verify: true})
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if *format == "dot" {
		return g.WriteDOT(stdout)
	}
	return g.WriteText(stdout)
}

func cmdCompile(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("compile", flag.ContinueOnError)
	out := fs.String("o", "", "output `directory` of the package (made if missing)")
	pkg := fs.String("pkg", "", "package `name` (default: from the model name)")
	file, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: -o DIR is required", errUsage)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	cfg, err := compile.LoadSource(file, src)
	if err != nil {
		return err
	}
	files, err := compile.GenerateConfig(cfg, file, src, *pkg)
	if err != nil {
		return err
	}
	warn(stderr, "compile", cfg)
	return compile.WritePackage(*out, files)
}

func cmdInit(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	from := fs.String("from", "", "Hugging Face model `directory` (its config.json)")
	adapter := fs.String("adapter", "", "PEFT adapter `directory` to describe as lora blocks (default: none)")
	out := fs.String("o", "", "write the .lora `file` here (default: standard output)")
	if err := parseOnly(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return fmt.Errorf("%w: --from MODEL_DIR is required", errUsage)
	}
	// The output must be writable before the work, as everywhere.
	if *out != "" {
		if err := driver.CheckOutFile("-o", *out, *from, *adapter); err != nil {
			return err
		}
	}
	src, err := hfimport.Source(*from, *adapter)
	if err != nil {
		return err
	}
	// What init writes must check: a mistake here is lorac's, not the user's.
	if _, err := compile.LoadSource("init.lora", []byte(src)); err != nil {
		return fmt.Errorf("the imported model does not check:\n%v", err)
	}
	if *out == "" {
		_, err := io.WriteString(stdout, src)
		return err
	}
	return format.WriteFileAtomic(*out, func(w io.Writer) error {
		_, err := io.WriteString(w, src)
		return err
	})
}

func cmdExport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	adapterDir := fs.String("gguf", "", "PEFT adapter `directory` to export as a llama.cpp LoRA GGUF")
	out := fs.String("o", "", "output .gguf `file`")
	from := fs.String("from", "", "the base model's Hugging Face `directory` (config.json); llama needs it or --model")
	model := fs.String("model", "", "the base model's .lora `file` (instead of --from)")
	if err := parseOnly(fs, args); err != nil {
		return err
	}
	switch {
	case *adapterDir == "":
		return fmt.Errorf("%w: --gguf ADAPTER_DIR is required", errUsage)
	case *out == "":
		return fmt.Errorf("%w: -o adapter.gguf is required", errUsage)
	case *from != "" && *model != "":
		return fmt.Errorf("%w: --from and --model conflict: both give the base model; give one", errUsage)
	}
	// The output must be writable before the work, as everywhere.
	if err := driver.CheckOutFile("-o", *out, *adapterDir, *from, *model); err != nil {
		return err
	}
	ad, err := format.ReadPEFT(*adapterDir)
	if err != nil {
		return err
	}
	var m *dsl.Model
	switch {
	case *from != "":
		if m, err = hfimport.Model(*from); err != nil {
			return err
		}
	case *model != "":
		cfg, err := compile.Load(*model)
		if err != nil {
			return err
		}
		m = &cfg.Model
	}
	arch, heads, kvHeads := "", 0, 0
	if m != nil {
		arch, heads, kvHeads = m.GGUFArch(), m.Heads, m.KVHeads
	} else if len(ad.Modules) > 0 {
		// Module names say the architecture; llama's head counts do not
		// follow from the adapter, so llama needs the model.
		switch {
		case strings.HasPrefix(ad.Modules[0].Module, "transformer.h."):
			arch = "gpt2"
		case strings.HasPrefix(ad.Modules[0].Module, "model.layers."):
			return fmt.Errorf("%w: a llama adapter needs the model's head counts (llama.cpp reorders q and k); pass --from MODEL_DIR or --model FILE.lora", errUsage)
		default:
			return fmt.Errorf("%s: module %s is neither gpt2 nor llama; pass --from MODEL_DIR", *adapterDir, ad.Modules[0].Module)
		}
	}
	if err := gguf.ExportGGUF(*out, ad, arch, heads, kvHeads); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d modules, %s)\n", *out, len(ad.Modules), arch)
	return nil
}
