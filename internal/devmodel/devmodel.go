// Package devmodel runs a model on a CUDA device behind the same API as
// the generated package: an engine.Executor whose graphs are the compiled
// graphs of the .lora file, run by internal/devexec on cuda.Lorac with
// the weights, adapter, gradients, AdamW moments and KV caches resident on
// the device. engine.NewCoreOn makes a Core of it, and runtime/driver
// drives that Core as it drives a generated model, so lorac train,
// generate, eval and merge --device cuda share one training loop, one
// data pipeline and one checkpoint format with the CPU path (docs/design.md,
// "The device path").
package devmodel

import (
	"errors"
	"fmt"
	"math"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/devexec"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/engine"
)

// ModelSpec is the engine.ModelSpec the generated package would carry,
// made from codegen's description of it.
func ModelSpec(in *codegen.Info) (*engine.ModelSpec, error) {
	kinds := map[string]int{
		"InitDefault": engine.InitDefault, "InitKaiming": engine.InitKaiming, "InitZeros": engine.InitZeros,
		"InitGaussian": engine.InitGaussian, "InitOnes": engine.InitOnes, "InitSmallNormal": engine.InitSmallNormal,
	}
	kind := func(name string) (int, error) {
		k, ok := kinds[name]
		if !ok {
			return 0, fmt.Errorf("devmodel: init kind %q is not the runtime's", name)
		}
		return k, nil
	}
	t := in.Train
	s := &engine.ModelSpec{Name: in.Name, Arch: in.Arch, Vocab: in.Vocab, Context: in.Context,
		BaseSize: in.BaseSize, LoRASize: in.LoRASize, KVSize: in.KVSize, Rows: in.Rows, KVRowsSize: in.KVRowsSize, Prefill: in.Prefill,
		ArenaSize: in.ArenaSize, MaskSize: in.MaskSize,
		Train: engine.TrainSpec{Batch: t.Batch, Seq: t.Seq, Steps: t.Steps, Warmup: t.Warmup, LR: t.LR, Clip: t.Clip,
			WeightDecay: t.WeightDecay, Schedule: t.Schedule, Seed: t.Seed},
		ISAs: in.ISAs, HFConfig: in.HFConfig}
	if len(in.CUDAArchs) > 0 {
		s.CUDAArchs = in.CUDAArchs
	}
	if s.ISAs == nil {
		s.ISAs = []string{}
	}
	s.Base = []engine.ParamSpec{}
	for _, p := range in.Base {
		k, err := kind(p.Init)
		if err != nil {
			return nil, err
		}
		s.Base = append(s.Base, engine.ParamSpec{Name: p.Name, Shape: p.Shape, Offset: p.Offset, Init: k})
	}
	s.Adapters = []engine.AdapterSpec{}
	for _, a := range in.Adapters {
		ka, err := kind(a.InitA)
		if err != nil {
			return nil, err
		}
		kb, err := kind(a.InitB)
		if err != nil {
			return nil, err
		}
		s.Adapters = append(s.Adapters, engine.AdapterSpec{Module: a.Module, Rank: a.Rank, In: a.In, Out: a.Out,
			Alpha: a.Alpha, RSLoRA: a.RSLoRA, Dropout: a.Dropout, Conv1D: a.Conv1D,
			AOffset: a.AOffset, BOffset: a.BOffset, WOffset: a.WOffset, InitA: ka, InitB: kb, Scale: a.Scale, Compiled: true})
	}
	return s, nil
}

// graphsOf lists a package's graphs by engine.GraphKind (nil where the
// model has none: the LoRA graphs without lora blocks).
func graphsOf(s *codegen.Spec) map[engine.GraphKind]*graph.Graph {
	gs := map[engine.GraphKind]*graph.Graph{
		engine.TrainFull: s.TrainFull, engine.EvalBase: s.EvalBase, engine.ForwardBase: s.ForwardBase, engine.DecodeBase: s.DecodeBase,
		engine.TrainLoRA: s.TrainLoRA, engine.EvalLoRA: s.EvalLoRA, engine.ForwardLoRA: s.ForwardLoRA, engine.DecodeLoRA: s.DecodeLoRA,
	}
	for k, g := range gs {
		if g == nil {
			delete(gs, k)
		}
	}
	return gs
}

// Supported checks, without a device, that every graph the device path
// runs is one the device runs (devexec.Supported: each kernel a cuda.Lorac
// method that accepts the call's attributes), so that a model with an op
// the device lacks is refused before anything is uploaded.
func Supported(s *codegen.Spec) error {
	gs := graphsOf(s)
	for k := engine.TrainLoRA; k <= engine.DecodeBase; k++ {
		if g, ok := gs[k]; ok {
			if err := devexec.Supported(g); err != nil {
				return fmt.Errorf("%s graph: %w", k, err)
			}
		}
	}
	return nil
}

