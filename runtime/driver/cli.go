package driver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
	"lorac.dev/lorac/runtime/kern"
)

// Runnable is a generated model as the command-line driver uses it.
type Runnable interface {
	State() *engine.Core
	TrainStep(tokens, targets []int32) (float32, error)
	TrainStepFull(tokens, targets []int32) (float32, error)
	Eval(tokens, targets []int32) (float32, error)
	Forward(tokens []int32) ([]float32, error)
	Decode(token int32, pos int) ([]float32, error)
	Generate(prompt []int32, n int, s engine.Sampler, r *engine.RNG) ([]int32, error)
}

// Main runs one command of the driver on a generated model: train,
// generate, merge, eval, bench or demo. It is what `lorac train …` and
// friends execute, compiled together with the model's generated package.
// It returns the process exit status: 0 (also for --help, which prints the
// command's flags on stdout), 1 for failures, 2 for usage errors. Every
// error is one message on stderr that starts "lorac: CMD: ".
func Main(m Runnable, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "lorac: no command; the commands are %s\n", strings.Join(Commands, ", "))
		return 2
	}
	watchParent()
	return dispatch(&driver{m: m, c: m.State(), stdout: stdout, stderr: stderr}, args)
}

// Commands are the driver's commands, in the order help lists them.
var Commands = []string{"train", "generate", "merge", "eval", "bench", "demo"}

// synopses are the commands' usage lines, as lorac runs them.
var synopses = map[string]string{
	"train":    "lorac train FILE.lora --data PATH [--base PATH] [flags]\n  train a LoRA adapter (with --full, every parameter: a base) into --out, with checkpoints and a loss plot",
	"generate": "lorac generate FILE.lora --base PATH [--adapter DIR] --prompt TEXT [flags]\n  continue a prompt",
	"merge":    "lorac merge FILE.lora --base PATH --adapter DIR -o OUT.safetensors\n  write the base with the adapter merged into its weights",
	"eval":     "lorac eval FILE.lora --base PATH [--adapter DIR] --data PATH [flags]\n  lorac eval FILE.lora --base PATH [--adapter DIR] --tokens IDS --dump-logits OUT.safetensors\n  the loss and perplexity of a text, or the logits of token ids",
	"bench":    "lorac bench FILE.lora [flags]\n  tokens/s of training, forward and KV-cache decoding on random weights",
	"demo":     "lorac demo [flags]\n  train a base and a LoRA adapter on two built-in text domains and show what the adapter does",
}

// Help writes the usage and flags of a driver command to w, as `lorac CMD
// --help` prints them, without a model: the defaults that come from the
// .lora file's train block are described, not shown.
func Help(cmd string, w io.Writer) error {
	if _, ok := synopses[cmd]; !ok {
		return fmt.Errorf("%w: unknown command %q; the commands are %s", errUsage, cmd, strings.Join(Commands, ", "))
	}
	d := &driver{c: &engine.Core{Spec: &engine.ModelSpec{}}, stdout: w, stderr: io.Discard}
	if code := dispatch(d, []string{cmd, "--help"}); code != 0 {
		return fmt.Errorf("lorac: %s: no help (exit %d)", cmd, code)
	}
	return nil
}

