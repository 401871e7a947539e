package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"lorac.dev/lorac/runtime/format"
	"lorac.dev/lorac/runtime/kern"
)

// Init kinds of ParamSpec and AdapterSpec. Generated code names them
// (engine.InitKaiming), so these values are the runtime's own.
const (
	InitDefault     = 0 // normal(0, 0.02)
	InitKaiming     = 1 // kaiming-uniform(a=√5): U(−1/√in, 1/√in)
	InitZeros       = 2
	InitGaussian    = 3 // normal(0, 1/r)
	InitOnes        = 4
	InitSmallNormal = 5 // normal(0, 0.02), for B in tests so the branch is visible
)

// ParamSpec places one base parameter in Core.Base.
type ParamSpec struct {
	Name   string // Hugging Face name, "transformer.h.0.attn.c_attn.weight"
	Shape  []int
	Offset int // elements into Core.Base
	Init   int
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// AdapterSpec is one LoRA branch: A (Rank, In) and B (Out, Rank) in
// Core.LoRA, added to the frozen weight at WOffset in Core.Base.
type AdapterSpec struct {
	Module   string // "transformer.h.0.attn.c_attn"
	Rank     int
	In, Out  int
	Alpha    float64
	RSLoRA   bool
	Dropout  float64
	Conv1D   bool // the base weight is stored (In, Out)
	AOffset  int
	BOffset  int
	WOffset  int
	InitA    int
	InitB    int
	Scale    float32 // alpha/r, or alpha/√r with rsLoRA: the value compiled into the kernels
	Compiled bool    // the branch is compiled into the graphs (always true for generated code)
}

// TrainSpec is the train block of the .lora file.
type TrainSpec struct {
	Batch, Seq, Steps, Warmup int
	LR, Clip, WeightDecay     float64
	Schedule                  string
	Seed                      uint64
}

// ForRun is the train block's schedule fitted to a run of steps optimizer
// updates: the decay ends at the run's last step, whatever the block's own
// steps, and warmup keeps its length in steps (as Hugging Face's
// warmup_steps does) but is capped at the run's length, so a run shorter than
// the warmup ends at the peak rate instead of never reaching it.
func (t TrainSpec) ForRun(steps int) TrainSpec {
	t.Steps, t.Warmup = steps, min(t.Warmup, steps)
	return t
}

// ModelSpec describes a compiled model: what generated code tells the
// runtime about itself.
type ModelSpec struct {
	Name, Arch     string
	Vocab, Context int
	Base           []ParamSpec
	Adapters       []AdapterSpec
	BaseSize       int // elements of Core.Base
	LoRASize       int // elements of Core.LoRA
	KVSize         int // elements of Core.KV, the decoding graphs' key/value caches
	// Rows is the batch of the rows graph (DecodeRows: one token for each
	// row, each with its own cache and adapter), 0 without one;
	// KVRowsSize the elements of its caches (Core.KVRows).
	Rows, KVRowsSize int
	// Prefill is the chunk of the prefill graph (PrefillRows: that many
	// prompt tokens of one row at once, into the row's slot of KVRows),
	// 0 without one.
	Prefill   int
	ArenaSize int // elements of the activation arena (the largest graph's plan)
	MaskSize  int // elements of the dropout scratch
	Train     TrainSpec
	// ISAs are the CPU kernel variants the target cpu block allows; the
	// generated package passes them to kern.AllowISAs when it loads.
	ISAs []string
	// CUDAArchs are the target cuda block's architectures, recorded: a
	// generated package runs on the CPU (the lorac command runs models on
	// a GPU through an Executor, NewCoreOn).
	CUDAArchs []string
	// HFConfig is the Hugging Face config.json of the architecture (empty
	// where transformers cannot express it): saved next to a base, it lets
	// transformers load the base lorac trained.
	HFConfig string
}

// Core is the state every generated model embeds: parameters in two flat
// stores (base and adapter), their gradients, AdamW moments and the
// activation arena, each one allocation sized by the compiler's memory plan.
type Core struct {
	Spec     *ModelSpec
	Base     []float32 // every base parameter
	LoRA     []float32 // every adapter parameter
	BaseGrad []float32 // gradients of Base, allocated by the first full-training step
	LoRAGrad []float32 // gradients of LoRA
	Arena    []float32 // activations
	KV       []float32 // key/value caches of decoding
	Mask     []float32 // dropout multipliers of the branch being run
	// KVRows holds the rows graph's caches, allocated by the first
	// DecodeRows or PrefillRows (a model that never serves does not pay
	// for them); PrefillRows fills one row's slot of them.
	KVRows   []float32
	Opt      Optimizer // AdamW state of whichever store trains
	Merged   bool      // the adapter is folded into Base
	Detached bool      // the adapter is ignored: the model is its base
	// BaseName is what saved adapters record as base_model_name_or_path
	// (the base's directory or hub name, for PEFT's AutoPeftModel); the
	// model's name when empty.
	BaseName string

	// unmerged keeps each adapted weight as it was before Merge, so that
	// Unmerge restores it exactly instead of subtracting with rounding.
	unmerged [][]float32

	// accum sums weighted micro-batch gradients between Accumulate and
	// ApplyGradients; accumFull says which store it mirrors.
	accum     []float32
	accumFull bool
	accumN    int // micro-batches accumulated on the executor

	// The branches of the running DecodeMix: each one's adapter store,
	// row and weight, which RowParam, BranchRows and BranchWeights hand to
	// the generated code.
	branchStores  [][]float32
	branchRows    []int32
	branchWeights []float32
	// kvSlot is the slot of KVRows the running PrefillRows reads and
	// extends (SlotKV); prefillTok and prefillPos are its chunk's inputs.
	kvSlot                 int
	prefillTok, prefillPos []int32

	graphs Graphs // set by Bind
	// exec runs the graphs instead when set (NewCoreOn); devStale marks
	// the stores the host wrote since the executor last got them,
	// hostStale those the executor changed since the host last read them.
	exec                 Executor
	devStale, hostStale  [numStores]bool
	batchPos, contextPos []int32 // position ids of the compiled inputs
	padded               []int32 // Forward's prompt, padded to the context
}

// NewCore allocates a model's stores.
func NewCore(spec *ModelSpec) *Core {
	return &Core{
		Spec:     spec,
		Base:     make([]float32, spec.BaseSize),
		LoRA:     make([]float32, spec.LoRASize),
		LoRAGrad: make([]float32, spec.LoRASize),
		Arena:    make([]float32, spec.ArenaSize),
		KV:       make([]float32, spec.KVSize),
		Mask:     make([]float32, spec.MaskSize),
	}
}

// UseAdapter reports whether forward passes run the LoRA branches: an
// adapter that is merged or detached is not run.
func (c *Core) UseAdapter() bool { return !c.Merged && !c.Detached && len(c.Spec.Adapters) > 0 }

func (c *Core) param(p ParamSpec) []float32 { return c.Base[p.Offset : p.Offset+p.Size()] }

// InitBase fills the base weights with a seeded random initialisation (to
// train a base model from scratch): weights normal(0, 0.02), norm gains one,
// biases zero.
func (c *Core) InitBase(seed uint64) {
	r := NewRNG(seed)
	for _, p := range c.Spec.Base {
		initTensor(c.param(p), p.Init, 0, r)
	}
	c.Merged, c.unmerged = false, nil
	c.wrote(StoreBase)
}

// InitAdapter gives the adapter PEFT's initialisation: A kaiming-uniform
// (or gaussian), B zero, so the adapted model starts equal to its base.
func (c *Core) InitAdapter(seed uint64) {
	r := NewRNG(seed ^ 0x9e3779b97f4a7c15)
	for _, a := range c.Spec.Adapters {
		A, B := c.adapterAB(a)
		initTensor(A, a.InitA, a.In, r)
		if a.InitA == InitGaussian {
			InitNormal(A, 1/float64(a.Rank), r)
		}
		initTensor(B, a.InitB, 0, r)
	}
	c.wrote(StoreLoRA)
	c.SetOptimizer(Optimizer{})
}

func initTensor(dst []float32, kind, fanIn int, r *RNG) {
	switch kind {
	case InitOnes:
		kern.Fill(dst, 1)
	case InitZeros:
		kern.Fill(dst, 0)
	case InitKaiming:
		InitKaimingUniform(dst, fanIn, r)
	default:
		InitNormal(dst, 0.02, r)
	}
}

func (c *Core) adapterAB(a AdapterSpec) (A, B []float32) {
	return c.LoRA[a.AOffset : a.AOffset+a.Rank*a.In], c.LoRA[a.BOffset : a.BOffset+a.Out*a.Rank]
}

// LoadBase reads the base weights from Hugging Face safetensors: a file, a
// sharded checkpoint's model.safetensors.index.json, or a model directory
// holding either. F16 and BF16 tensors are widened to float32. GPT-2
// checkpoints that omit the "transformer." prefix load too; tensors the
// model does not use are ignored. Every tensor's name, shape and dtype is
// checked before any is read, so a file of the wrong model leaves the
// weights as they were; a NaN or Inf is found as its tensor is read, and is
// an error naming the tensor and the element.
func (c *Core) LoadBase(path string) error {
	w, err := openWeights(path)
	if err != nil {
		return err
	}
	defer w.close()
	type src struct {
		st   *format.Safetensors
		name string
	}
	srcs := make([]src, len(c.Spec.Base))
	for i, p := range c.Spec.Base {
		st, name, ok := w.lookup(p.Name)
		if !ok {
			if short, found := strings.CutPrefix(p.Name, "transformer."); found {
				st, name, ok = w.lookup(short)
			}
		}
		if !ok {
			return fmt.Errorf("%s: no tensor %q; expected shape %s", w.path, p.Name, format.ShapeString(p.Shape))
		}
		info, _ := st.Lookup(name)
		if !slices.Equal(info.Shape, p.Shape) {
			return fmt.Errorf("%s: tensor %q: shape %s, expected %s", st.Path, name, format.ShapeString(info.Shape), format.ShapeString(p.Shape))
		}
		if info.DType != "F32" && info.DType != "F16" && info.DType != "BF16" {
			return fmt.Errorf("%s: tensor %q: dtype %s, expected F32, F16 or BF16", st.Path, name, info.DType)
		}
		srcs[i] = src{st, name}
	}
	c.Merged, c.unmerged = false, nil
	c.wrote(StoreBase)
	for i, p := range c.Spec.Base {
		x := c.param(p)
		if err := srcs[i].st.ReadFloat32(srcs[i].name, p.Shape, x); err != nil {
			return err
		}
		if err := CheckFinite(x, p.Shape); err != nil {
			return fmt.Errorf("%s: tensor %q: %v; the weights are corrupt or diverged in training (the base weights loaded so far are not usable: load good ones)", srcs[i].st.Path, srcs[i].name, err)
		}
	}
	return nil
}

// CheckFinite reports the first NaN or ±Inf in x, a tensor of the given
// shape, by its index ("element [3, 17] is NaN"). Such a value spreads to
// every activation it touches: a model that holds one only produces NaN.
func CheckFinite(x []float32, shape []int) error {
	for i, v := range x {
		if f := float64(v); !math.IsNaN(f) && !math.IsInf(f, 0) {
			continue
		}
		idx := make([]string, len(shape))
		rest := i
		for d := len(shape) - 1; d >= 0; d-- {
			if shape[d] > 0 {
				idx[d] = strconv.Itoa(rest % shape[d])
				rest /= shape[d]
			}
		}
		return fmt.Errorf("element [%s] is %v", strings.Join(idx, ", "), v)
	}
	return nil
}

// weights is a set of safetensors files holding one checkpoint.
type weights struct {
	path  string                         // what the user named, for messages
	files map[string]*format.Safetensors // by file name
	index map[string]string              // tensor → file name (sharded checkpoints)
}

func (w *weights) close() {
	for _, st := range w.files {
		st.Close()
	}
}

func (w *weights) lookup(name string) (*format.Safetensors, string, bool) {
	if w.index == nil {
		for _, st := range w.files {
			_, ok := st.Lookup(name)
			return st, name, ok
		}
		return nil, "", false
	}
	file, ok := w.index[name]
	if !ok {
		return nil, "", false
	}
	st := w.files[file]
	_, ok = st.Lookup(name)
	return st, name, ok
}

// openWeights opens a safetensors file, a sharded index, or a directory.
func openWeights(path string) (*weights, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		for _, f := range []string{"model.safetensors", "model.safetensors.index.json"} {
			if _, err := os.Stat(filepath.Join(path, f)); err == nil {
				return openWeights(filepath.Join(path, f))
			}
		}
		return nil, fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json", path)
	}
	w := &weights{path: path, files: map[string]*format.Safetensors{}}
	if !strings.HasSuffix(path, ".index.json") {
		st, err := format.OpenSafetensors(path)
		if err != nil {
			return nil, err
		}
		w.files[filepath.Base(path)] = st
		return w, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is empty", path)
	}
	w.index = idx.WeightMap
	dir := filepath.Dir(path)
	for _, file := range idx.WeightMap {
		if _, ok := w.files[file]; ok {
			continue
		}
		if file != filepath.Base(file) {
			w.close()
			return nil, fmt.Errorf("%s: shard %q is not a file name in the index's directory", path, file)
		}
		st, err := format.OpenSafetensors(filepath.Join(dir, file))
		if err != nil {
			w.close()
			return nil, err
		}
		w.files[file] = st
	}
	return w, nil
}

