package engine

import (
	"math"
	"path/filepath"
	"slices"
	"testing"
)

// hostExec is an Executor in host memory: its "graphs" return a fixed
// loss and the gradients the test sets, and its AdamW is AdamW.Step. It
// counts transfers, so the tests see when the Core moves a store.
type hostExec struct {
	base, lora, m, v []float32
	grads            [2][]float32 // adapter, base
	accum            [2][]float32
	next             []float32 // the gradients the next training graph yields
	unmerged         []float32
	ups, downs       [numStores]int
	setGrads         int
	steps            []int
}

func storeIdx(full bool) int {
	if full {
		return 1
	}
	return 0
}

func (h *hostExec) Upload(s Store, data ...[]float32) error {
	h.ups[s]++
	switch s {
	case StoreBase:
		h.base = slices.Clone(data[0])
	case StoreLoRA:
		h.lora = slices.Clone(data[0])
	case StoreMoments:
		h.m, h.v = slices.Clone(data[0]), slices.Clone(data[1])
	}
	return nil
}

func (h *hostExec) Download(s Store, data ...[]float32) error {
	h.downs[s]++
	switch s {
	case StoreBase:
		copy(data[0], h.base)
	case StoreLoRA:
		copy(data[0], h.lora)
	case StoreMoments:
		copy(data[0], h.m)
		copy(data[1], h.v)
	}
	return nil
}

func (h *hostExec) Loss(g GraphKind, tokens, pos, targets []int32, step uint64) (float32, error) {
	switch g {
	case TrainLoRA:
		h.grads[0] = slices.Clone(h.next)
	case TrainFull:
		h.grads[1] = slices.Clone(h.next)
	}
	return 1.5, nil
}

func (h *hostExec) Logits(g GraphKind, tokens, pos []int32) ([]float32, error) {
	return make([]float32, 4*len(tokens)), nil
}

func (h *hostExec) GradNorm(full bool) (float64, error) {
	return GradNorm(h.grads[storeIdx(full)]), nil
}

// ScaleGrads scales as ClipGradients does.
func (h *hostExec) ScaleGrads(full bool, s float64) error {
	h.setGrads++
	for j, x := range h.grads[storeIdx(full)] {
		h.grads[storeIdx(full)][j] = float32(float64(x) * s)
	}
	return nil
}

func (h *hostExec) Accumulate(full bool, w float32) error {
	g := h.grads[storeIdx(full)]
	if h.accum[storeIdx(full)] == nil {
		h.accum[storeIdx(full)] = make([]float32, len(g))
	}
	for j, x := range g {
		h.accum[storeIdx(full)][j] += w * x
	}
	return nil
}

func (h *hostExec) TakeAccumulated(full bool) error {
	h.grads[storeIdx(full)], h.accum[storeIdx(full)] = h.accum[storeIdx(full)], nil
	return nil
}

func (h *hostExec) AdamW(full bool, o AdamW, step int, lr float64) error {
	h.steps = append(h.steps, step)
	p := h.lora
	if full {
		p = h.base
	}
	o.Step(p, h.grads[storeIdx(full)], h.m, h.v, step, lr)
	return nil
}

func (h *hostExec) Merge() error {
	h.unmerged = slices.Clone(h.base)
	h.base[0] += 100
	return nil
}

func (h *hostExec) Unmerge() error {
	h.base, h.unmerged = h.unmerged, nil
	return nil
}

