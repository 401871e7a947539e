package serve

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"lorac.dev/lorac/runtime/engine"
)

// Request is one completion the scheduler runs: the prompt's token ids,
// how many tokens to sample and how, and the adapter (nil: the base).
type Request struct {
	Ctx       context.Context // the scheduler drops the request when it is done
	Prompt    []int32
	MaxTokens int
	Sampler   engine.Sampler
	Seed      uint64
	Adapter   *Adapter
	// Mix, when set (and Adapter nil), is a weighted mix of adapters:
	// base + Σ weight · adapter's branch (needs the rows graph).
	Mix    []Weighted
	EOS    int32 // ends generation when HasEOS
	HasEOS bool

	keepLogits bool       // tests: send each token's logits
	events     chan Event // one per token, then one with Done
}

// Weighted is one adapter of a request's mix, with its weight.
type Weighted struct {
	Adapter *Adapter
	Weight  float32
}

// Event is one step of a request: a sampled token, or the end.
type Event struct {
	Token  int32
	EOS    bool      // Token is the end-of-sequence token (not text)
	Logits []float32 // the logits Token was sampled from (tests only)
	Done   bool
	Finish string // "length" or "stop", when Done without Err
	Err    error  // why the request ended early (its context's error)
}

// ErrQueueFull is a request the scheduler has no room to queue.
var ErrQueueFull = errors.New("the server's request queue is full")

// ErrClosed is a request that arrives after the scheduler stopped.
var ErrClosed = errors.New("the server is shutting down")

// prefillChunk is the most prompt tokens a row decodes in one step.
const prefillChunk = 32

// row is a running request: its own key/value cache, sampler state and
// position.
type row struct {
	req       *Request
	kv        []float32
	rng       *engine.RNG
	prefilled bool
	pos       int   // the position the next token is decoded at
	last      int32 // the token sampled last
	n         int   // tokens sampled
	g         *group
	slot      int // in g, with the rows graph
}

// Scheduler runs requests with continuous batching on one model: a step
// advances every running request by one token; requests join the running
// batch at a step boundary and leave it when they finish or their context
// ends, freeing their slot for the next step.
//
// With the model's rows graph (engine.Core.DecodeRows) a step is one call
// per group of Spec.Rows slots: the base products run once over all the
// group's rows, and each row's LoRA branch reads its own adapter's weights
// in place (no copy; a row on the base pays nothing for the others'
// adapters). Each slot has its own KV cache. A prompt goes in through the
// prefill graph (engine.Core.PrefillRows), one chunk of Spec.Prefill
// tokens a step, so a long prompt delays the other rows' next tokens by
// one chunk's work at most; the row then joins DecodeRows. Without it (or with PerRow) rows decode one after another with
// the one-row graphs, each with its own cache, its adapter copied into the
// model's adapter store when it differs from the previous row's, and up
// to prefillChunk prompt tokens a step. Either way a request's tokens and
// logits are those of the request alone (the rows graph's within float
// rounding of the one-row graph's).
type Scheduler struct {
	core     *engine.Core
	maxBatch int
	maxQueue int

	mu     sync.Mutex
	queue  []*Request
	closed bool
	wake   chan struct{}
	done   chan struct{}

	active  []*row
	kvFree  [][]float32
	current *Adapter // whose weights are in core.LoRA
	ownKV   []float32

	// The rows graph's slot groups (nil: one row at a time).
	groups []*group

	// prefills counts PrefillRows calls (tests).
	prefills atomic.Int64
	// noPrefill makes the rows graph take prompts one token a step, as
	// for a model without the prefill graph (benchmarks: the baseline).
	// Set it before the first Submit.
	noPrefill bool

	// Metrics hooks (SetHooks), called from the scheduling goroutine.
	onStep  func(batch int)
	onQueue func(depth int)
}