// SaveBase writes the base weights (merged, if the adapter is merged) as
// F32 safetensors, atomically.
func (c *Core) SaveBase(path string) error {
	if err := c.read(StoreBase); err != nil {
		return err
	}
	ts := make([]format.WriteTensor, len(c.Spec.Base))
	for i, p := range c.Spec.Base {
		ts[i] = format.WriteTensor{Name: p.Name, Shape: p.Shape, Data: c.param(p)}
	}
	return format.WriteSafetensors(path, ts, map[string]string{"format": "pt"})
}

// PEFTConfig returns the adapter_config.json that describes the compiled
// adapters: the most common rank and alpha as defaults, the others in
// rank_pattern and alpha_pattern, full module names as target_modules.
//
// PEFT has one use_rslora flag for the whole adapter; lorac lets lora blocks
// differ. A module whose setting differs from the flag gets the alpha that
// gives the same scale under the flag (alpha/√r for alpha/r and back), so
// the file means exactly what was trained.
func (c *Core) PEFTConfig() format.PEFTConfig {
	base := c.BaseName
	if base == "" {
		base = c.Spec.Name
	}
	cfg := format.PEFTConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModelNameOrPath: base, Bias: "none",
		RankPattern: map[string]int{}, AlphaPattern: map[string]float64{}, InitLoraWeights: true}
	rs := 0
	for _, a := range c.Spec.Adapters {
		if a.RSLoRA {
			rs++
		}
	}
	cfg.UseRSLoRA = 2*rs > len(c.Spec.Adapters)
	alpha := func(a AdapterSpec) float64 {
		switch {
		case a.RSLoRA == cfg.UseRSLoRA:
			return a.Alpha
		case cfg.UseRSLoRA:
			return a.Alpha / math.Sqrt(float64(a.Rank))
		default:
			return a.Alpha * math.Sqrt(float64(a.Rank))
		}
	}
	type ra struct {
		r int
		a float64
	}
	count := map[ra]int{}
	var best ra
	for _, a := range c.Spec.Adapters {
		k := ra{a.Rank, alpha(a)}
		count[k]++
		if count[k] > count[best] || (count[k] == count[best] && (k.r < best.r || (k.r == best.r && k.a < best.a))) {
			best = k
		}
		cfg.TargetModules = append(cfg.TargetModules, a.Module)
		cfg.LoraDropout = math.Max(cfg.LoraDropout, a.Dropout)
		cfg.FanInFanOut = cfg.FanInFanOut || a.Conv1D
	}
	cfg.R, cfg.LoraAlpha = best.r, best.a
	for _, a := range c.Spec.Adapters {
		if a.Rank != best.r {
			cfg.RankPattern[a.Module] = a.Rank
		}
		if al := alpha(a); al != best.a {
			cfg.AlphaPattern[a.Module] = al
		}
	}
	sort.Strings(cfg.TargetModules)
	return cfg
}

