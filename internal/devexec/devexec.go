// Package devexec runs a compiled graph on a CUDA device: each node's calls
// from the lowering table (package lower), dispatched by kernel name to the
// methods of cuda.Lorac. It is the device
// twin of internal/interp: what checks the CUDA kernels end to end against
// the interpreter (on a GPU, or on runtime/cuda's PTX simulator in its
// tests), and what lorac bench --device cuda times. Activations sit at the
// memory plan's offsets in one device arena, as in generated code; it
// synchronises only where a kernel returns a value (the loss).
package devexec

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/interp"
	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/runtime/cuda"
	"lorac.dev/lorac/runtime/kern"
)

// Env is what a run reads besides the graph, as in interp.Env.
type Env struct {
	Params    map[string][]float32
	Inputs    map[string][]int32
	State     map[string][]float32 // KV caches, updated in place on the device
	Step      uint64               // selects the dropout masks
	NoDropout bool
	// RowParams are the adapters of a graph with per-row adapters, as in
	// interp.Env: row r's LoRA parameters by name, nil for a row on the
	// base alone; Branches, when set, replaces them with weighted mixes.
	RowParams []map[string][]float32
	Branches  []interp.Branch[float32]
	// Resident are device buffers the run uses in place of uploading:
	// parameters by parameter name, state inputs (KV caches) by input
	// name. The run neither copies nor frees them, so several runs (the
	// graphs of one model) share one copy of the weights.
	Resident map[string]cuda.Buffer
	// Grads places the gradient of a parameter (by name) in a device
	// buffer the caller owns, as generated code places it in the Core's
	// gradient store.
	Grads map[string]cuda.Buffer
	// Arena, when at least the plan's size, holds the activations
	// instead of an arena of the run's own (graphs run one at a time
	// share one, as in generated code). The run does not free it.
	Arena cuda.Buffer
}

// Run holds a graph's values on the device after Execute.
type Run struct {
	l     *cuda.Lorac
	g     *graph.Graph
	bufs  map[*graph.Value]cuda.Buffer
	own   []cuda.Buffer // buffers allocated for single values
	arena cuda.Buffer   // the memory plan's activations
	tmp   []cuda.Buffer
	env   Env
	calls [][]call // per node, resolved by Prepare
	// ownArena says whether the run allocated the arena (and frees it).
	ownArena bool
	// idChecks are the id inputs' limits, checked again by SetInputs;
	// masks the dropout masks, remade by SetStep.
	idChecks []idCheck
	masks    []maskSlot
}

// idCheck is an id input's range as a kernel reads it.
type idCheck struct {
	v         *graph.Value
	limit     int
	ignorable bool
}

// maskSlot is one dropout mask on the device: what it is made from. The
// calls of one module (its forward and its backward) share it.
type maskSlot struct {
	buf  cuda.Buffer
	p    float64
	seed uint64
}

var ptrType = reflect.TypeFor[cuda.Ptr]()

// Execute uploads the parameters, inputs and state, then runs every node
// once. Missing or mis-sized data and out-of-range ids are errors.
func Execute(l *cuda.Lorac, g *graph.Graph, env Env) (*Run, error) {
	r, err := Prepare(l, g, env)
	if err != nil {
		return nil, err
	}
	if err := r.Step(); err != nil {
		r.Free()
		return nil, err
	}
	return r, nil
}

