package driver

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/format"
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
	baseSteps := fs.Int("base-steps", 500, "steps of base training (domain: a ship's log)")
	baseLR := fs.Float64("base-lr", 3e-3, "peak learning rate of base training (the adapter uses the train block's lr)")
	loraSteps := fs.Int("lora-steps", d.c.Spec.Train.Steps, "steps of adapter training (domain: recipes)")
	const prompt = "Recipe 12: "
	tokens := fs.Int("tokens", d.c.Spec.Context-len(prompt), "tokens to generate before and after (prompt and tokens fit the context)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(d.c.Spec.Adapters) == 0 {
		return fmt.Errorf("%w: the demo needs a model with a lora block", errUsage)
	}
	if *baseSteps <= 0 || *loraSteps <= 0 || !(*baseLR > 0) {
		return fmt.Errorf("%w: --base-steps, --lora-steps and --base-lr must be positive", errUsage)
	}
	if *tokens <= 0 || len(prompt)+*tokens > d.c.Spec.Context {
		return fmt.Errorf("%w: --tokens %d: the prompt (%d tokens) and the generated tokens must fit the context of %d", errUsage, *tokens, len(prompt), d.c.Spec.Context)
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

	// The base is pretrained at its own rate; the adapter then trains with
	// the .lora's train block, as lorac train would.
	loraSpec := d.c.Spec
	baseSpec := *d.c.Spec
	baseSpec.Train.LR = *baseLR
	d.c.Spec = &baseSpec
	say("1. A base model: %s (%s, %d parameters), trained from scratch on a ship's log (%d steps of %d × %d bytes).",
		d.c.Spec.Name, d.c.Spec.Arch, len(d.c.Base), *baseSteps, B, T)
	d.c.InitBase(spec.Seed)
	d.c.Detach()
	baseDir := filepath.Join(*out, "base")
	if _, err := d.loop(loop{train: logTrain, val: logVal, steps: *baseSteps, evalBatches: 4, full: true, rng: engine.NewRNG(spec.Seed), out: baseDir}); err != nil {
		return err
	}
	d.c.Spec = loraSpec
	d.c.SetOptimizer(engine.Optimizer{})
	// The demo never resumes: its checkpoints would only weigh down the
	// directories a user hands to transformers and PEFT.
	if err := os.RemoveAll(filepath.Join(baseDir, "checkpoint")); err != nil {
		return err
	}
	logLoss, _, err := evalLoss(d.m, logVal, B, T, 4)
	if err != nil {
		return err
	}
	say("   validation loss on the log %.4f; saved %s", logLoss, baseDir)

	sample := func() (string, error) {
		var tok tok.ByteTokenizer
		ids, err := d.m.Generate(tok.Encode(prompt), *tokens, engine.Sampler{Temperature: 0.3, TopK: 10}, engine.NewRNG(7))
		return wholeLines(tok.Decode(ids)), err
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
	say("\n2. Before the adapter, on recipes: validation loss %.4f. Sampled from %q:\n%s", recipeBefore, prompt, indent(before))

	total := len(d.c.Base) + len(d.c.LoRA)
	say("\n3. A LoRA adapter on recipes: %d modules, %d trainable parameters (%.4f%% of %d), %d steps.",
		len(d.c.Spec.Adapters), len(d.c.LoRA), 100*float64(len(d.c.LoRA))/float64(total), total, *loraSteps)
	d.c.Attach()
	d.c.InitAdapter(spec.Seed + 1)
	d.c.BaseName = baseDir
	adapterDir := filepath.Join(*out, "adapter")
	st, err := d.loop(loop{train: recTrain, val: recVal, steps: *loraSteps, evalBatches: 4, rng: engine.NewRNG(spec.Seed + 1), out: adapterDir})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(adapterDir, "checkpoint")); err != nil {
		return err
	}
	after, err := sample()
	if err != nil {
		return err
	}
	recipeAfter := st.ValLoss[len(st.ValLoss)-1]
	say("\n4. With the adapter, on recipes: validation loss %.4f → %.4f. Sampled from %q:\n%s", recipeBefore, recipeAfter, prompt, indent(after))
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
	if err := writePEFTCheck(*out, probe, unmerged, d.c.Spec.Vocab, prompt); err != nil {
		return err
	}
	for _, dir := range []string{baseDir, adapterDir} {
		say("\nFiles in %s:", dir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && !e.IsDir() {
				say("  %-28s %9d bytes", e.Name(), info.Size())
			}
		}
	}
	say("\nLoad them with transformers + PEFT (needs torch, transformers, peft):\n  python3 %s", filepath.Join(*out, peftCheckScript))
	return nil
}

// wholeLines cuts generated text after its last complete line (or, with no
// line break, its last sentence), so a sample does not end mid-word.
func wholeLines(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	if i := strings.LastIndex(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

const peftCheckScript = "load_with_peft.py"

// writePEFTCheck writes a Python script into dir that loads the demo's base
// (dir/base: config.json and model.safetensors) with transformers and its
// adapter (dir/adapter) with PEFT, compares PEFT's logits on the probe with
// lorac's (saved beside it) and samples greedily from the prompt.
func writePEFTCheck(dir string, probe []int32, logits []float32, vocab int, prompt string) error {
	err := format.WriteSafetensors(filepath.Join(dir, "adapter-logits.safetensors"),
		[]format.WriteTensor{{Name: "logits", Shape: []int{len(probe), vocab}, Data: logits}}, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	ids := make([]string, len(probe))
	for i, t := range probe {
		ids[i] = strconv.Itoa(int(t))
	}
	script := fmt.Sprintf(peftCheckSource, strings.Join(ids, ", "), prompt, len(probe)-len(prompt))
	return format.WriteFileAtomic(filepath.Join(dir, peftCheckScript), func(w io.Writer) error {
		_, err := io.WriteString(w, script)
		return err
	})
}

// peftCheckSource is the script writePEFTCheck writes; its verbs are the
// probe's token ids, the prompt and how many tokens to generate.
const peftCheckSource = `# Written by lorac demo: loads the demo's base model with transformers and
# its adapter with PEFT, checks that PEFT computes the logits lorac computed
# on a probe, and continues the demo's prompt greedily.
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
base = AutoModelForCausalLM.from_pretrained(os.path.join(here, "base"))
model = PeftModel.from_pretrained(base, os.path.join(here, "adapter")).eval()
probe = torch.tensor([[%s]])
with torch.no_grad():
    logits = model(probe).logits[0]
want = load_file(os.path.join(here, "adapter-logits.safetensors"))["logits"]
rel = ((logits - want).abs().max() / want.abs().max()).item()
print(f"PEFT's logits match lorac's to {rel:.1e} relative")
prompt = %q.encode()
ids = torch.tensor([list(prompt)])
with torch.no_grad():
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=%d,
                         do_sample=False, pad_token_id=0)
print("PEFT, greedy:", bytes(out[0].tolist()).decode("utf-8", "replace"))
sys.exit(0 if rel < 1e-4 else 1)
`

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