// SaveAdapter writes the adapter as a PEFT directory.
func (c *Core) SaveAdapter(dir string) error {
	if len(c.Spec.Adapters) == 0 {
		return errors.New("the model has no lora block, so there is no adapter to save")
	}
	if err := c.read(StoreLoRA); err != nil {
		return err
	}
	ad := &format.PEFTAdapter{Config: c.PEFTConfig()}
	for _, a := range c.Spec.Adapters {
		A, B := c.adapterAB(a)
		ad.Modules = append(ad.Modules, format.LoRAWeights{Module: a.Module, A: A, B: B, Rank: a.Rank, In: a.In, Out: a.Out})
	}
	sort.Slice(ad.Modules, func(i, j int) bool { return ad.Modules[i].Module < ad.Modules[j].Module })
	return format.WritePEFT(dir, ad)
}

// scaleOf describes how an adapter's scale comes about.
func scaleOf(alpha float64, rank int, rslora bool) string {
	if rslora {
		return fmt.Sprintf("rsLoRA: alpha %g / √rank %d", alpha, rank)
	}
	return fmt.Sprintf("alpha %g / rank %d", alpha, rank)
}

// scaleFix says what to change in the .lora file so that the compiled
// adapter a gets the scale of an adapter with alpha and rslora: the rslora
// line when that is what differs, alpha as well only if it differs too.
func scaleFix(a AdapterSpec, alpha float64, rslora bool) string {
	var fix []string
	if rslora != a.RSLoRA {
		fix = append(fix, fmt.Sprintf("rslora %t", rslora))
	}
	if math.Abs(alpha-a.Alpha) > 1e-9*math.Abs(alpha) {
		fix = append(fix, fmt.Sprintf("alpha %g", alpha))
	}
	if len(fix) == 0 {
		// Same alpha and rsLoRA, so the rank differs, which the shape
		// check has reported already; say so all the same.
		return "compile the model with this adapter's rank and alpha"
	}
	return "write " + strings.Join(fix, " and ") + " in the .lora file's lora block for " + a.Module
}