// Prepare allocates a buffer for every value, uploads the parameters,
// inputs and state, checks the ids and resolves every kernel call once
// (pointers, dimensions, and the dropout masks of env.Step, made on the
// device and kept until SetStep); Step then runs the graph, as often as wanted (every kernel
// overwrites its outputs, so steps need no clearing).
func Prepare(l *cuda.Lorac, g *graph.Graph, env Env) (*Run, error) {
	if err := Supported(g); err != nil {
		return nil, err
	}
	r := &Run{l: l, g: g, bufs: map[*graph.Value]cuda.Buffer{}, env: env}
	r.env.Inputs = maps.Clone(env.Inputs)
	fail := func(err error) (*Run, error) {
		r.Free()
		return nil, err
	}
	for _, v := range g.Params {
		if b, ok := env.Resident[v.Param.Name]; ok {
			if b.Len != 4*v.Shape.Numel() {
				return fail(fmt.Errorf("devexec: resident parameter %s has %d bytes, not %s", v.Param.Name, b.Len, v.Shape))
			}
			r.bufs[v] = b
			continue
		}
		data, ok := env.Params[v.Param.Name]
		if !ok || len(data) != v.Shape.Numel() {
			return fail(fmt.Errorf("devexec: parameter %s is missing or not %s", v.Param.Name, v.Shape))
		}
		if err := r.upload(v, data); err != nil {
			return fail(err)
		}
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			if b, ok := env.Resident[v.Name]; ok {
				if b.Len != 4*v.Shape.Numel() {
					return fail(fmt.Errorf("devexec: resident state %s has %d bytes, not %s", v.Name, b.Len, v.Shape))
				}
				r.bufs[v] = b
				continue
			}
			data, ok := env.State[v.Name]
			if !ok || len(data) != v.Shape.Numel() {
				return fail(fmt.Errorf("devexec: state input %s is missing or not %s", v.Name, v.Shape))
			}
			if err := r.upload(v, data); err != nil {
				return fail(err)
			}
			continue
		}
		data, ok := env.Inputs[v.Name]
		if !ok || len(data) != v.Shape.Numel() {
			return fail(fmt.Errorf("devexec: input %s is missing or not %s", v.Name, v.Shape))
		}
		if err := r.upload(v, data); err != nil {
			return fail(err)
		}
	}
	// Activations live where the memory plan puts them, in one arena, as
	// in generated code: the device kernels see the plan's reuse of
	// memory. Values the plan does not place (gradients, outputs of a graph
	// planned without PlanMemory) get buffers of their own.
	if g.Plan != nil && g.Plan.ArenaBytes > 0 {
		if size := int((g.Plan.ArenaBytes + 3) &^ 3); env.Arena.Ptr != 0 && env.Arena.Len >= size {
			r.arena = env.Arena
		} else {
			a, err := l.D.Alloc(size)
			if err == nil {
				err = l.D.Zero(a)
			}
			if err != nil {
				return fail(err)
			}
			r.arena, r.ownArena = a, true
		}
	}
	for _, n := range g.Nodes {
		for _, o := range n.Out {
			if o.GradOf != nil {
				if b, ok := env.Grads[o.GradOf.Name]; ok {
					if b.Len != 4*o.Shape.Numel() {
						return fail(fmt.Errorf("devexec: gradient buffer of %s has %d bytes, not %s", o.GradOf.Name, b.Len, o.Shape))
					}
					r.bufs[o] = b
					continue
				}
			}
			if off, ok := r.planned(o); ok {
				r.bufs[o] = cuda.Buffer{Ptr: r.arena.Ptr + cuda.Ptr(off), Len: 4 * o.Shape.Numel()}
				continue
			}
			b, err := l.D.Alloc(4 * max(o.Shape.Numel(), 1))
			if err == nil {
				err = l.D.Zero(b)
			}
			if err != nil {
				return fail(err)
			}
			r.bufs[o] = b
			r.own = append(r.own, b)
		}
	}
	// Resolve every call once: ids are checked and masks made here.
	for _, n := range g.Nodes {
		calls, err := r.prepare(n)
		if err != nil {
			return fail(fmt.Errorf("devexec: node %d %s: %w", n.ID, n.Op, err))
		}
		r.calls = append(r.calls, calls)
	}
	return r, nil
}

// Supported checks, without a device, that every call of g is one the
// device runs: its kernel is a cuda.Lorac method (not in cuda.NotOnDevice)
// and its attributes ask for no feature the device kernels lack
// (cuda.Check). Prepare calls it first, so that an unsupported graph is
// refused before anything is uploaded or launched.
func Supported(g *graph.Graph) error {
	for _, n := range g.Nodes {
		lowered, err := lower.Lower(n)
		if err != nil {
			return fmt.Errorf("devexec: node %d %s: %w", n.ID, n.Op, err)
		}
		for _, c := range lowered {
			if c.Kernel == "Fill" {
				continue
			}
			args := make([]any, len(c.Args))
			for i, a := range c.Args {
				switch a.Kind {
				case lower.Int:
					args[i] = a.Int
				case lower.Float:
					args[i] = a.Float
				case lower.Bool:
					args[i] = a.Bool
				case lower.Scalar:
					args[i] = float32(0)
				case lower.RowSlices:
					args[i] = []cuda.Ptr(nil)
				case lower.BranchRows:
					args[i] = []int32(nil)
				case lower.BranchWeights:
					args[i] = []float32(nil)
				default:
					args[i] = cuda.Ptr(0)
				}
			}
			if err := cuda.Check(c.Kernel, args...); err != nil {
				return fmt.Errorf("devexec: node %d %s: %w", n.ID, n.Op, err)
			}
			if _, ok := reflect.TypeFor[*cuda.Lorac]().MethodByName(c.Kernel); !ok {
				return fmt.Errorf("devexec: node %d %s: cuda.Lorac has no method %s", n.ID, n.Op, c.Kernel)
			}
		}
	}
	return nil
}