// Executor runs a model's compiled graphs on a device with every store
// resident: it implements engine.Executor.
type Executor struct {
	l      *cuda.Lorac
	info   *codegen.Info
	graphs map[engine.GraphKind]*graph.Graph
	runs   map[engine.GraphKind]*devexec.Run

	base, lora, kv, arena cuda.Buffer
	// Allocated on first use: gradients, AdamW moments, accumulated
	// gradients (by store: 0 the adapter, 1 the base).
	grads, accum [2]cuda.Buffer
	m, v         cuda.Buffer
	// The gradient norm's scratch: squares, and the partial sums.
	normTmp, normPart cuda.Buffer
	// unmerged keeps each adapted weight as it was before Merge.
	unmerged []cuda.Buffer
}

var _ engine.Executor = (*Executor)(nil)

// New checks the graphs (Supported), then allocates the model's stores on
// the device: base, adapter, KV caches and one activation arena shared by
// the graphs (zeroed; the Core uploads its stores before the first graph
// runs).
func New(l *cuda.Lorac, s *codegen.Spec) (*Executor, *engine.ModelSpec, error) {
	if err := Supported(s); err != nil {
		return nil, nil, err
	}
	info, err := s.Info()
	if err != nil {
		return nil, nil, err
	}
	spec, err := ModelSpec(info)
	if err != nil {
		return nil, nil, err
	}
	e := &Executor{l: l, info: info, graphs: graphsOf(s), runs: map[engine.GraphKind]*devexec.Run{}}
	arena := 0
	for _, g := range e.graphs {
		arena = max(arena, int((g.Plan.ArenaBytes+3)/4))
	}
	for _, b := range []struct {
		dst *cuda.Buffer
		n   int
	}{{&e.base, info.BaseSize}, {&e.lora, info.LoRASize}, {&e.kv, info.KVSize}, {&e.arena, arena}} {
		if *b.dst, err = e.alloc(b.n); err != nil {
			e.Close()
			return nil, nil, err
		}
	}
	return e, spec, nil
}

// alloc returns a zeroed buffer of n float32s.
func (e *Executor) alloc(n int) (cuda.Buffer, error) {
	b, err := e.l.D.Alloc(4 * max(n, 1))
	if err == nil {
		err = e.l.D.Zero(b)
	}
	if err != nil {
		e.l.D.Free(b)
		return cuda.Buffer{}, err
	}
	return b, nil
}

// view is elements [off, off+n) of b.
func view(b cuda.Buffer, off, n int) cuda.Buffer {
	return cuda.Buffer{Ptr: b.Ptr + cuda.Ptr(4*off), Len: 4 * n}
}

// Close frees everything the executor allocated on the device.
func (e *Executor) Close() error {
	var errs []error
	for k, r := range e.runs {
		errs = append(errs, r.Free())
		delete(e.runs, k)
	}
	bufs := []*cuda.Buffer{&e.base, &e.lora, &e.kv, &e.arena, &e.grads[0], &e.grads[1], &e.accum[0], &e.accum[1], &e.m, &e.v, &e.normTmp, &e.normPart}
	for i := range e.unmerged {
		bufs = append(bufs, &e.unmerged[i])
	}
	for _, b := range bufs {
		if b.Ptr != 0 {
			errs = append(errs, e.l.D.Free(*b))
			*b = cuda.Buffer{}
		}
	}
	e.unmerged = nil
	return errors.Join(errs...)
}

func idx(full bool) int {
	if full {
		return 1
	}
	return 0
}

// size is the number of elements of the store that trains.
func (e *Executor) size(full bool) int {
	if full {
		return e.info.BaseSize
	}
	return e.info.LoRASize
}

func (e *Executor) params(full bool) cuda.Buffer {
	if full {
		return e.base
	}
	return e.lora
}

// gradients returns the gradient store of the store that trains,
// allocating it (zeroed) on first use.
func (e *Executor) gradients(full bool) (cuda.Buffer, error) {
	i := idx(full)
	if e.grads[i].Ptr == 0 {
		b, err := e.alloc(e.size(full))
		if err != nil {
			return b, err
		}
		e.grads[i] = b
	}
	return e.grads[i], nil
}

func checkLen(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("devmodel: %s has %d elements, the model's %d", what, got, want)
	}
	return nil
}