// LoadAdapter reads a PEFT adapter directory into the compiled adapter. Its
// modules, ranks and scales must be the compiled ones: the scale is a
// constant of the generated kernels.
func (c *Core) LoadAdapter(dir string) error {
	if c.Merged {
		return errors.New("unmerge the current adapter before loading another")
	}
	ad, err := format.ReadPEFT(dir)
	if err != nil {
		return err
	}
	byModule := map[string]*format.LoRAWeights{}
	for i := range ad.Modules {
		byModule[ad.Modules[i].Module] = &ad.Modules[i]
	}
	for _, a := range c.Spec.Adapters {
		// ReadPEFT checked every tensor against the config's
		// target_modules, exclude_modules and layers_to_transform; the
		// compiled modules must be ones the config selects as well.
		if err := ad.Config.CheckModule(a.Module); err != nil {
			return fmt.Errorf("%s: %v in %s, but the model adapts it", dir, err, format.PEFTConfigFile)
		}
		w := byModule[a.Module]
		if w == nil {
			return fmt.Errorf("%s: no lora_A/lora_B for %s, which the model adapts", dir, a.Module)
		}
		if w.Rank != a.Rank || w.In != a.In || w.Out != a.Out {
			return fmt.Errorf("%s: %s has A (%d, %d) and B (%d, %d); the model was compiled for A (%d, %d) and B (%d, %d)",
				dir, a.Module, w.Rank, w.In, w.Out, w.Rank, a.Rank, a.In, a.Out, a.Rank)
		}
		if s := ad.Config.Scale(a.Module); math.Abs(s-float64(a.Scale)) > 1e-6*math.Abs(s) {
			return fmt.Errorf("%s: %s has scale %g (%s), the model was compiled with scale %g; %s",
				dir, a.Module, s, scaleOf(ad.Config.AlphaFor(a.Module), w.Rank, ad.Config.UseRSLoRA), a.Scale, scaleFix(a, ad.Config.AlphaFor(a.Module), ad.Config.UseRSLoRA))
		}
	}
	if len(ad.Modules) != len(c.Spec.Adapters) {
		compiled := map[string]bool{}
		for _, a := range c.Spec.Adapters {
			compiled[a.Module] = true
		}
		for _, w := range ad.Modules {
			if !compiled[w.Module] {
				return fmt.Errorf("%s: adapts %s, which the model does not adapt; add it to a lora block", dir, w.Module)
			}
		}
	}
	for _, a := range c.Spec.Adapters {
		w := byModule[a.Module]
		for _, t := range []struct {
			name  string
			x     []float32
			shape []int
		}{{"lora_A", w.A, []int{w.Rank, w.In}}, {"lora_B", w.B, []int{w.Out, w.Rank}}} {
			if err := CheckFinite(t.x, t.shape); err != nil {
				return fmt.Errorf("%s: %s.%s.weight: %v; the adapter is corrupt or diverged in training", dir, a.Module, t.name, err)
			}
		}
	}
	// Copy only once everything checked: a bad file leaves the model as it was.
	for _, a := range c.Spec.Adapters {
		w := byModule[a.Module]
		A, B := c.adapterAB(a)
		copy(A, w.A)
		copy(B, w.B)
	}
	c.wrote(StoreLoRA)
	c.Detached = false
	return nil
}