// planned returns v's arena offset, if the plan places it.
func (r *Run) planned(v *graph.Value) (int64, bool) {
	if r.arena.Ptr == 0 || r.g.Plan == nil {
		return 0, false
	}
	off, ok := r.g.Plan.Offsets[v]
	if ok && off+4*int64(v.Shape.Numel()) > r.g.Plan.ArenaBytes {
		return 0, false
	}
	return off, ok
}

// Step runs every node once and waits for the device.
func (r *Run) Step() error {
	for i, n := range r.g.Nodes {
		if err := r.exec(r.calls[i]); err != nil {
			return fmt.Errorf("devexec: node %d %s: %w", n.ID, n.Op, err)
		}
	}
	return r.l.D.Sync()
}

// ArenaBytes is the size of the memory plan's arena on the device (0 when
// the graph has no plan).
func (r *Run) ArenaBytes() int { return r.arena.Len }

// Buffer is the device buffer holding v.
func (r *Run) Buffer(v *graph.Value) (cuda.Buffer, bool) {
	b, ok := r.bufs[v]
	return b, ok
}

func upload[T float32 | int32](r *Run, v *graph.Value, data []T) error {
	b, err := r.l.D.Alloc(4 * max(len(data), 1))
	if err != nil {
		return err
	}
	r.bufs[v] = b
	r.own = append(r.own, b)
	return cuda.Upload(r.l.D, b, data)
}

func (r *Run) upload(v *graph.Value, data any) error {
	switch d := data.(type) {
	case []float32:
		return upload(r, v, d)
	case []int32:
		return upload(r, v, d)
	}
	return fmt.Errorf("devexec: cannot upload %T", data)
}

// Value downloads a float value (an output, a gradient, an updated cache).
func (r *Run) Value(v *graph.Value) ([]float32, error) {
	b, ok := r.bufs[v]
	if !ok || v.DType == graph.I32 {
		return nil, fmt.Errorf("devexec: %s is not a float value of the run", v.Ref())
	}
	out := make([]float32, v.Shape.Numel())
	if err := r.l.D.Sync(); err != nil {
		return nil, err
	}
	return out, cuda.Download(r.l.D, out, b)
}

// Free releases the run's device memory (not the caller's resident
// buffers, gradient buffers or arena).
func (r *Run) Free() error {
	var first error
	bufs := append(r.own, r.tmp...)
	if r.ownArena {
		bufs = append(bufs, r.arena)
	}
	for _, b := range bufs {
		if err := r.l.D.Free(b); err != nil && first == nil {
			first = err
		}
	}
	r.bufs, r.own, r.tmp, r.arena, r.ownArena = map[*graph.Value]cuda.Buffer{}, nil, nil, cuda.Buffer{}, false
	r.masks, r.idChecks = nil, nil
	return first
}

// SetInputs replaces the id inputs (tokens, positions, targets) of a
// prepared run, for its next Step: every id is checked as Prepare checks
// them, all before any is uploaded, so a bad batch leaves the run as it
// was. Inputs not named keep their data.
func (r *Run) SetInputs(inputs map[string][]int32) error {
	byName := map[string]*graph.Value{}
	for _, v := range r.g.Inputs {
		if v.DType == graph.I32 {
			byName[v.Name] = v
		}
	}
	for name, data := range inputs {
		v, ok := byName[name]
		if !ok {
			return fmt.Errorf("devexec: the graph has no id input %s", name)
		}
		if len(data) != v.Shape.Numel() {
			return fmt.Errorf("devexec: input %s has %d ids, not %s", name, len(data), v.Shape)
		}
	}
	for _, c := range r.idChecks {
		if data, ok := inputs[c.v.Name]; ok {
			if err := checkIDs(data, c.limit, c.ignorable, c.v.Ref()); err != nil {
				return fmt.Errorf("devexec: %w", err)
			}
		}
	}
	for name, data := range inputs {
		v := byName[name]
		if err := cuda.Upload(r.l.D, r.bufs[v], data); err != nil {
			return err
		}
		r.env.Inputs[name] = data
	}
	return nil
}

