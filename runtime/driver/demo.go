package driver

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// demo tells the whole LoRA story on the compiled model, in one process:
// train a base on one text domain, train an adapter on a second domain,
// and show that the adapter helps there, that the base is untouched when the
// adapter is detached, that merged and unmerged outputs agree, and that the
// adapter round-trips through its PEFT files.
func (d *driver) demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	out := fs.String("out", "lorac-demo", "output directory")
	baseSteps := fs.Int("base-steps", 300, "steps of base training (domain: a ship's log)")
	loraSteps := fs.Int("lora-steps", 200, "steps of adapter training (domain: recipes)")
	tokens := fs.Int("tokens", 120, "tokens to generate before and after")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(d.c.Spec.Adapters) == 0 {
		return fmt.Errorf("%w: the demo needs a model with a lora block", errUsage)
	}
	release, err := openOut(*out)
	if err != nil {
		return err
	}
	defer release()
	spec := d.c.Spec.Train
	B, T := spec.Batch, spec.Seq
	say := func(format string, args ...any) { fmt.Fprintf(d.stdout, format+"\n", args...) }
	data := func(kind string, seed uint64) (*Batcher, *Batcher, error) {
		text, err := Corpus(kind, 400_000, seed)
		if err != nil {
			return nil, nil, err
		}
		path := filepath.Join(*out, "data", kind+".txt")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return nil, nil, err
		}
		var tok tok.ByteTokenizer
		ds := SplitTokens(tok.Encode(text), 0.1)
		tr, err := NewBatcher(ds.Train, B, T)
		if err != nil {
			return nil, nil, err
		}
		va, err := NewBatcher(ds.Val, B, T)
		return tr, va, err
	}
	logTrain, logVal, err := data("log", 1)
	if err != nil {
		return err
	}
	recTrain, recVal, err := data("recipe", 2)
	if err != nil {
		return err
	}

	say("1. A base model: %s (%s, %d parameters), trained from scratch on a ship's log.", d.c.Spec.Name, d.c.Spec.Arch, len(d.c.Base))
	d.c.InitBase(spec.Seed)
	d.c.Detach()
	baseDir := filepath.Join(*out, "base")
	if _, err := d.loop(loop{train: logTrain, val: logVal, steps: *baseSteps, evalBatches: 4, full: true, rng: engine.NewRNG(spec.Seed), out: baseDir}); err != nil {
		return err
	}
	d.c.Opt = engine.Optimizer{}
	baseFile := filepath.Join(baseDir, "model.safetensors")
	say("   saved %s", baseFile)

	prompt := "Recipe 12: "
	sample := func() (string, error) {
		var tok tok.ByteTokenizer
		ids, err := d.m.Generate(tok.Encode(prompt), *tokens, engine.Sampler{Temperature: 0.5, TopK: 10}, engine.NewRNG(7))
		return tok.Decode(ids), err
	}
	before, err := sample()
	if err != nil {
		return err
	}
	recipeBefore, _, err := evalLoss(d.m, recVal, B, T, 4)
	if err != nil {
		return err
	}
	probeText, err := Corpus("recipe", 4*d.c.Spec.Context, 99)
	if err != nil {
		return err
	}
	probe := tok.ByteTokenizer{}.Encode(probeText)[:d.c.Spec.Context]
	baseLogits, err := d.forward(probe)
	if err != nil {
		return err
	}
	say("\n2. Before the adapter, on recipes: validation loss %.4f. Generated from %q:\n%s", recipeBefore, prompt, indent(before))

	say("\n3. A LoRA adapter on recipes: %d modules, %d trainable parameters (%.2f%% of the base).",
		len(d.c.Spec.Adapters), len(d.c.LoRA), 100*float64(len(d.c.LoRA))/float64(len(d.c.Base)))
	d.c.Attach()
	d.c.InitAdapter(spec.Seed + 1)
	adapterDir := filepath.Join(*out, "adapter")
	st, err := d.loop(loop{train: recTrain, val: recVal, steps: *loraSteps, evalBatches: 4, rng: engine.NewRNG(spec.Seed + 1), out: adapterDir})
	if err != nil {
		return err
	}
	after, err := sample()
	if err != nil {
		return err
	}
	recipeAfter := st.ValLoss[len(st.ValLoss)-1]
	say("\n4. With the adapter, on recipes: validation loss %.4f → %.4f. Generated from %q:\n%s", recipeBefore, recipeAfter, prompt, indent(after))
	if !(recipeAfter < recipeBefore) {
		return fmt.Errorf("the adapter did not lower the validation loss (%.4f → %.4f)", recipeBefore, recipeAfter)
	}

	unmerged, err := d.forward(probe)
	if err != nil {
		return err
	}
	d.c.Detach()
	detached, err := d.forward(probe)
	if err != nil {
		return err
	}
	d.c.Attach()
	same := slices.Equal(detached, baseLogits)
	say("\n5. Adapter detached: the logits are the base model's, bit for bit: %v (max difference %g).", same, maxAbsDiff(detached, baseLogits))
	if !same {
		return fmt.Errorf("detaching the adapter did not give back the base model")
	}
	if err := d.c.Merge(); err != nil {
		return err
	}
	merged, err := d.forward(probe)
	if err != nil {
		return err
	}
	if err := d.c.Unmerge(); err != nil {
		return err
	}
	rel := maxAbsDiff(merged, unmerged) / math.Max(maxAbs(unmerged), 1e-30)
	say("6. Adapter merged into the weights (W + s·B·A): logits match the unmerged adapter to %.1e relative.", rel)
	if rel > 1e-5 {
		return fmt.Errorf("merged and unmerged logits differ by %g", rel)
	}

	if err := d.c.LoadAdapter(adapterDir); err != nil {
		return err
	}
	reloaded, err := d.forward(probe)
	if err != nil {
		return err
	}
	say("7. The adapter reloaded from its PEFT files gives the same logits: %v.", slices.Equal(reloaded, unmerged))
	say("\nFiles in %s:", adapterDir)
	entries, err := os.ReadDir(adapterDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			say("  %-28s %9d bytes", e.Name(), info.Size())
		}
	}
	say("Load it with PEFT: PeftModel.from_pretrained(model, %q)", adapterDir)
	return nil
}

// forward returns a copy of the logits of tokens (Forward's result is a
// view into the arena).
func (d *driver) forward(tokens []int32) ([]float32, error) {
	l, err := d.m.Forward(tokens)
	return slices.Clone(l), err
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func maxAbs(a []float32) float64 {
	var m float64
	for _, v := range a {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

func indent(s string) string { return "   | " + strings.ReplaceAll(s, "\n", "\n   | ") }