// Upload implements engine.Executor. A new base drops the copies Merge
// kept; empty moments drop the resident ones.
func (e *Executor) Upload(s engine.Store, data ...[]float32) error {
	switch s {
	case engine.StoreBase:
		if err := checkLen("the base", len(data[0]), e.info.BaseSize); err != nil {
			return err
		}
		for _, b := range e.unmerged {
			e.l.D.Free(b)
		}
		e.unmerged = nil
		return cuda.Upload(e.l.D, e.base, data[0])
	case engine.StoreLoRA:
		if err := checkLen("the adapter", len(data[0]), e.info.LoRASize); err != nil {
			return err
		}
		return cuda.Upload(e.l.D, e.lora, data[0])
	case engine.StoreMoments:
		if len(data) != 2 || len(data[0]) != len(data[1]) {
			return errors.New("devmodel: the moments are M and V of one length")
		}
		n := len(data[0])
		if e.m.Len != 4*max(n, 1) || n == 0 {
			for _, b := range []*cuda.Buffer{&e.m, &e.v} {
				if b.Ptr != 0 {
					e.l.D.Free(*b)
					*b = cuda.Buffer{}
				}
			}
		}
		if n == 0 {
			return nil
		}
		if n != e.info.BaseSize && n != e.info.LoRASize {
			return fmt.Errorf("devmodel: moments of %d elements fit neither store", n)
		}
		for _, b := range []*cuda.Buffer{&e.m, &e.v} {
			if b.Ptr == 0 {
				var err error
				if *b, err = e.alloc(n); err != nil {
					return err
				}
			}
		}
		return errors.Join(cuda.Upload(e.l.D, e.m, data[0]), cuda.Upload(e.l.D, e.v, data[1]))
	}
	return fmt.Errorf("devmodel: no store %d", s)
}

// Download implements engine.Executor.
func (e *Executor) Download(s engine.Store, data ...[]float32) error {
	if err := e.l.D.Sync(); err != nil {
		return err
	}
	switch s {
	case engine.StoreBase:
		if err := checkLen("the base", len(data[0]), e.info.BaseSize); err != nil {
			return err
		}
		return cuda.Download(e.l.D, data[0], e.base)
	case engine.StoreLoRA:
		if err := checkLen("the adapter", len(data[0]), e.info.LoRASize); err != nil {
			return err
		}
		return cuda.Download(e.l.D, data[0], e.lora)
	case engine.StoreMoments:
		if len(data) != 2 || 4*len(data[0]) != e.m.Len || 4*len(data[1]) != e.v.Len || e.m.Ptr == 0 {
			return errors.New("devmodel: the host's moments do not match the device's")
		}
		return errors.Join(cuda.Download(e.l.D, data[0], e.m), cuda.Download(e.l.D, data[1], e.v))
	}
	return fmt.Errorf("devmodel: no store %d", s)
}

// run returns graph k prepared on the resident stores (once per graph).
func (e *Executor) run(k engine.GraphKind) (*devexec.Run, error) {
	if r, ok := e.runs[k]; ok {
		return r, nil
	}
	g, ok := e.graphs[k]
	if !ok {
		return nil, fmt.Errorf("devmodel: the model has no %s graph", k)
	}
	env := devexec.Env{Inputs: map[string][]int32{}, Resident: map[string]cuda.Buffer{}, Grads: map[string]cuda.Buffer{}, Arena: e.arena}
	for _, v := range g.Params {
		off, ok := e.info.Offset[v.Param.Name]
		if !ok {
			return nil, fmt.Errorf("devmodel: parameter %s is not in the model's stores", v.Param.Name)
		}
		store := e.base
		if v.Param.Role == graph.LoRA {
			store = e.lora
		}
		env.Resident[v.Param.Name] = view(store, off, v.Shape.Numel())
		if v.Param.Trainable && (k == engine.TrainLoRA || k == engine.TrainFull) {
			grads, err := e.gradients(k == engine.TrainFull)
			if err != nil {
				return nil, err
			}
			env.Grads[v.Param.Name] = view(grads, off, v.Shape.Numel())
		}
	}
	for _, v := range g.Inputs {
		if v.DType == graph.I32 {
			env.Inputs[v.Name] = make([]int32, v.Shape.Numel())
			continue
		}
		off, ok := e.info.State[v.Name]
		if !ok {
			return nil, fmt.Errorf("devmodel: state %s is not in the model's KV store", v.Name)
		}
		env.Resident[v.Name] = view(e.kv, off, v.Shape.Numel())
	}
	r, err := devexec.Prepare(e.l, g, env)
	if err != nil {
		return nil, err
	}
	e.runs[k] = r
	return r, nil
}

