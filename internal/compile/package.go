package compile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/format"
)

// graphFor lowers cfg and runs the pipeline. noAdapters drops the lora
// blocks (the base model).
func graphFor(cfg *dsl.Config, mode graph.Mode, noAdapters, decode bool, pc passes.Config) (*graph.Graph, error) {
	g, err := dsl.Lower(cfg, dsl.LowerOptions{Mode: mode, Decode: decode})
	if err != nil {
		return nil, err
	}
	if noAdapters {
		g.Adapters = nil
	}
	if err := passes.Run(g, pc); err != nil {
		return nil, err
	}
	return g, nil
}

// Spec compiles every graph a generated package runs.
func Spec(cfg *dsl.Config, pkg, source string) (*codegen.Spec, error) {
	m, t := cfg.Model, cfg.Train
	s := &codegen.Spec{
		Package: pkg,
		Source:  source,
		Model: codegen.Model{Name: m.Name, Arch: m.Arch, Vocab: m.Vocab, Context: m.Context, Dim: m.Dim,
			Layers: m.Layers, Heads: m.Heads, KVHeads: m.KVHeads, FFN: m.FFN},
		Train: codegen.Train{Batch: t.Batch, Seq: t.Seq, Steps: t.Steps, Warmup: t.Warmup, LR: t.LR, Clip: t.Clip,
			WeightDecay: t.WeightDecay, Schedule: t.Schedule, Seed: t.Seed},
	}
	if hf, err := m.HFConfig(); err == nil {
		s.HFConfig = string(hf)
	}
	for _, tg := range cfg.Targets {
		switch tg.Kind {
		case "cpu":
			s.Targets.ISAs = tg.ISA
		case "cuda":
			s.Targets.CUDAArchs = tg.Arch
		}
	}
	type job struct {
		dst        **graph.Graph
		mode       graph.Mode
		noAdapters bool
		decode     bool
		pc         passes.Config
	}
	noMerge := passes.Config{Disable: map[string]bool{"MergeLoRA": true}}
	jobs := []job{
		{&s.TrainFull, graph.Train, true, false, passes.Config{Full: true}},
		{&s.EvalBase, graph.Eval, true, false, passes.Config{}},
		{&s.ForwardBase, graph.Infer, true, false, noMerge},
		{&s.DecodeBase, graph.Infer, true, true, noMerge},
	}
	if len(cfg.LoRA) > 0 {
		jobs = append(jobs,
			job{&s.TrainLoRA, graph.Train, false, false, passes.Config{}},
			job{&s.EvalLoRA, graph.Eval, false, false, passes.Config{}},
			job{&s.ForwardLoRA, graph.Infer, false, false, noMerge},
			job{&s.DecodeLoRA, graph.Infer, false, true, noMerge},
		)
	}
	for _, j := range jobs {
		g, err := graphFor(cfg, j.mode, j.noAdapters, j.decode, j.pc)
		if err != nil {
			return nil, err
		}
		*j.dst = g
	}
	rows, err := RowsGraph(cfg, cfg.Serve.Rows)
	if err != nil {
		return nil, err
	}
	s.DecodeRows = rows
	if s.PrefillRows, err = PrefillGraph(cfg, cfg.Serve.Prefill); err != nil {
		return nil, err
	}
	return s, nil
}

// PrefillGraph compiles the prefill graph: the decoding graph of one
// sequence for chunk new tokens at once, its caches one row's slot of the
// rows graph's (inputs renamed codegen.SlotPrefix…), and with lora blocks
// lora_linear_rows, every token row given the sequence's adapter.
func PrefillGraph(cfg *dsl.Config, chunk int) (*graph.Graph, error) {
	return rowAdapterGraph(cfg, dsl.LowerOptions{Mode: graph.Infer, Decode: true, Batch: 1, Seq: chunk},
		codegen.SlotPrefix, "the prefill graph")
}

// RowsGraph compiles the rows graph: one decoding step for a batch of rows,
// each with its own KV cache (inputs renamed codegen.RowsPrefix…, so they
// live in their own store) and, when the model has lora blocks, its own
// adapter (lora_linear_rows: the base products once over all rows, each
// row's branch from its own adapter store).
func RowsGraph(cfg *dsl.Config, rows int) (*graph.Graph, error) {
	return rowAdapterGraph(cfg, dsl.LowerOptions{Mode: graph.Infer, Decode: true, Batch: rows},
		codegen.RowsPrefix, "the rows graph")
}

// rowAdapterGraph lowers a decoding graph whose caches are inputs renamed
// prefix… (a store of their own) and whose rows take their adapters at run
// time (lora_linear_rows; no branch may stay unfused, which would share
// one adapter across rows).
func rowAdapterGraph(cfg *dsl.Config, opts dsl.LowerOptions, prefix, what string) (*graph.Graph, error) {
	g, err := dsl.Lower(cfg, opts)
	if err != nil {
		return nil, err
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			v.Name = prefix + v.Name
		}
	}
	g.RowAdapters = len(g.Adapters) > 0
	if err := passes.Run(g, passes.Config{Disable: map[string]bool{"MergeLoRA": true}}); err != nil {
		return nil, err
	}
	for _, n := range g.Nodes {
		if n.Op == graph.OpLoRA || n.Op == graph.OpLoRALinear {
			return nil, fmt.Errorf("%s has an unfused %s for %s, which would share one adapter across rows", what, n.Op, n.Module)
		}
	}
	return g, nil
}

// PackageName derives a Go package name from a model name: "bench-tiny" →
// "bench_tiny", "GPT2" → "gpt2".
func PackageName(model string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(model) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9' && b.Len() > 0:
			b.WriteRune(r)
		case b.Len() > 0:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "model"
	}
	return b.String()
}

// Generate compiles the .lora file at path into Go source files.
func Generate(path, pkg string) ([]codegen.File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return GenerateSource(path, src, pkg)
}

// GenerateSource compiles .lora source into Go source files.
func GenerateSource(path string, src []byte, pkg string) ([]codegen.File, error) {
	cfg, err := LoadSource(path, src)
	if err != nil {
		return nil, err
	}
	return GenerateConfig(cfg, path, src, pkg)
}

// GenerateConfig compiles a checked config, read from path whose text is
// src, into Go source files (a target cuda block embeds src in the
// package's codegen.DeviceFile).
func GenerateConfig(cfg *dsl.Config, path string, src []byte, pkg string) ([]codegen.File, error) {
	if pkg == "" {
		pkg = PackageName(cfg.Model.Name)
	}
	s, err := Spec(cfg, pkg, filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Lora = string(src)
	return codegen.Generate(s)
}

// WritePackage writes generated files into dir, each atomically, and only
// when its content changed (so go:generate does not touch timestamps).
func WritePackage(dir string, files []codegen.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		if old, err := os.ReadFile(path); err == nil && string(old) == string(f.Src) {
			continue
		}
		err := format.WriteFileAtomic(path, func(w io.Writer) error {
			_, err := w.Write(f.Src)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
