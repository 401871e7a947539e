package engine

import (
	"errors"
	"io"
	"math"
)

// Store names a Core's store that an Executor keeps resident.
type Store int

const (
	StoreBase    Store = iota // Core.Base
	StoreLoRA                 // Core.LoRA
	StoreMoments              // Core.Opt.M and Core.Opt.V, of the store that trains
	numStores
)

// GraphKind names one of a model's compiled graphs, as the fields of
// Graphs do.
type GraphKind int

const (
	TrainLoRA GraphKind = iota
	TrainFull
	EvalLoRA
	EvalBase
	ForwardLoRA
	ForwardBase
	DecodeLoRA
	DecodeBase
)

var graphNames = [...]string{"TrainLoRA", "TrainFull", "EvalLoRA", "EvalBase", "ForwardLoRA", "ForwardBase", "DecodeLoRA", "DecodeBase"}

func (k GraphKind) String() string {
	if k >= 0 && int(k) < len(graphNames) {
		return graphNames[k]
	}
	return "GraphKind(?)"
}

// Executor runs a Core's graphs, optimizer and merge where its stores are
// resident — a GPU — instead of the generated package's CPU code: forward,
// backward, AdamW and merge run there, and the host only passes token
// batches in and reads losses and logits out. The Core's host stores
// (Base, LoRA, Opt) are then mirrors: the Core uploads a store after the
// host wrote it (LoadBase, LoadAdapter, InitAdapter, SetOptimizer, …)
// before the next device call, and downloads it where the host reads it
// (SaveAdapter, SaveBase, Sync). The KV caches and gradients stay with the
// executor. engine imports only the standard library, so implementations
// live elsewhere (internal/devmodel runs the graphs on runtime/cuda).
//
// full selects the store that trains: the base (TrainFull) or the adapter.
type Executor interface {
	// Upload replaces the executor's copy of a store with the host's
	// data (the moments: M, then V).
	Upload(s Store, data ...[]float32) error
	// Download copies the executor's copy of a store into data.
	Download(s Store, data ...[]float32) error
	// Loss runs a training or evaluation graph on one batch and returns
	// its loss; a training graph leaves its gradients in the executor.
	// step selects the dropout masks of TrainLoRA.
	Loss(g GraphKind, tokens, pos, targets []int32, step uint64) (float32, error)
	// Logits runs a forward or decoding graph (the latter against the
	// executor's KV caches) and returns its logits.
	Logits(g GraphKind, tokens, pos []int32) ([]float32, error)
	// GradNorm returns the L2 norm of the last training graph's
	// gradients (GradNorm's quantity, summed in float64); ScaleGrads
	// multiplies them by s (clipping), both where the gradients are.
	GradNorm(full bool) (float64, error)
	ScaleGrads(full bool, s float64) error
	// Accumulate adds weight times the last gradients to a sum;
	// TakeAccumulated makes the sum the gradients and clears it.
	Accumulate(full bool, weight float32) error
	TakeAccumulated(full bool) error
	// AdamW applies update number step (from 1) at rate lr to the
	// trained store with its gradients and the resident moments, as
	// AdamW.Step computes it.
	AdamW(full bool, o AdamW, step int, lr float64) error
	// Merge folds every adapter into its base weight (W += s·B·A),
	// keeping the weights it changes; Unmerge restores them exactly.
	Merge() error
	Unmerge() error
}

// NewCoreOn makes a Core whose graphs run on e: it allocates the host
// mirrors of the base and adapter stores only (activations, caches and
// gradients live in the executor). The graphs are the ones spec
// describes, compiled for e.
func NewCoreOn(spec *ModelSpec, e Executor) *Core {
	c := &Core{Spec: spec, Base: make([]float32, spec.BaseSize), LoRA: make([]float32, spec.LoRASize), exec: e}
	c.batchPos = Positions(spec.Train.Batch, spec.Train.Seq)
	c.contextPos = Positions(1, spec.Context)
	c.padded = make([]int32, spec.Context)
	for s := range c.devStale {
		c.devStale[s] = true
	}
	return c
}

// Executor returns the executor the Core runs on, nil on the CPU.
func (c *Core) Executor() Executor { return c.exec }