// TestExecutorCoherence: a Core on an executor uploads a store once after
// the host wrote it, not per step; downloads only where the host reads
// (SaveAdapter, Sync); scales the gradients only when the norm exceeds
// the clip; skips the update on a non-finite norm; and
// its AdamW steps give exactly the CPU path's weights and moments.
func TestExecutorCoherence(t *testing.T) {
	spec := tinySpec()
	spec.Train = TrainSpec{Batch: 1, Seq: 2, Steps: 4, Warmup: 1, LR: 0.1, Clip: 1, Schedule: "cosine"}
	h := &hostExec{}
	dev := NewCoreOn(spec, h)
	cpu := NewCore(spec)
	for _, c := range []*Core{dev, cpu} {
		c.InitBase(1)
		c.InitAdapter(2)
	}
	tokens, targets := []int32{1, 2}, []int32{2, 3}
	grads := [][]float32{{0.1, -0.2, 0.3, 0.05, 0.01}, {3, -4, 0, 0, 1}, {0.01, 0.02, 0.03, 0.04, 0.05}}
	for k, g := range grads {
		h.next = g
		loss, err := dev.TrainStep(tokens, targets)
		if err != nil || loss != 1.5 {
			t.Fatalf("step %d: %v, %v", k, loss, err)
		}
		cpu.Opt.Update(cpu.LoRA, slices.Clone(g), spec.Train)
	}
	if h.ups[StoreBase] != 1 || h.ups[StoreLoRA] != 1 || h.ups[StoreMoments] != 2 {
		// Moments: the empty optimizer of InitAdapter, then the zeros of
		// the first update.
		t.Errorf("uploads %v, want base and adapter once, moments twice", h.ups)
	}
	if h.setGrads != 1 {
		t.Errorf("gradients scaled %d times; only step 1's (norm 5.1 > clip 1) are clipped", h.setGrads)
	}
	if slices.Equal(dev.LoRA, cpu.LoRA) {
		t.Error("the host's adapter changed before it was read")
	}
	if err := dev.SaveAdapter(filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	if h.downs[StoreLoRA] != 1 || !slices.Equal(dev.LoRA, cpu.LoRA) {
		t.Errorf("after SaveAdapter: %d downloads, adapter %v, CPU's %v", h.downs[StoreLoRA], dev.LoRA, cpu.LoRA)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dev.Opt.M, cpu.Opt.M) || !slices.Equal(dev.Opt.V, cpu.Opt.V) || dev.Opt.Step != 3 || !slices.Equal(h.steps, []int{1, 2, 3}) {
		t.Errorf("moments or steps differ: %+v vs %+v, steps %v", dev.Opt, cpu.Opt, h.steps)
	}
	// A NaN gradient skips the update, as Optimizer.Update does.
	h.next = []float32{float32(math.NaN()), 0, 0, 0, 0}
	if _, err := dev.TrainStep(tokens, targets); err != nil {
		t.Fatal(err)
	}
	if dev.Opt.Step != 3 || len(h.steps) != 3 {
		t.Errorf("a NaN gradient stepped: step %d, AdamW calls %v", dev.Opt.Step, h.steps)
	}
	// A restored optimizer goes up before the next step.
	dev.SetOptimizer(Optimizer{M: make([]float32, 5), V: make([]float32, 5), Step: 7})
	h.next = grads[0]
	if _, err := dev.TrainStep(tokens, targets); err != nil {
		t.Fatal(err)
	}
	if h.ups[StoreMoments] != 3 || h.steps[len(h.steps)-1] != 8 {
		t.Errorf("after SetOptimizer: moments uploaded %d times, last AdamW step %d", h.ups[StoreMoments], h.steps[len(h.steps)-1])
	}
	// Merge and Unmerge run on the executor; the host base follows on read.
	if err := dev.Merge(); err != nil {
		t.Fatal(err)
	}
	if err := dev.SaveBase(filepath.Join(t.TempDir(), "m.safetensors")); err != nil {
		t.Fatal(err)
	}
	if dev.Base[0] != cpu.Base[0]+100 {
		t.Errorf("merged base not read back: %v vs %v", dev.Base[0], cpu.Base[0])
	}
	if err := dev.Unmerge(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dev.Base, cpu.Base) {
		t.Error("unmerge did not restore the base")
	}
	if _, err := dev.DecodeRows(make([]int32, 8), make([]int32, 8), make([][]float32, 8)); err != errNoExecutorRows {
		t.Errorf("DecodeRows on an executor: %v, want %v", err, errNoExecutorRows)
	}
	if _, err := dev.PrefillRows(0, []int32{1}, 0, nil); err != errNoExecutorPrefill {
		t.Errorf("PrefillRows on an executor: %v, want %v", err, errNoExecutorPrefill)
	}
	if dev.HasRows() || dev.HasPrefill() {
		t.Error("a Core on an executor claims the rows or prefill graph")
	}
	// Close reaches an executor that is an io.Closer, once per call; on
	// the CPU it does nothing.
	closer := &closingExec{hostExec: h}
	if err := NewCoreOn(spec, closer).Close(); err != nil || closer.closed != 1 {
		t.Errorf("Close: %v, executor closed %d times, want once", err, closer.closed)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("Close of an executor without Close: %v", err)
	}
	if err := cpu.Close(); err != nil {
		t.Errorf("Close on the CPU: %v", err)
	}
}

// closingExec is a hostExec with a Close.
type closingExec struct {
	*hostExec
	closed int
}

func (c *closingExec) Close() error {
	c.closed++
	return nil
}