// dispatch runs one command and reports its error, prefixed, as an exit
// status.
func dispatch(d *driver, args []string) int {
	var err error
	switch args[0] {
	case "train":
		err = d.train(args[1:])
	case "generate":
		err = d.generate(args[1:])
	case "merge":
		err = d.merge(args[1:])
	case "eval":
		err = d.eval(args[1:])
	case "demo":
		err = d.demo(args[1:])
	case "bench":
		err = d.bench(args[1:])
	default:
		fmt.Fprintf(d.stderr, "lorac: unknown command %q; the commands are %s\n", args[0], strings.Join(Commands, ", "))
		return 2
	}
	var help *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		if err := WriteUsage(d.stdout, synopses[args[0]], help.fs); err != nil {
			fmt.Fprintf(d.stderr, "lorac: %s: %v\n", args[0], err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(d.stderr, Prefix(args[0], err))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

// ErrUsage marks the errors that are mistakes in how a command was called
// (exit status 2), as errors.Is reports them.
var ErrUsage = errUsage

// Prefix is the message of err as lorac prints it: every line starts
// "lorac: CMD: " (with cmd empty, "lorac: ").
func Prefix(cmd string, err error) string {
	p := "lorac: "
	if cmd != "" {
		p += cmd + ": "
	}
	msg := strings.TrimPrefix(err.Error(), "usage: ")
	return p + strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", "\n"+p)
}

// helpRequest is what parseFlags returns for -h or --help: the caller
// prints the flag set's usage and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }

// WriteUsage writes a command's usage: the synopsis (its first line after
// "usage: "), then every flag of fs with its placeholder, meaning and
// default. lorac's own commands print theirs with it too.
func WriteUsage(w io.Writer, synopsis string, fs *flag.FlagSet) error {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", synopsis)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if n == 0 {
			b.WriteString("\nflags:\n")
		}
		n++
		name, usage := flag.UnquoteUsage(f)
		name = strings.ToUpper(name)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(&b, "  %s%s", dash, f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		fmt.Fprintf(&b, "\n        %s", usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	_, err := io.WriteString(w, b.String())
	return err
}

type driver struct {
	m              Runnable
	c              *engine.Core
	stdout, stderr io.Writer
}

// parseFlags parses a command's flags; the commands take no positional
// arguments. -h and --help return a *helpRequest.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{fs}
		}
		return fmt.Errorf("%w: %v; \"lorac %s --help\" lists the flags", errUsage, err, fs.Name())
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q; \"lorac %s --help\" lists the flags", errUsage, fs.Arg(0), fs.Name())
	}
	return nil
}

// loadModel loads the base weights and, if dir is set, an adapter.
func (d *driver) loadModel(base, adapter string) error {
	if base == "" {
		return fmt.Errorf("%w: --base PATH is required (a model.safetensors)", errUsage)
	}
	if err := d.c.LoadBase(base); err != nil {
		return err
	}
	if adapter == "" {
		d.c.Detach()
		return nil
	}
	return d.c.LoadAdapter(adapter)
}