// SetStep remakes the dropout masks for optimizer step (or seed) step, for
// the run's next Step: one lorac_dropout_mask launch per mask, on the
// device, nothing uploaded.
func (r *Run) SetStep(step uint64) error {
	if step == r.env.Step {
		return nil
	}
	for _, m := range r.masks {
		if err := r.l.DropoutMask(m.buf.Ptr, m.buf.Len/4, m.p, m.seed, step); err != nil {
			return fmt.Errorf("devexec: dropout mask: %w", err)
		}
	}
	r.env.Step = step
	return nil
}

// checkIDs rejects ids outside [0, limit) (−1 too when ignorable), as the
// interpreter does: the kernels index with them unchecked.
// ignorable says whether the device accepts -1 in the ids argument a of
// kernel: only as an ignored loss target. The device's embedding, RoPE and
// decode attention index with ids unchecked, so padding rows (-1, which a
// prefill chunk has and the CPU kernels skip) are not on the device.
func ignorable(kernel string, a lower.Arg) bool {
	return a.Ignorable && strings.HasPrefix(kernel, "CrossEntropy")
}

func checkIDs(ids []int32, limit int, ignorable bool, what string) error {
	for j, id := range ids {
		if ignorable && id == kern.IgnoreTarget {
			continue
		}
		if id < 0 || int(id) >= limit {
			return fmt.Errorf("%s[%d] = %d is outside [0, %d)", what, j, id, limit)
		}
	}
	return nil
}

// Method returns the cuda.Lorac method that runs a lowering kernel.
func Method(l *cuda.Lorac, kernel string) (reflect.Value, bool) {
	m := reflect.ValueOf(l).MethodByName(kernel)
	return m, m.IsValid()
}

// call is one kernel call with its arguments resolved once, in Prepare:
// pointers, dimensions, attributes and dropout masks do not change between
// steps. A Scalar argument (the loss gradient) is read at each step.
type call struct {
	kernel string
	fn     reflect.Value
	args   []reflect.Value
	scalar map[int]*graph.Value // argument index → value read at run time
	result *graph.Value
	fill   *graph.Value // Fill: the destination, sized here
	v      float32      // Fill: the value
}