// Merge folds every adapter into its base weight: W += s·B·A. Forward passes
// then run the base graph on merged weights, at the base model's cost.
func (c *Core) Merge() error {
	if c.Merged {
		return errors.New("the adapter is already merged")
	}
	if c.Detached {
		return errors.New("the adapter is detached; attach it before merging")
	}
	if c.exec != nil {
		if err := c.upload(); err != nil {
			return err
		}
		if err := c.exec.Merge(); err != nil {
			return err
		}
		c.changed(StoreBase)
		c.Merged = true
		return nil
	}
	c.unmerged = make([][]float32, len(c.Spec.Adapters))
	for i, a := range c.Spec.Adapters {
		A, B := c.adapterAB(a)
		w := c.Base[a.WOffset : a.WOffset+a.In*a.Out]
		c.unmerged[i] = append([]float32(nil), w...)
		kern.LoRAMerge(w, A, B, a.In, a.Out, a.Rank, a.Scale, a.Conv1D)
	}
	c.Merged = true
	return nil
}

// Unmerge restores the weights Merge changed, exactly: it puts back the
// copies Merge kept rather than subtracting s·B·A, which would round.
func (c *Core) Unmerge() error {
	if !c.Merged {
		return errors.New("the adapter is not merged")
	}
	if c.exec != nil {
		if err := c.exec.Unmerge(); err != nil {
			return err
		}
		c.changed(StoreBase)
		c.Merged = false
		return nil
	}
	for i, a := range c.Spec.Adapters {
		copy(c.Base[a.WOffset:a.WOffset+a.In*a.Out], c.unmerged[i])
	}
	c.unmerged = nil
	c.Merged = false
	return nil
}