func (d *driver) train(args []string) error {
	spec := d.c.Spec.Train
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	data := fs.String("data", "", "`path` of the training data: text, or JSONL examples (.jsonl), tokenized by --tokenizer")
	valData := fs.String("val-data", "", "`path` of validation data (text or .jsonl), instead of a --val-fraction split")
	chatTemplate := fs.String("chat-template", "", "chat format of JSONL messages records: chatml (default: the tokenizer's)")
	gradAccum := fs.Int("grad-accum", 1, "micro-batches per optimizer step")
	base := fs.String("base", "", "`path` of the base weights (model.safetensors, a sharded .index.json or a model directory); optional with --full")
	steps := fs.Int("steps", spec.Steps, "optimizer steps, where the learning-rate decay ends (the train block's steps unless given)")
	out := fs.String("out", "out", "output `directory`: adapter or model.safetensors, checkpoint, loss.svg")
	resume := fs.Bool("resume", false, "continue the run in --out from its checkpoint")
	overwrite := fs.Bool("overwrite", false, "replace an earlier run's results in --out")
	full := fs.Bool("full", false, "train every base parameter (make a base model) instead of an adapter")
	evalEvery := fs.Int("eval-every", 0, "steps between validation losses and checkpoints (default: steps/10)")
	valFraction := fs.Float64("val-fraction", 0.1, "share of the data held out for validation, in (0, 1)")
	evalBatches := fs.Int("eval-batches", 8, "validation batches per evaluation")
	seed := fs.Uint64("seed", spec.Seed, "seed of initialisation and batch sampling (the train block's seed unless given)")
	tokenizer := fs.String("tokenizer", "", "`path` of a Hugging Face tokenizer.json (default: the one next to --base, else bytes)")
	dev, gpu := deviceFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := d.checkDevice(*dev, *gpu); err != nil {
		return err
	}
	if *data == "" {
		return fmt.Errorf("%w: --data PATH is required", errUsage)
	}
	if *steps <= 0 {
		return fmt.Errorf("%w: --steps %d: want a positive number of steps", errUsage, *steps)
	}
	if bad := firstBad(
		*evalEvery < 0, fmt.Sprintf("--eval-every %d: want 0 (every steps/10) or a positive number of steps", *evalEvery),
		*evalBatches < 1, fmt.Sprintf("--eval-batches %d: want a positive number of batches", *evalBatches),
		!(*valFraction > 0 && *valFraction < 1), fmt.Sprintf("--val-fraction %g: want a share between 0 and 1, such as 0.1", *valFraction),
		!*full && *base == "" && len(d.c.Spec.Adapters) > 0, "LoRA training needs --base PATH (or --full to train a base)",
	); bad != "" {
		return fmt.Errorf("%w: %s", errUsage, bad)
	}
	if !*full && len(d.c.Spec.Adapters) == 0 {
		return fmt.Errorf("%w: the model has no lora block; add one, or train the base with --full", errUsage)
	}
	if *gradAccum < 1 {
		return fmt.Errorf("%w: --grad-accum %d must be at least 1", errUsage, *gradAccum)
	}
	if *valData != "" && flagSet(fs, "val-fraction") {
		return fmt.Errorf("%w: --val-data is the validation set; drop --val-fraction", errUsage)
	}
	if *resume && *overwrite {
		return fmt.Errorf("%w: --resume and --overwrite conflict: --resume continues the run in --out, --overwrite replaces it; give one", errUsage)
	}
	tok, tokName, err := TokenizerFor(*tokenizer, *base, d.c.Spec.Vocab)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.stderr, "tokenizer: %s\n", tokName)
	B, T := spec.Batch, spec.Seq
	dc := &dataConfig{tok: tok, tokPath: tokPath(tokName), chatTemplate: *chatTemplate, B: B, T: T, log: d.stderr}
	trainB, valB, err := dc.trainVal(*data, *valData, *valFraction)
	if err != nil {
		return err
	}
	// The inputs are good; the output must be too before any work is done,
	// and no earlier run's results may be lost by accident.
	release, err := openOut(*out)
	if err != nil {
		return err
	}
	defer release()
	if prev := earlierRun(*out); prev != "" && !*resume {
		if !*overwrite {
			return fmt.Errorf("%w: --out %s holds an earlier run (%s); continue it with --resume, replace it with --overwrite, or choose another --out", errUsage, *out, prev)
		}
		// Replace the whole run up front: a run killed before its first
		// checkpoint must not leave the old checkpoint for --resume.
		for _, name := range runOutputs {
			if err := os.RemoveAll(filepath.Join(*out, name)); err != nil {
				return err
			}
		}
	}
	switch {
	case *full && *base == "":
		d.c.InitBase(*seed)
	default:
		if *base == "" {
			return fmt.Errorf("%w: LoRA training wants --base PATH (or --full to train a base)", errUsage)
		}
		if err := d.c.LoadBase(*base); err != nil {
			return err
		}
		d.c.BaseName = baseDir(*base)
	}
	if !*full {
		d.c.InitAdapter(*seed)
	}
	d.c.SetOptimizer(engine.Optimizer{})
	rng := engine.NewRNG(*seed)
	ckpt := filepath.Join(*out, "checkpoint")
	var st trainerState
	if *resume {
		if st, err = loadCheckpoint(d.c, ckpt, *full, rng); err != nil {
			return err
		}
		if st.Step > *steps {
			return fmt.Errorf("%s: the checkpoint is at step %d, past --steps %d", ckpt, st.Step, *steps)
		}
		if a := max(st.GradAccum, 1); a != *gradAccum {
			return fmt.Errorf("%w: the checkpoint in %s was trained with --grad-accum %d; resume with the same", errUsage, ckpt, a)
		}
		if eb, ok := trainB.(*ExampleBatcher); ok {
			if err := eb.setOrderState(st.DataOrder); err != nil {
				return fmt.Errorf("%s: %v", ckpt, err)
			}
		}
	}
	res, err := d.loop(loop{train: trainB, val: valB, steps: *steps, every: *evalEvery, evalBatches: *evalBatches,
		full: *full, rng: rng, out: *out, state: st, resumed: *resume, accum: *gradAccum})
	if err != nil {
		return err
	}
	first, last := res.ValLoss[0], res.ValLoss[len(res.ValLoss)-1]
	fmt.Fprintf(d.stdout, "validation loss %.4f → %.4f (perplexity %.2f → %.2f)\n", first, last, math.Exp(first), math.Exp(last))
	saved := filepath.Join(*out, "model.safetensors")
	if !*full {
		saved = filepath.Join(*out, format.PEFTWeightsFile) + " + " + format.PEFTConfigFile
	}
	fmt.Fprintf(d.stdout, "wrote %s, %s, %s\n", saved, filepath.Join(*out, LossPlotFile), ckpt)
	return nil
}