// prepare resolves a node's calls.
func (r *Run) prepare(n *graph.Node) ([]call, error) {
	lowered, err := lower.Lower(n)
	if err != nil {
		return nil, err
	}
	var calls []call
	for _, c := range lowered {
		if c.Kernel == "Fill" {
			// kern.Fill takes its length from the slice; a device pointer
			// has none.
			calls = append(calls, call{kernel: c.Kernel, fill: c.Args[0].Value, v: float32(c.Args[1].Float)})
			continue
		}
		fn, ok := Method(r.l, c.Kernel)
		if !ok {
			return nil, fmt.Errorf("cuda.Lorac has no method %s", c.Kernel)
		}
		ft := fn.Type()
		if ft.NumIn() != len(c.Args) {
			return nil, fmt.Errorf("cuda.Lorac.%s takes %d arguments, the lowering table gives %d", c.Kernel, ft.NumIn(), len(c.Args))
		}
		pc := call{kernel: c.Kernel, fn: fn, args: make([]reflect.Value, len(c.Args)), scalar: map[int]*graph.Value{}, result: c.Result}
		for i, a := range c.Args {
			pt := ft.In(i)
			switch a.Kind {
			case lower.Slice:
				p := cuda.Ptr(0)
				if a.Value != nil {
					if a.Value.DType == graph.I32 {
						limit := a.Int
						if limit == 0 {
							limit = math.MaxInt32
						}
						if err := checkIDs(r.ids(a.Value), limit, ignorable(c.Kernel, a), a.Value.Ref()); err != nil {
							return nil, err
						}
						if a.Value.Input {
							r.idChecks = append(r.idChecks, idCheck{a.Value, limit, a.Ignorable})
						}
					}
					p = r.bufs[a.Value].Ptr
				}
				pc.args[i] = reflect.ValueOf(p)
			case lower.Mask:
				p, err := r.mask(n, a.Value.Shape.Numel())
				if err != nil {
					return nil, err
				}
				pc.args[i] = reflect.ValueOf(p)
			case lower.Scalar:
				pc.scalar[i] = a.Value
				pc.args[i] = reflect.Zero(pt)
			case lower.Int:
				pc.args[i] = reflect.ValueOf(a.Int)
			case lower.Float:
				pc.args[i] = reflect.ValueOf(a.Float).Convert(pt)
			case lower.Bool:
				pc.args[i] = reflect.ValueOf(a.Bool)
			case lower.RowSlices:
				ptrs, err := r.rowParams(a.Value)
				if err != nil {
					return nil, err
				}
				pc.args[i] = reflect.ValueOf(ptrs)
			case lower.BranchRows:
				rows, err := interp.BranchRows(r.branches(), a.Int)
				if err != nil {
					return nil, err
				}
				pc.args[i] = reflect.ValueOf(rows)
			case lower.BranchWeights:
				pc.args[i] = reflect.ValueOf(interp.BranchWeights(r.branches()))
			}
			if pc.args[i].Type() != pt {
				return nil, fmt.Errorf("%s argument %s is %s, cuda.Lorac.%s takes %s", c.Kernel, a.Name, pc.args[i].Type(), c.Kernel, pt)
			}
		}
		calls = append(calls, pc)
	}
	return calls, nil
}

// exec runs a node's prepared calls.
func (r *Run) exec(calls []call) error {
	for _, c := range calls {
		if c.fill != nil {
			if err := r.l.Fill(r.bufs[c.fill].Ptr, c.fill.Shape.Numel(), c.v); err != nil {
				return err
			}
			continue
		}
		args := c.args
		if len(c.scalar) > 0 {
			args = append([]reflect.Value(nil), c.args...)
			for i, v := range c.scalar {
				x, err := r.Value(v)
				if err != nil {
					return err
				}
				args[i] = reflect.ValueOf(x[0]).Convert(c.fn.Type().In(i))
			}
		}
		out := c.fn.Call(args)
		if e := out[len(out)-1].Interface(); e != nil {
			return fmt.Errorf("%s: %w", c.kernel, e.(error))
		}
		if c.result != nil {
			v := out[0].Interface().(float32)
			if err := cuda.Upload(r.l.D, r.bufs[c.result], []float32{v}); err != nil {
				return err
			}
		}
	}
	return nil
}

// branches are the env's weighted branches: Branches, or RowParams as
// branches of weight 1.
func (r *Run) branches() []interp.Branch[float32] {
	env := interp.Env[float32]{RowParams: r.env.RowParams, Branches: r.env.Branches}
	return env.AllBranches()
}

// rowParams uploads parameter v of each branch's adapter (env.Branches or
// env.RowParams) and returns the device pointers.
func (r *Run) rowParams(v *graph.Value) ([]cuda.Ptr, error) {
	brs := r.branches()
	ptrs := make([]cuda.Ptr, len(brs))
	for j, br := range brs {
		data, ok := br.Params[v.Param.Name]
		if !ok || len(data) != v.Shape.Numel() {
			return nil, fmt.Errorf("row %d's adapter has no %s of %d elements", br.Row, v.Param.Name, v.Shape.Numel())
		}
		b, err := r.l.D.Alloc(4 * max(len(data), 1))
		if err != nil {
			return nil, err
		}
		r.tmp = append(r.tmp, b)
		if err := cuda.Upload(r.l.D, b, data); err != nil {
			return nil, err
		}
		ptrs[j] = b.Ptr
	}
	return ptrs, nil
}

// ids returns an i32 value's host data (inputs only carry ids).
func (r *Run) ids(v *graph.Value) []int32 { return r.env.Inputs[v.Name] }