// step runs graph k once on new inputs and returns its first output.
func (e *Executor) step(k engine.GraphKind, inputs map[string][]int32, seed uint64) ([]float32, error) {
	r, err := e.run(k)
	if err != nil {
		return nil, err
	}
	if err := r.SetInputs(inputs); err != nil {
		return nil, err
	}
	if err := r.SetStep(seed); err != nil {
		return nil, err
	}
	if err := r.Step(); err != nil {
		return nil, err
	}
	return r.Value(e.graphs[k].Outputs[0])
}

// Loss implements engine.Executor.
func (e *Executor) Loss(k engine.GraphKind, tokens, pos, targets []int32, seed uint64) (float32, error) {
	switch k {
	case engine.TrainLoRA, engine.TrainFull, engine.EvalLoRA, engine.EvalBase:
	default:
		return 0, fmt.Errorf("devmodel: %s has no loss", k)
	}
	out, err := e.step(k, map[string][]int32{"tokens": tokens, "pos": pos, "targets": targets}, seed)
	if err != nil {
		return 0, err
	}
	return out[0], nil
}

// Logits implements engine.Executor.
func (e *Executor) Logits(k engine.GraphKind, tokens, pos []int32) ([]float32, error) {
	switch k {
	case engine.ForwardLoRA, engine.ForwardBase, engine.DecodeLoRA, engine.DecodeBase:
	default:
		return nil, fmt.Errorf("devmodel: %s has no logits", k)
	}
	return e.step(k, map[string][]int32{"tokens": tokens, "pos": pos}, 0)
}

// Grads downloads the last training graph's gradients (for tests and
// inspection: the training loop reads only their norm).
func (e *Executor) Grads(full bool, dst []float32) error {
	g := e.grads[idx(full)]
	if g.Ptr == 0 {
		return errors.New("devmodel: no training graph has run")
	}
	if err := checkLen("the gradient buffer", len(dst), e.size(full)); err != nil {
		return err
	}
	if err := e.l.D.Sync(); err != nil {
		return err
	}
	return cuda.Download(e.l.D, dst, g)
}

// The gradient norm is reduced on the device: the gradients, viewed as
// rows of normCols columns normChunk elements at a time, are squared
// (Mul) and summed down their columns (LinearGradBias: each column's rows
// in order, deterministic); the host adds the normCols partial sums of
// each chunk, and the squares of the last n mod normCols elements, in
// float64. Only those come down, never the gradients.
const (
	normCols  = 1024
	normChunk = 1 << 22 // a multiple of normCols
)

// GradNorm implements engine.Executor.
func (e *Executor) GradNorm(full bool) (float64, error) {
	g := e.grads[idx(full)]
	if g.Ptr == 0 {
		return 0, errors.New("devmodel: no training graph has run")
	}
	n := e.size(full)
	body := n / normCols * normCols
	chunks := (body + normChunk - 1) / normChunk
	var err error
	if chunks > 0 {
		if e.normTmp, err = e.grow(e.normTmp, min(body, normChunk)); err != nil {
			return 0, err
		}
		if e.normPart, err = e.grow(e.normPart, chunks*normCols); err != nil {
			return 0, err
		}
	}
	for k := range chunks {
		lo := k * normChunk
		hi := min(body, lo+normChunk)
		part := view(g, lo, hi-lo)
		if err := e.l.Mul(e.normTmp.Ptr, part.Ptr, part.Ptr, hi-lo); err != nil {
			return 0, err
		}
		if err := e.l.LinearGradBias(view(e.normPart, k*normCols, normCols).Ptr, e.normTmp.Ptr, (hi-lo)/normCols, normCols); err != nil {
			return 0, err
		}
	}
	if err := e.l.D.Sync(); err != nil {
		return 0, err
	}
	partial := make([]float32, chunks*normCols)
	tail := make([]float32, n-body)
	if len(partial) > 0 {
		if err := cuda.Download(e.l.D, partial, view(e.normPart, 0, len(partial))); err != nil {
			return 0, err
		}
	}
	if len(tail) > 0 {
		if err := cuda.Download(e.l.D, tail, view(g, body, len(tail))); err != nil {
			return 0, err
		}
	}
	var sum float64
	for _, x := range partial {
		sum += float64(x)
	}
	for _, x := range tail {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum), nil
}

// grow returns b if it holds n float32s, else a new zeroed buffer of n
// (b freed).
func (e *Executor) grow(b cuda.Buffer, n int) (cuda.Buffer, error) {
	if b.Ptr != 0 && b.Len >= 4*n {
		return b, nil
	}
	if b.Ptr != 0 {
		if err := e.l.D.Free(b); err != nil {
			return cuda.Buffer{}, err
		}
	}
	return e.alloc(n)
}