// loop is one training run's settings.
type loop struct {
	train, val   batches
	accum        int // micro-batches per step (0 or 1: one)
	steps, every int
	evalBatches  int
	full         bool
	rng          *engine.RNG
	out          string
	state        trainerState // of a resumed run
	resumed      bool
}

// StopAfter, when positive, ends a training run right after that many
// optimizer steps, as if it had been killed there: the adapter and loss plot
// are not written and the checkpoint is the last one saved. It is for tests
// of --resume, which must simulate a run interrupted midway.
var StopAfter int

// diverged is the error that stops a run whose loss at step is NaN or Inf:
// the checkpoint is left as it was, the last one a finite loss wrote.
func diverged(step int, what string, loss float64, ckpt string, st trainerState) error {
	kept := "no checkpoint was written (lower the learning rate, raise warmup or set clip, and train again)"
	if n := len(st.ValSteps); n > 1 {
		kept = fmt.Sprintf("the last good checkpoint, at step %d, is kept in %s (lower the learning rate and --resume from it, or train again)", st.ValSteps[n-1], ckpt)
	}
	return fmt.Errorf("step %d: the %s is %v: training diverged and stopped; %s", step, what, loss, kept)
}

// loop trains until o.steps optimizer updates are done, evaluating and
// checkpointing every o.every steps, then saves the result (the adapter, or
// the base with full) with its loss curve into o.out. The caller holds the
// lock of o.out (openOut).
func (d *driver) loop(o loop) (trainerState, error) {
	if err := removeStale(o.out); err != nil {
		return o.state, err
	}
	st := o.state
	// The learning-rate schedule follows this run's length; a resumed run
	// keeps the one its checkpoint started with (the .lora's own for a
	// checkpoint older than the schedule fields), so resuming is bit-exact.
	ms := *d.c.Spec
	switch {
	case !o.resumed:
		ms.Train = ms.Train.ForRun(o.steps)
		st.ScheduleSteps, st.ScheduleWarmup = ms.Train.Steps, ms.Train.Warmup
	case st.ScheduleSteps > 0:
		ms.Train.Steps, ms.Train.Warmup = st.ScheduleSteps, st.ScheduleWarmup
	}
	d.c.Spec = &ms
	spec := ms.Train
	B, T := spec.Batch, spec.Seq
	ckpt := filepath.Join(o.out, "checkpoint")
	every := o.every
	if every <= 0 {
		every = max(1, o.steps/10)
	}
	step := func(in, tg []int32) (float32, error) {
		if o.full {
			return d.m.TrainStepFull(in, tg)
		}
		return d.m.TrainStep(in, tg)
	}
	val := func() (float64, error) {
		l, _, err := evalLoss(d.m, o.val, B, T, o.evalBatches)
		return l, err
	}
	accum := max(o.accum, 1)
	st.GradAccum = 0
	if accum > 1 {
		st.GradAccum = accum
	}
	if len(st.ValSteps) == 0 {
		v, err := val()
		if err != nil {
			return st, err
		}
		st.ValSteps, st.ValLoss = []int{0}, []float64{v}
	}
	what := fmt.Sprintf("LoRA on %d modules, %d trainable parameters", len(d.c.Spec.Adapters), len(d.c.LoRA))
	if o.full {
		what = fmt.Sprintf("every base parameter, %d", len(d.c.Base))
	}
	batch := fmt.Sprintf("batch %d × %d", B, T)
	if accum > 1 {
		batch = fmt.Sprintf("%d micro-batches of %d × %d per step", accum, B, T)
	}
	fmt.Fprintf(d.stderr, "training %s (%s): %s, %d steps from step %d\n", d.c.Spec.Name, what, batch, o.steps, d.c.Opt.Step)
	in, tg := make([]int32, accum*B*T), make([]int32, accum*B*T)
	if accum > 1 {
		// Token-weighted: micro-batch k's gradients count by its share of
		// the step's counted targets, so the step equals one batch of
		// accum·B rows.
		step = func(in, tg []int32) (float32, error) {
			n := B * T
			total := kern.CountTargets(tg)
			var sum float64
			for k := range accum {
				c := kern.CountTargets(tg[k*n : (k+1)*n])
				w := float32(0)
				if total > 0 {
					w = float32(c) / float32(total)
				}
				l, err := d.c.Accumulate(in[k*n:(k+1)*n], tg[k*n:(k+1)*n], w, k, o.full)
				if err != nil {
					return 0, err
				}
				sum += float64(l) * float64(c)
			}
			if _, err := d.c.ApplyGradients(o.full); err != nil {
				return 0, err
			}
			if total == 0 {
				return 0, nil
			}
			return float32(sum / float64(total)), nil
		}
	}
	prog := NewProgress(d.stderr, o.steps, "train")
	start := d.c.Opt.Step
	for s := d.c.Opt.Step; s < o.steps; s++ {
		for k := range accum {
			o.train.Next(o.rng, in[k*B*T:(k+1)*B*T], tg[k*B*T:(k+1)*B*T])
		}
		loss, err := step(in, tg)
		if err != nil {
			return st, err
		}
		if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
			return st, diverged(s+1, "loss", float64(loss), ckpt, st)
		}
		st.TrainLoss = append(st.TrainLoss, float64(loss))
		prog.Update(s+1, float64(loss), int64(s+1-start)*int64(accum*B*T))
		if (s+1)%every == 0 || s+1 == o.steps {
			v, err := val()
			if err != nil {
				return st, err
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				// The update after a finite loss broke the weights: do not
				// replace the last good checkpoint with them.
				return st, diverged(s+1, "validation loss", v, ckpt, st)
			}
			st.ValSteps, st.ValLoss = append(st.ValSteps, s+1), append(st.ValLoss, v)
			if eb, ok := o.train.(*ExampleBatcher); ok {
				st.DataOrder = eb.orderState()
			}
			if err := saveCheckpoint(d.c, ckpt, o.full, o.rng, st); err != nil {
				return st, err
			}
		}
		if StopAfter > 0 && s+1 == StopAfter {
			prog.Done()
			return st, nil
		}
	}
	prog.Done()
	if o.full {
		if err := d.saveBase(o.out); err != nil {
			return st, err
		}
	} else if err := d.c.SaveAdapter(o.out); err != nil {
		return st, err
	}
	if len(st.TrainLoss) > 0 {
		what := "the LoRA adapter"
		if o.full {
			what = "every parameter"
		}
		title := fmt.Sprintf("%s: loss, training %s", d.c.Spec.Name, what)
		if err := WriteLossSVG(filepath.Join(o.out, LossPlotFile), title, st.TrainLoss, st.ValSteps, st.ValLoss); err != nil {
			return st, err
		}
	}
	return st, nil
}