// Close releases what the Core's executor holds (device memory, the
// device itself) when the executor is an io.Closer; the Core must not run
// anything after. On the CPU it does nothing: the stores are Go memory.
func (c *Core) Close() error {
	if cl, ok := c.exec.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// SetOptimizer replaces the optimizer state (moments and step), as a
// resumed run restores it; an empty Optimizer starts afresh.
func (c *Core) SetOptimizer(o Optimizer) {
	c.Opt = o
	c.wrote(StoreMoments)
}

// Sync brings the host stores (Base, LoRA, Opt) up to date with the
// executor's, for code that reads them directly (checkpoints). Without
// an executor it does nothing.
func (c *Core) Sync() error {
	for s := range numStores {
		if err := c.read(s); err != nil {
			return err
		}
	}
	return nil
}

// wrote records that the host wrote store s: the executor's copy is
// replaced before its next call.
func (c *Core) wrote(s Store) {
	if c.exec != nil {
		c.devStale[s], c.hostStale[s] = true, false
	}
}

// changed records that the executor changed store s.
func (c *Core) changed(s Store) { c.hostStale[s] = true }

// read brings the host copy of store s up to date.
func (c *Core) read(s Store) error {
	if c.exec == nil || !c.hostStale[s] {
		return nil
	}
	if err := c.exec.Download(s, c.storeData(s)...); err != nil {
		return err
	}
	c.hostStale[s] = false
	return nil
}

// storeData is the host's copy of store s: the slices an executor uploads
// from and downloads into.
func (c *Core) storeData(s Store) [][]float32 {
	switch s {
	case StoreBase:
		return [][]float32{c.Base}
	case StoreLoRA:
		return [][]float32{c.LoRA}
	case StoreMoments:
		return [][]float32{c.Opt.M, c.Opt.V}
	}
	return nil
}

// upload gives the executor every store the host wrote since.
func (c *Core) upload() error {
	for s := range numStores {
		if !c.devStale[s] {
			continue
		}
		if err := c.exec.Upload(s, c.storeData(s)...); err != nil {
			return err
		}
		c.devStale[s] = false
	}
	return nil
}

// has says whether the model has graph g: with an executor, the LoRA
// graphs exist when the model has adapters.
func (c *Core) has(g GraphKind) bool {
	if c.exec != nil {
		switch g {
		case TrainLoRA, EvalLoRA, ForwardLoRA, DecodeLoRA:
			return len(c.Spec.Adapters) > 0
		}
		return true
	}
	switch g {
	case TrainLoRA:
		return c.graphs.TrainLoRA != nil
	case EvalLoRA:
		return c.graphs.EvalLoRA != nil
	case ForwardLoRA:
		return c.graphs.ForwardLoRA != nil
	case DecodeLoRA:
		return c.graphs.DecodeLoRA != nil
	}
	return true
}

// execLoss runs a loss graph on the executor.
func (c *Core) execLoss(g GraphKind, tokens, targets []int32, step uint64) (float32, error) {
	if err := c.upload(); err != nil {
		return 0, err
	}
	return c.exec.Loss(g, tokens, c.batchPos, targets, step)
}

// execUpdate is Optimizer.Update on the executor: the gradient norm,
// clipping (as ClipGradients: skipped for a non-finite norm, which skips
// the step) and AdamW, all where the gradients, store and moments are.
func (c *Core) execUpdate(full bool) (float64, error) {
	n, params := len(c.LoRA), StoreLoRA
	if full {
		n, params = len(c.Base), StoreBase
	}
	if len(c.Opt.M) != n {
		c.SetOptimizer(Optimizer{M: make([]float32, n), V: make([]float32, n)})
		if err := c.upload(); err != nil {
			return 0, err
		}
	}
	norm, err := c.exec.GradNorm(full)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, nil
	}
	t := c.Spec.Train
	if t.Clip > 0 && norm > t.Clip {
		if err := c.exec.ScaleGrads(full, t.Clip/norm); err != nil {
			return 0, err
		}
	}
	lr := LearningRate(c.Opt.Step, t.Warmup, t.Steps, t.LR, t.Schedule)
	opt := DefaultAdamW()
	opt.WeightDecay = t.WeightDecay
	if err := c.exec.AdamW(full, opt, c.Opt.Step+1, lr); err != nil {
		return 0, err
	}
	c.Opt.Step++
	c.changed(params)
	c.changed(StoreMoments)
	return norm, nil
}

// errNoExecutorRows and errNoExecutorPrefill are DecodeRows's and
// PrefillRows's errors on an executor.
var (
	errNoExecutorRows    = errors.New("the rows graph (DecodeRows) does not run on an executor; use the CPU")
	errNoExecutorPrefill = errors.New("the prefill graph (PrefillRows) does not run on an executor; use the CPU")
)

// execLogits runs a forward or decoding graph on the executor.
func (c *Core) execLogits(g GraphKind, tokens, pos []int32) ([]float32, error) {
	if err := c.upload(); err != nil {
		return nil, err
	}
	return c.exec.Logits(g, tokens, pos)
}

// execAccumulate is Accumulate on the executor: the sum stays there.
func (c *Core) execAccumulate(tokens, targets []int32, weight float32, micro int, full bool) (float32, error) {
	g, seed := TrainFull, uint64(0)
	if full {
		if c.Merged {
			return 0, errors.New("the adapter is merged into the base; unmerge it first")
		}
	} else {
		if !c.has(TrainLoRA) {
			return 0, errors.New("the model has no lora block; accumulate with full")
		}
		if !c.UseAdapter() {
			return 0, errors.New("the adapter is merged or detached; unmerge or attach it to train")
		}
		g, seed = TrainLoRA, uint64(c.Opt.Step)|uint64(micro)<<microSeedShift
	}
	if c.accumN > 0 && c.accumFull != full {
		return 0, errors.New("gradients of the other store are accumulated; apply them first")
	}
	loss, err := c.execLoss(g, tokens, targets, seed)
	if err != nil {
		return 0, err
	}
	if err := c.exec.Accumulate(full, weight); err != nil {
		return 0, err
	}
	c.accumN++
	c.accumFull = full
	return loss, nil
}