// SetHooks sets the functions the scheduler calls with the rows of each
// step and with the queue's depth when it changes (nil: none).
func (s *Scheduler) SetHooks(onStep, onQueue func(int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onStep, s.onQueue = onStep, onQueue
}

// group is Spec.Rows slots of the rows graph with their KV caches.
type group struct {
	kv    []float32
	slots []*row
}

// NewScheduler starts scheduling on core (loaded with its base) with at
// most maxBatch running requests and maxQueue waiting ones. It batches
// with the rows graph when the model has one, unless perRow.
func NewScheduler(core *engine.Core, maxBatch, maxQueue int, perRow bool) *Scheduler {
	s := &Scheduler{core: core, maxBatch: max(1, maxBatch), maxQueue: maxQueue,
		wake: make(chan struct{}, 1), done: make(chan struct{}), ownKV: core.KV}
	if core.HasRows() && !perRow {
		n := core.Spec.Rows
		for range (s.maxBatch + n - 1) / n {
			s.groups = append(s.groups, &group{slots: make([]*row, n)})
		}
	}
	go s.loop()
	return s
}

// Submit queues r; its events arrive on the returned channel, the last one
// with Done set.
func (s *Scheduler) Submit(r *Request) (<-chan Event, error) {
	r.events = make(chan Event, r.MaxTokens+2)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.maxQueue > 0 && len(s.queue) >= s.maxQueue {
		return nil, ErrQueueFull
	}
	if len(r.Mix) > 0 && (s.groups == nil || r.Adapter != nil) {
		return nil, errors.New("a weighted adapter mix needs the rows graph and no single adapter")
	}
	s.queue = append(s.queue, r)
	if s.onQueue != nil {
		s.onQueue(len(s.queue))
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return r.events, nil
}

// Close stops the scheduler once the running and queued requests have
// finished, and waits for that.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
}

func (s *Scheduler) loop() {
	defer close(s.done)
	defer func() { s.core.KV = s.ownKV }()
	for {
		s.mu.Lock()
		for len(s.active) < s.maxBatch && len(s.queue) > 0 {
			r := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if err := r.Ctx.Err(); err != nil {
				r.events <- Event{Done: true, Err: err}
				continue
			}
			s.active = append(s.active, s.newRow(r))
		}
		if s.onQueue != nil {
			s.onQueue(len(s.queue))
		}
		closed := s.closed && len(s.queue) == 0
		onStep := s.onStep
		s.mu.Unlock()
		if len(s.active) == 0 {
			if closed {
				return
			}
			<-s.wake
			continue
		}
		if onStep != nil {
			onStep(len(s.active))
		}
		if s.groups != nil {
			s.stepRows()
			continue
		}
		// Rows on the same adapter run together, so each adapter is
		// copied into the store at most once a step; the order of rows
		// changes no row's result.
		slices.SortStableFunc(s.active, func(a, b *row) int { return cmp.Compare(adapterKey(a), adapterKey(b)) })
		keep := s.active[:0]
		for _, r := range s.active {
			if s.step(r) {
				s.kvFree = append(s.kvFree, r.kv)
				continue
			}
			keep = append(keep, r)
		}
		clear(s.active[len(keep):])
		s.active = keep
	}
}

// Mixes says whether the scheduler runs weighted adapter mixes: only with
// the rows graph.
func (s *Scheduler) Mixes() bool { return s.groups != nil }

// prefill runs row r's next prompt chunk into slot i of its group's cache
// (c.KVRows), with its adapter mix (empty: the base), samples its first token after
// the prompt's last chunk, and reports whether r has finished.
func (s *Scheduler) prefill(r *row, i int, mix []engine.Term) bool {
	c := s.core
	end := min(len(r.req.Prompt), r.pos+c.Spec.Prefill)
	logits, err := c.PrefillRows(i, r.req.Prompt[r.pos:end], r.pos, mix)
	if err != nil {
		r.req.events <- Event{Done: true, Err: err}
		return true
	}
	s.prefills.Add(1)
	r.pos = end
	if r.pos < len(r.req.Prompt) {
		return false
	}
	r.prefilled = true
	return s.sample(r, logits)
}

// adapterKey orders rows by adapter: the base first, then by name.
func adapterKey(r *row) string {
	if r.req.Adapter == nil {
		return ""
	}
	return "\x00" + r.req.Adapter.Name
}

func (s *Scheduler) newRow(r *Request) *row {
	if s.groups != nil {
		// A free slot: there are at least maxBatch. Its cache needs no
		// clearing: the row writes position p before it reads it.
		for _, g := range s.groups {
			for i, sl := range g.slots {
				if sl == nil {
					rw := &row{req: r, rng: engine.NewRNG(r.Seed), g: g, slot: i}
					g.slots[i] = rw
					return rw
				}
			}
		}
	}
	var kv []float32
	if n := len(s.kvFree); n > 0 {
		kv, s.kvFree = s.kvFree[n-1], s.kvFree[:n-1]
	} else {
		kv = make([]float32, s.core.Spec.KVSize)
	}
	return &row{req: r, kv: kv, rng: engine.NewRNG(r.Seed)}
}

// bind points the model at the row's cache and adapter.
func (s *Scheduler) bind(r *row) {
	s.core.KV = r.kv
	if r.req.Adapter == nil {
		s.core.Detach()
		return
	}
	if s.current != r.req.Adapter {
		copy(s.core.LoRA, r.req.Adapter.Weights)
		s.current = r.req.Adapter
	}
	s.core.Attach()
}

// step advances r by one token (its whole prompt first) and reports
// whether it has finished.
func (s *Scheduler) step(r *row) bool {
	req := r.req
	if err := req.Ctx.Err(); err != nil {
		req.events <- Event{Done: true, Err: err}
		return true
	}
	s.bind(r)
	var logits []float32
	var err error
	if !r.prefilled {
		// At most prefillChunk prompt tokens a step, so that a long
		// prompt does not stall the other rows' next tokens.
		end := min(len(req.Prompt), r.pos+prefillChunk)
		for ; r.pos < end; r.pos++ {
			if logits, err = s.core.Decode(req.Prompt[r.pos], r.pos); err != nil {
				break
			}
		}
		if err == nil && r.pos < len(req.Prompt) {
			return false
		}
		r.prefilled = true
	} else {
		logits, err = s.core.Decode(r.last, r.pos)
		r.pos++
	}
	if err != nil {
		req.events <- Event{Done: true, Err: err}
		return true
	}
	return s.sample(r, logits)
}

// sample draws r's next token from logits, sends it, and reports whether r
// has finished.
func (s *Scheduler) sample(r *row, logits []float32) bool {
	req := r.req
	t := req.Sampler.Sample(logits, r.rng)
	ev := Event{Token: t, EOS: req.HasEOS && t == req.EOS}
	if req.keepLogits {
		ev.Logits = append([]float32(nil), logits...)
	}
	req.events <- ev
	r.last = t
	r.n++
	switch {
	case ev.EOS:
		req.events <- Event{Done: true, Finish: "stop"}
		return true
	case r.n >= req.MaxTokens:
		req.events <- Event{Done: true, Finish: "length"}
		return true
	}
	return false
}

// stepRows runs one step with the rows graph, group by group. A row whose
// prompt is not in yet prefills its next chunk (Core.PrefillRows: at most
// Spec.Prefill tokens, straight into its slot's cache) and samples its
// first token when that was the prompt's last chunk; then one DecodeRows
// runs the group's other rows, each decoding its last sampled token (or,
// in a model without the prefill graph, its next prompt token).
func (s *Scheduler) stepRows() {
	c := s.core
	n, V := c.Spec.Rows, c.Spec.Vocab
	tokens, pos, mixes := make([]int32, n), make([]int32, n), make([][]engine.Term, n)
	decoding := make([]bool, n)
	done := map[*row]bool{}
	for _, g := range s.groups {
		if !slices.ContainsFunc(g.slots, func(r *row) bool { return r != nil }) {
			continue // a group's caches are allocated when it first has a row
		}
		if len(g.kv) != c.Spec.KVRowsSize {
			g.kv = make([]float32, c.Spec.KVRowsSize)
		}
		c.KVRows = g.kv
		busy := false
		for i, r := range g.slots {
			tokens[i], pos[i], mixes[i], decoding[i] = 0, 0, mixes[i][:0], false
			if r == nil {
				continue // an idle slot decodes a dummy token into its own cache
			}
			if err := r.req.Ctx.Err(); err != nil {
				r.req.events <- Event{Done: true, Err: err}
				done[r] = true
				g.slots[i] = nil
				continue
			}
			if r.req.Adapter != nil {
				mixes[i] = append(mixes[i], engine.Term{Store: r.req.Adapter.Weights, Weight: 1})
			}
			for _, w := range r.req.Mix {
				mixes[i] = append(mixes[i], engine.Term{Store: w.Adapter.Weights, Weight: w.Weight})
			}
			if !r.prefilled && c.HasPrefill() && !s.noPrefill {
				if s.prefill(r, i, mixes[i]) {
					done[r], g.slots[i] = true, nil
					mixes[i] = mixes[i][:0]
					continue
				}
				// The slot decodes a dummy token with no adapter at the
				// position the row writes next (before it reads it), so
				// the dummy overwrites nothing the row needs.
				pos[i], mixes[i] = int32(min(r.pos, c.Spec.Context-1)), mixes[i][:0]
				continue
			}
			busy, decoding[i] = true, true
			tokens[i], pos[i] = r.last, int32(r.pos)
			if !r.prefilled {
				tokens[i] = r.req.Prompt[r.pos]
			}
		}
		if !busy {
			continue
		}
		logits, err := c.DecodeMix(tokens, pos, mixes)
		for i, r := range g.slots {
			if r == nil || !decoding[i] {
				continue
			}
			if err != nil {
				r.req.events <- Event{Done: true, Err: err}
				done[r], g.slots[i] = true, nil
				continue
			}
			r.pos++
			if !r.prefilled {
				if r.pos < len(r.req.Prompt) {
					continue
				}
				r.prefilled = true
			}
			if s.sample(r, logits[i*V:(i+1)*V]) {
				done[r], g.slots[i] = true, nil
			}
		}
	}
	keep := s.active[:0]
	for _, r := range s.active {
		if !done[r] {
			keep = append(keep, r)
		}
	}
	clear(s.active[len(keep):])
	s.active = keep
}