// baseDir is the directory of the base weights at path (path itself when it
// is a directory): what PEFT's base_model_name_or_path should name.
func baseDir(path string) string {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return filepath.Dir(path)
	}
	return path
}

// saveBase writes the base weights to dir/model.safetensors and, where
// transformers can express the architecture, its config.json beside them,
// so dir loads with AutoModelForCausalLM.from_pretrained.
func (d *driver) saveBase(dir string) error {
	if err := d.c.SaveBase(filepath.Join(dir, "model.safetensors")); err != nil {
		return err
	}
	if d.c.Spec.HFConfig == "" {
		return nil
	}
	return format.WriteFileAtomic(filepath.Join(dir, "config.json"), func(w io.Writer) error {
		_, err := io.WriteString(w, d.c.Spec.HFConfig)
		return err
	})
}

func (d *driver) generate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	base := fs.String("base", "", "`path` of the base weights (model.safetensors, a sharded .index.json or a model directory)")
	adapter := fs.String("adapter", "", "PEFT adapter `directory` (default: none, the base alone)")
	merge := fs.Bool("merge", false, "merge the adapter into the weights before generating")
	prompt := fs.String("prompt", "", "`text` to continue")
	n := fs.Int("tokens", 200, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature, ≥ 0 (0: greedy)")
	topK := fs.Int("top-k", 40, "sample among the k most likely tokens, ≥ 0 (0: all)")
	topP := fs.Float64("top-p", 0.95, "sample within this probability mass, in (0, 1] (1: all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	tokenizer := fs.String("tokenizer", "", "`path` of a Hugging Face tokenizer.json (default: the one next to --base, else bytes)")
	chat := fs.Bool("chat", false, "the prompt is a user's message: render it with the chat template, print the assistant's reply")
	chatTemplate := fs.String("chat-template", "", "with --chat: chatml or a .jinja `file` (default: the tokenizer's template)")
	dev, gpu := deviceFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := d.checkDevice(*dev, *gpu); err != nil {
		return err
	}
	if *chatTemplate != "" && !*chat {
		return fmt.Errorf("%w: --chat-template needs --chat", errUsage)
	}
	if *prompt == "" {
		return fmt.Errorf("%w: --prompt TEXT is required", errUsage)
	}
	if bad := firstBad(
		*n < 0, fmt.Sprintf("--tokens %d: want 0 or more tokens", *n),
		!(*temp >= 0) || math.IsInf(*temp, 1), fmt.Sprintf("--temperature %g: want 0 (greedy) or more", *temp),
		*topK < 0, fmt.Sprintf("--top-k %d: want 0 (all tokens) or more", *topK),
		!(*topP > 0 && *topP <= 1), fmt.Sprintf("--top-p %g: want a probability mass in (0, 1], 1 for all tokens", *topP),
		*merge && *adapter == "", "--merge needs --adapter DIR: there is nothing to merge without one",
	); bad != "" {
		return fmt.Errorf("%w: %s", errUsage, bad)
	}
	if err := d.loadModel(*base, *adapter); err != nil {
		return err
	}
	if *merge {
		if err := d.c.Merge(); err != nil {
			return err
		}
	}
	tok, tokName, err := TokenizerFor(*tokenizer, *base, d.c.Spec.Vocab)
	if err != nil {
		return err
	}
	sampler := engine.Sampler{Temperature: *temp, TopK: *topK, TopP: *topP}
	text, endOfTurn := *prompt, ""
	if *chat {
		if text, endOfTurn, sampler.Stop, err = chatPrompt(tok, tokPath(tokName), *chatTemplate, *prompt); err != nil {
			return err
		}
	}
	ids := tok.Encode(text)
	if len(ids) == 0 {
		return fmt.Errorf("%w: the prompt encodes to no tokens", errUsage)
	}
	start := time.Now()
	out, err := d.m.Generate(ids, *n, sampler, engine.NewRNG(*seed))
	if err != nil {
		return err
	}
	if *chat {
		fmt.Fprintln(d.stdout, chatReply(tok, out[len(ids):], sampler.Stop, endOfTurn))
	} else {
		fmt.Fprintln(d.stdout, tok.Decode(out))
	}
	if el, k := time.Since(start).Seconds(), len(out)-len(ids); el > 0 && k > 0 {
		fmt.Fprintf(d.stderr, "%d tokens in %.2fs (%.1f tokens/s)\n", k, el, float64(k)/el)
	}
	return nil
}

func (d *driver) merge(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	base := fs.String("base", "", "`path` of the base weights (model.safetensors, a sharded .index.json or a model directory)")
	adapter := fs.String("adapter", "", "PEFT adapter `directory` to merge")
	out := fs.String("o", "", "merged weights to write (a new .safetensors `file`)")
	dev, gpu := deviceFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := d.checkDevice(*dev, *gpu); err != nil {
		return err
	}
	if bad := firstBad(*base == "", "--base PATH is required", *adapter == "", "--adapter DIR is required", *out == "", "-o OUT.safetensors is required"); bad != "" {
		return fmt.Errorf("%w: %s", errUsage, bad)
	}
	if err := CheckOutFile("-o", *out, *base, *adapter); err != nil {
		return err
	}
	if err := d.loadModel(*base, *adapter); err != nil {
		return err
	}
	if err := d.c.Merge(); err != nil {
		return err
	}
	if err := d.c.SaveBase(*out); err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "wrote %s\n", *out)
	return nil
}