// ScaleGrads implements engine.Executor: g ← float32(g·s), rounded as
// the device's float32 product (the CPU's ClipGradients rounds the
// float64 product: the two differ by at most one ulp).
func (e *Executor) ScaleGrads(full bool, s float64) error {
	g := e.grads[idx(full)]
	if g.Ptr == 0 {
		return errors.New("devmodel: no training graph has run")
	}
	return e.l.Scale(g.Ptr, g.Ptr, e.size(full), float32(s))
}

// Accumulate implements engine.Executor: the gradients are scaled in
// place (the next training graph overwrites them) and added to the sum,
// as the CPU's accum += weight·g rounds.
func (e *Executor) Accumulate(full bool, weight float32) error {
	g, err := e.gradients(full)
	if err != nil {
		return err
	}
	i, n := idx(full), e.size(full)
	if e.accum[i].Ptr == 0 {
		if e.accum[i], err = e.alloc(n); err != nil {
			return err
		}
	}
	if err := e.l.Scale(g.Ptr, g.Ptr, n, weight); err != nil {
		return err
	}
	return e.l.Add(e.accum[i].Ptr, e.accum[i].Ptr, g.Ptr, n)
}

// TakeAccumulated implements engine.Executor.
func (e *Executor) TakeAccumulated(full bool) error {
	i, n := idx(full), e.size(full)
	if e.accum[i].Ptr == 0 {
		return errors.New("devmodel: nothing accumulated")
	}
	g, err := e.gradients(full)
	if err != nil {
		return err
	}
	if err := e.l.CopyCols(g.Ptr, n, 0, e.accum[i].Ptr, n, 0, 1, n); err != nil {
		return err
	}
	return e.l.D.Zero(e.accum[i])
}

// AdamW implements engine.Executor: one launch over the whole store.
func (e *Executor) AdamW(full bool, o engine.AdamW, step int, lr float64) error {
	n := e.size(full)
	g := e.grads[idx(full)]
	if g.Ptr == 0 {
		return errors.New("devmodel: AdamW before any gradient")
	}
	if e.m.Len != 4*max(n, 1) {
		return errors.New("devmodel: AdamW without moments of the store's size")
	}
	return e.l.AdamW(e.params(full).Ptr, g.Ptr, e.m.Ptr, e.v.Ptr, n, o.Beta1, o.Beta2, o.Eps, o.WeightDecay, lr, step)
}

// Merge implements engine.Executor: each adapted weight is copied on the
// device, then W += s·B·A.
func (e *Executor) Merge() error {
	if e.unmerged != nil {
		return errors.New("devmodel: already merged")
	}
	for _, a := range e.info.Adapters {
		n := a.In * a.Out
		b, err := e.l.D.Alloc(4 * n)
		if err != nil {
			e.dropUnmerged()
			return err
		}
		e.unmerged = append(e.unmerged, b)
		w := view(e.base, a.WOffset, n)
		if err := e.l.CopyCols(b.Ptr, n, 0, w.Ptr, n, 0, 1, n); err != nil {
			e.dropUnmerged()
			return err
		}
	}
	for _, a := range e.info.Adapters {
		w := view(e.base, a.WOffset, a.In*a.Out)
		A, B := view(e.lora, a.AOffset, a.Rank*a.In), view(e.lora, a.BOffset, a.Out*a.Rank)
		if err := e.l.LoRAMerge(w.Ptr, A.Ptr, B.Ptr, a.In, a.Out, a.Rank, a.Scale, a.Conv1D); err != nil {
			// Put back the weights merged so far (all copies are kept).
			return errors.Join(err, e.Unmerge())
		}
	}
	return e.l.D.Sync()
}

func (e *Executor) dropUnmerged() {
	for _, b := range e.unmerged {
		e.l.D.Free(b)
	}
	e.unmerged = nil
}

// Unmerge implements engine.Executor: the copies Merge kept go back.
func (e *Executor) Unmerge() error {
	if e.unmerged == nil {
		return errors.New("devmodel: not merged")
	}
	for i, a := range e.info.Adapters {
		n := a.In * a.Out
		w := view(e.base, a.WOffset, n)
		if err := e.l.CopyCols(w.Ptr, n, 0, e.unmerged[i].Ptr, n, 0, 1, n); err != nil {
			return err
		}
	}
	if err := e.l.D.Sync(); err != nil {
		return err
	}
	e.dropUnmerged()
	return nil
}