// Detach makes forward passes ignore the adapter, without touching any
// weight: the model is exactly its base. Attach undoes it.
func (c *Core) Detach() { c.Detached = true }

// Attach runs the adapter again after Detach.
func (c *Core) Attach() { c.Detached = false }

// Optimizer is AdamW with its moments for one parameter store.
type Optimizer struct {
	M, V []float32
	Step int // updates applied so far
}

// Update applies one AdamW step to params with grads, at the train block's
// schedule, after clipping the gradients' global norm. It returns the norm
// before clipping.
func (o *Optimizer) Update(params, grads []float32, t TrainSpec) float64 {
	if len(o.M) != len(params) {
		o.M, o.V, o.Step = make([]float32, len(params)), make([]float32, len(params)), 0
	}
	norm := ClipGradients(t.Clip, grads)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	lr := LearningRate(o.Step, t.Warmup, t.Steps, t.LR, t.Schedule)
	o.Step++
	opt := DefaultAdamW()
	opt.WeightDecay = t.WeightDecay
	opt.Step(params, grads, o.M, o.V, o.Step, lr)
	return norm
}

// CheckTokens reports token ids outside [0, vocab) and sequences that are
// empty or longer than limit.
func CheckTokens(tokens []int32, limit, vocab int) error {
	if len(tokens) == 0 || len(tokens) > limit {
		return fmt.Errorf("%d tokens; want 1 to %d", len(tokens), limit)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("token %d is %d, outside the vocabulary [0, %d)", i, t, vocab)
		}
	}
	return nil
}