func (d *driver) eval(args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	base := fs.String("base", "", "`path` of the base weights (model.safetensors, a sharded .index.json or a model directory)")
	adapter := fs.String("adapter", "", "PEFT adapter `directory` (default: none, the base alone)")
	data := fs.String("data", "", "`path` of data to score: text (every full batch of it) or JSONL examples (.jsonl, trained tokens only)")
	chatTemplate := fs.String("chat-template", "", "chat format of JSONL messages records: chatml (default: the tokenizer's)")
	tokens := fs.String("tokens", "", "comma-separated token `ids` to run forward (with --dump-logits)")
	dump := fs.String("dump-logits", "", "with --tokens: write the logits [T, V] to this safetensors `file`")
	tokenizer := fs.String("tokenizer", "", "`path` of a Hugging Face tokenizer.json for --data (default: the one next to --base, else bytes)")
	dev, gpu := deviceFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := d.checkDevice(*dev, *gpu); err != nil {
		return err
	}
	if bad := firstBad(
		*data != "" && *tokens != "", "--data and --tokens conflict: --data scores a text, --tokens runs token ids forward; give one",
		*data == "" && *tokens == "", "give --data PATH (loss and perplexity) or --tokens 1,2,3 with --dump-logits OUT.safetensors",
		*dump != "" && *data != "", "--dump-logits and --data conflict: --dump-logits writes the logits of --tokens; drop it or use --tokens",
		*tokenizer != "" && *tokens != "", "--tokenizer and --tokens conflict: --tokens are token ids already; drop --tokenizer",
		*tokens != "" && *dump == "", "--tokens needs --dump-logits OUT.safetensors",
	); bad != "" {
		return fmt.Errorf("%w: %s", errUsage, bad)
	}
	if *dump != "" {
		if err := CheckOutFile("--dump-logits", *dump, *base, *adapter); err != nil {
			return err
		}
	}
	var ids []int32
	if *tokens != "" {
		for _, f := range strings.Split(*tokens, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil || v < 0 {
				return fmt.Errorf("%w: --tokens: %q is not a token id (a number ≥ 0)", errUsage, f)
			}
			ids = append(ids, int32(v))
		}
	}
	if err := d.loadModel(*base, *adapter); err != nil {
		return err
	}
	if *tokens != "" {
		logits, err := d.m.Forward(ids)
		if err != nil {
			return err
		}
		V := d.c.Spec.Vocab
		if err := format.WriteSafetensors(*dump, []format.WriteTensor{{Name: "logits", Shape: []int{len(ids), V}, Data: logits}}, nil); err != nil {
			return err
		}
		fmt.Fprintf(d.stdout, "wrote logits [%d, %d] to %s\n", len(ids), V, *dump)
		return nil
	}
	r, err := EvalData(d.m, *data, *tokenizer, *base, *chatTemplate, d.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.stdout, "loss %.4f perplexity %.2f (%d batches of %d × %d, %d tokens scored)\n", r.Loss, math.Exp(r.Loss), r.Batches, d.c.Spec.Train.Batch, d.c.Spec.Train.Seq, r.Tokens)
	return nil
}