// mask makes the node's dropout mask for env.Step on the device
// (lorac_dropout_mask: kern.DropoutMask's values bit for bit), or returns
// 0 without dropout. A mask is a pure function of (p, seed, step, size),
// so calls that agree on those (a module's forward and backward) share one
// buffer.
func (r *Run) mask(n *graph.Node, size int) (cuda.Ptr, error) {
	if n.Attr.Dropout == 0 || !r.g.Dropout || r.env.NoDropout || size == 0 {
		return 0, nil
	}
	p, seed := n.Attr.Dropout, n.Attr.Seed
	for _, m := range r.masks {
		if m.p == p && m.seed == seed && m.buf.Len == 4*size {
			return m.buf.Ptr, nil
		}
	}
	b, err := r.l.D.Alloc(4 * size)
	if err != nil {
		return 0, err
	}
	r.tmp = append(r.tmp, b)
	if err := r.l.DropoutMask(b.Ptr, size, p, seed, r.env.Step); err != nil {
		return 0, fmt.Errorf("dropout mask: %w", err)
	}
	r.masks = append(r.masks, maskSlot{b, p, seed})
	return b.Ptr, nil
}

// Time prepares g once, runs it once to warm up, then returns the
// mean wall time of steps runs (each waits for the device), with an AdamW
// update of every trainable parameter after each when adamw is set.
func Time(l *cuda.Lorac, g *graph.Graph, env Env, adamw bool, steps int) (float64, error) {
	r, err := Prepare(l, g, env)
	if err != nil {
		return 0, err
	}
	defer r.Free()
	type slot struct {
		p, g cuda.Buffer
		m, v cuda.Buffer
		n    int
	}
	var slots []slot
	if adamw {
		gi := 0
		for _, p := range g.Params {
			if !p.Param.Trainable {
				continue
			}
			if gi >= len(g.Grads) {
				return 0, fmt.Errorf("a trainable parameter without a gradient")
			}
			pb, _ := r.Buffer(p)
			gb, ok := r.Buffer(g.Grads[gi])
			gi++
			if !ok {
				return 0, fmt.Errorf("gradient of %s not on the device", p.Param.Name)
			}
			s := slot{p: pb, g: gb, n: p.Shape.Numel()}
			for _, b := range []*cuda.Buffer{&s.m, &s.v} {
				if *b, err = l.D.Alloc(4 * s.n); err == nil {
					err = l.D.Zero(*b)
				}
				if err != nil {
					return 0, err
				}
				defer l.D.Free(*b)
			}
			slots = append(slots, s)
		}
	}
	step := 0
	run := func() error {
		if err := r.Step(); err != nil {
			return err
		}
		step++
		for _, s := range slots {
			if err := l.AdamW(s.p.Ptr, s.g.Ptr, s.m.Ptr, s.v.Ptr, s.n, 0.9, 0.999, 1e-8, 0, 1e-4, step); err != nil {
				return err
			}
		}
		return l.D.Sync()
	}
	if err := run(); err != nil {
		return 0, err
	}
	start := time.Now()
	for range steps {
		if err := run(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(start).Microseconds()) / 1000 / float64(steps), nil
}

// RandomEnv gives every parameter small random values (gains 1), tokens
// and targets random ids, positions their index, caches random values.
func RandomEnv(g *graph.Graph, rng *rand.Rand, vocab int) Env {
	env := Env{Params: map[string][]float32{}, Inputs: map[string][]int32{}, State: map[string][]float32{}}
	for _, v := range g.Params {
		data := make([]float32, v.Shape.Numel())
		for i := range data {
			data[i] = float32(rng.NormFloat64() * 0.02)
			if v.Param.Init == graph.InitOnes {
				data[i] = 1
			}
		}
		env.Params[v.Param.Name] = data
	}
	for _, v := range g.Inputs {
		if v.DType != graph.I32 {
			env.State[v.Name] = make([]float32, v.Shape.Numel())
			continue
		}
		data := make([]int32, v.Shape.Numel())
		for i := range data {
			switch {
			case v.Name == "pos" && len(v.Shape) == 1:
				data[i] = 0
			case v.Name == "pos":
				data[i] = int32(i % v.Shape[len(v.Shape)-1])
			default:
				data[i] = int32(rng.IntN(vocab))
			}
		}
		env.Inputs[v.Name] = data
	}
	return env
}