// CheckBatch validates a training batch: B·T tokens and targets in range,
// a target of kern.IgnoreTarget (-1) being allowed: the loss skips it.
func CheckBatch(tokens, targets []int32, B, T, vocab int) error {
	if len(tokens) != B*T || len(targets) != B*T {
		return fmt.Errorf("batch of %d tokens and %d targets; the model was compiled for %d × %d", len(tokens), len(targets), B, T)
	}
	if err := CheckTokens(tokens, B*T, vocab); err != nil {
		return err
	}
	for i, t := range targets {
		if t == kern.IgnoreTarget {
			continue
		}
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("targets: target %d is %d, outside the vocabulary [0, %d) and not %d (ignored)", i, t, vocab, kern.IgnoreTarget)
		}
	}
	return nil
}

// Positions returns the position ids of a [B, T] batch: 0..T−1 in each row.
func Positions(B, T int) []int32 {
	pos := make([]int32, B*T)
	for i := range pos {
		pos[i] = int32(i % T)
	}
	return pos
}

// Generate appends n tokens to prompt, each sampled from the logits that
// decode returns for the token before it. decode(token, pos) runs one token
// at position pos of the sequence kept in the model's KV cache. When the
// cache (context positions) is full, the last context/2 tokens are decoded
// again from position 0 and generation goes on from there.
func Generate(decode func(token int32, pos int) ([]float32, error), prompt []int32, n, context int, s Sampler, r *RNG) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, errors.New("generate: the prompt is empty")
	}
	out := append([]int32{}, prompt...)
	var logits []float32
	// prefill decodes out[w:] into an empty cache.
	prefill := func(w int) error {
		for i := w; i < len(out); i++ {
			l, err := decode(out[i], i-w)
			if err != nil {
				return err
			}
			logits = l
		}
		return nil
	}
	w := max(0, len(out)-context)
	if err := prefill(w); err != nil {
		return nil, err
	}
	for k := range n {
		next := s.Sample(logits, r)
		out = append(out, next)
		if k == n-1 || slices.Contains(s.Stop, next) {
			break
		}
		if len(out)-w > context {
			w = len(out) - context/2
			if err := prefill(w); err != nil {
				return nil, err
			}
			continue
		}
		l, err := decode(next, len(out)-1-w)
		if err != nil {
			return nil, err
		}
		logits = l
	}
	return out, nil
}