// deviceFlags adds --device and --gpu to a command that runs the model.
// The lorac command reads them to choose where the model runs: --device
// cuda runs it in the lorac process on a GPU (an engine.Executor), the CPU
// in the compiled model program.
func deviceFlags(fs *flag.FlagSet) (dev *string, gpu *int) {
	dev = fs.String("device", "cpu", "where the model runs: cpu, or cuda (a GPU, with the weights, adapter and optimizer resident there)")
	gpu = fs.Int("gpu", 0, "with --device cuda: the GPU's ordinal")
	return dev, gpu
}

// checkDevice checks --device and --gpu against where this core runs: a
// model program (no executor) runs on the CPU; lorac runs --device cuda
// itself.
func (d *driver) checkDevice(dev string, gpu int) error {
	onDevice := d.c.Executor() != nil
	switch {
	case dev != "cpu" && dev != "cuda":
		return fmt.Errorf("%w: --device %q: want cpu or cuda", errUsage, dev)
	case gpu < 0:
		return fmt.Errorf("%w: --gpu %d: want a GPU ordinal, 0 or more", errUsage, gpu)
	case gpu != 0 && dev != "cuda":
		return fmt.Errorf("%w: --gpu needs --device cuda", errUsage)
	case dev == "cuda" && !onDevice:
		return fmt.Errorf("%w: --device cuda: this program runs the model on the CPU; the lorac command runs it on a GPU (lorac CMD FILE.lora --device cuda)", errUsage)
	case dev == "cpu" && onDevice:
		return fmt.Errorf("%w: the model is on a CUDA device; --device cpu runs it in the model program", errUsage)
	}
	return nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// tokPath is the tokenizer.json TokenizerFor chose, "" for bytes.
func tokPath(name string) string {
	if name == "bytes" {
		return ""
	}
	return name
}

// firstBad takes pairs of a condition and a message and returns the message
// of the first true condition, or "".
func firstBad(pairs ...any) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i].(bool) {
			return pairs[i+1].(string)
		}
	}
	return ""
}
