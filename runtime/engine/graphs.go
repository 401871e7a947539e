package engine

import (
	"errors"
	"fmt"
	"math"
)

// Graphs are a generated model's compiled graph functions: straight-line
// kernel calls on the Core's arena. The LoRA ones are nil for a model
// without lora blocks.
type Graphs struct {
	// TrainLoRA computes the loss and the adapter's gradients (into
	// LoRAGrad); step selects the dropout masks.
	TrainLoRA func(tokens, pos, targets []int32, step uint64) float32
	// TrainFull computes the loss and every base gradient (into BaseGrad).
	TrainFull func(tokens, pos, targets []int32) float32
	// EvalLoRA and EvalBase compute the loss only.
	EvalLoRA, EvalBase func(tokens, pos, targets []int32) float32
	// ForwardLoRA and ForwardBase return logits over the whole context.
	ForwardLoRA, ForwardBase func(tokens, pos []int32) []float32
	// DecodeLoRA and DecodeBase run one token against the KV cache.
	DecodeLoRA, DecodeBase func(tokens, pos []int32) []float32
	// DecodeRows runs one token for each of Spec.Rows rows, each against
	// its own cache in KVRows and with its own adapter (RowParam).
	DecodeRows func(tokens, pos []int32) []float32
	// PrefillRows runs Spec.Prefill tokens of one row (positions −1 are
	// padding) against that row's slot of KVRows (SlotKV), with the
	// row's adapter for every token (RowParam), and returns the logits of
	// the last one.
	PrefillRows func(tokens, pos []int32) []float32
}

// Bind attaches a generated model's graphs to its Core and sizes what the
// entry points below reuse on every call (position ids, the padded prompt).
func (c *Core) Bind(g Graphs) {
	c.graphs = g
	c.batchPos = Positions(c.Spec.Train.Batch, c.Spec.Train.Seq)
	c.contextPos = Positions(1, c.Spec.Context)
	c.padded = make([]int32, c.Spec.Context)
}

func (c *Core) checkBatch(tokens, targets []int32) error {
	return CheckBatch(tokens, targets, c.Spec.Train.Batch, c.Spec.Train.Seq, c.Spec.Vocab)
}

// TrainStep runs forward and backward on one batch of [Batch, Seq] tokens and
// their targets, then an AdamW step on the adapter (the base stays frozen).
// It returns the loss before the update.
func (c *Core) TrainStep(tokens, targets []int32) (float32, error) {
	if err := c.checkBatch(tokens, targets); err != nil {
		return 0, err
	}
	if !c.has(TrainLoRA) {
		return 0, errors.New("the model has no lora block; train it with TrainStepFull")
	}
	if !c.UseAdapter() {
		return 0, errors.New("the adapter is merged or detached; unmerge or attach it to train")
	}
	if c.exec != nil {
		loss, err := c.execLoss(TrainLoRA, tokens, targets, uint64(c.Opt.Step))
		if err != nil {
			return 0, err
		}
		_, err = c.execUpdate(false)
		return loss, err
	}
	loss := c.graphs.TrainLoRA(tokens, c.batchPos, targets, uint64(c.Opt.Step))
	c.Opt.Update(c.LoRA, c.LoRAGrad, c.Spec.Train)
	return loss, nil
}

// TrainStepFull trains every base parameter (to make a base model): forward,
// backward and AdamW on one batch. The adapter is not used.
func (c *Core) TrainStepFull(tokens, targets []int32) (float32, error) {
	if err := c.checkBatch(tokens, targets); err != nil {
		return 0, err
	}
	if c.Merged {
		return 0, errors.New("the adapter is merged into the base; unmerge it first")
	}
	if c.exec != nil {
		loss, err := c.execLoss(TrainFull, tokens, targets, 0)
		if err != nil {
			return 0, err
		}
		_, err = c.execUpdate(true)
		return loss, err
	}
	if c.BaseGrad == nil {
		c.BaseGrad = make([]float32, len(c.Base))
	}
	loss := c.graphs.TrainFull(tokens, c.batchPos, targets)
	c.Opt.Update(c.Base, c.BaseGrad, c.Spec.Train)
	return loss, nil
}

// microSeedShift places the micro-batch index of a gradient-accumulation
// step above any plausible step count in the dropout seed, so micro-batch 0
// uses the step's own masks (as TrainStep does) and the others new ones.
const microSeedShift = 40

// Accumulate runs forward and backward on micro-batch micro (counted from
// 0) of one optimizer step and adds weight times its gradients to the
// step's accumulated gradients; ApplyGradients then updates the weights
// with them. It returns the micro-batch's loss (the mean over its counted
// targets), computed before any update.
//
// The graphs average the loss over a batch's counted targets, so a step of
// several micro-batches equals one large batch when each micro-batch's
// weight is its share of the step's counted targets: count/total (see
// kern.CountTargets). With full the base trains (as TrainStepFull), else
// the adapter (as TrainStep). Micro-batch 0 draws the step's dropout masks
// exactly as TrainStep does; micro-batch k > 0 draws its own.
func (c *Core) Accumulate(tokens, targets []int32, weight float32, micro int, full bool) (float32, error) {
	if err := c.checkBatch(tokens, targets); err != nil {
		return 0, err
	}
	if micro < 0 || micro >= 1<<(64-microSeedShift) {
		return 0, fmt.Errorf("micro-batch index %d is out of range", micro)
	}
	var loss float32
	var grads []float32
	if c.exec != nil {
		return c.execAccumulate(tokens, targets, weight, micro, full)
	}
	if full {
		if c.Merged {
			return 0, errors.New("the adapter is merged into the base; unmerge it first")
		}
		if c.BaseGrad == nil {
			c.BaseGrad = make([]float32, len(c.Base))
		}
		loss, grads = c.graphs.TrainFull(tokens, c.batchPos, targets), c.BaseGrad
	} else {
		if c.graphs.TrainLoRA == nil {
			return 0, errors.New("the model has no lora block; accumulate with full")
		}
		if !c.UseAdapter() {
			return 0, errors.New("the adapter is merged or detached; unmerge or attach it to train")
		}
		seed := uint64(c.Opt.Step) | uint64(micro)<<microSeedShift
		loss, grads = c.graphs.TrainLoRA(tokens, c.batchPos, targets, seed), c.LoRAGrad
	}
	if len(c.accum) != len(grads) || c.accumFull != full {
		c.accum, c.accumFull = make([]float32, len(grads)), full
	}
	for i, g := range grads {
		c.accum[i] += weight * g
	}
	return loss, nil
}

// ApplyGradients runs one AdamW step (with the train block's clipping and
// schedule) on the gradients Accumulate summed since the last call, then
// clears them. full must match the Accumulate calls. It returns the
// gradient norm before clipping.
func (c *Core) ApplyGradients(full bool) (float64, error) {
	if c.exec != nil {
		if c.accumN == 0 || c.accumFull != full {
			return 0, errors.New("no gradients accumulated for this store; call Accumulate first")
		}
		c.accumN = 0
		if err := c.exec.TakeAccumulated(full); err != nil {
			return 0, err
		}
		return c.execUpdate(full)
	}
	if c.accum == nil || c.accumFull != full {
		return 0, errors.New("no gradients accumulated for this store; call Accumulate first")
	}
	params, grads := c.LoRA, c.LoRAGrad
	if full {
		params, grads = c.Base, c.BaseGrad
	}
	copy(grads, c.accum)
	clear(c.accum)
	return c.Opt.Update(params, grads, c.Spec.Train), nil
}

// Eval returns the mean loss over the counted targets (those not
// kern.IgnoreTarget) of one [Batch, Seq] batch, with the adapter
// unless it is merged (then it is in the weights) or detached.
func (c *Core) Eval(tokens, targets []int32) (float32, error) {
	if err := c.checkBatch(tokens, targets); err != nil {
		return 0, err
	}
	if c.exec != nil {
		g := EvalBase
		if c.has(EvalLoRA) && c.UseAdapter() {
			g = EvalLoRA
		}
		return c.execLoss(g, tokens, targets, 0)
	}
	if c.graphs.EvalLoRA != nil && c.UseAdapter() {
		return c.graphs.EvalLoRA(tokens, c.batchPos, targets), nil
	}
	return c.graphs.EvalBase(tokens, c.batchPos, targets), nil
}

// Forward returns the logits of every position of tokens, (len(tokens),
// Vocab), for 1 ≤ len(tokens) ≤ Context. The result is a view into the
// arena, valid until the next call.
func (c *Core) Forward(tokens []int32) ([]float32, error) {
	if err := CheckTokens(tokens, c.Spec.Context, c.Spec.Vocab); err != nil {
		return nil, err
	}
	// Causal attention: the padding after the tokens does not change
	// their logits.
	clear(c.padded[copy(c.padded, tokens):])
	if c.exec != nil {
		g := ForwardBase
		if c.has(ForwardLoRA) && c.UseAdapter() {
			g = ForwardLoRA
		}
		logits, err := c.execLogits(g, c.padded, c.contextPos)
		if err != nil {
			return nil, err
		}
		return logits[:len(tokens)*c.Spec.Vocab], nil
	}
	forward := c.graphs.ForwardBase
	if c.graphs.ForwardLoRA != nil && c.UseAdapter() {
		forward = c.graphs.ForwardLoRA
	}
	return forward(c.padded, c.contextPos)[:len(tokens)*c.Spec.Vocab], nil
}

// Decode runs one token at position pos (0 ≤ pos < Context) of the sequence
// held in the KV cache: it reads the keys and values of positions before pos,
// stores its own, and returns the next token's logits (Vocab), a view into
// the arena valid until the next call.
func (c *Core) Decode(token int32, pos int) ([]float32, error) {
	if pos < 0 || pos >= c.Spec.Context {
		return nil, fmt.Errorf("position %d is outside the context [0, %d)", pos, c.Spec.Context)
	}
	t := []int32{token}
	if err := CheckTokens(t, 1, c.Spec.Vocab); err != nil {
		return nil, err
	}
	p := []int32{int32(pos)}
	if c.exec != nil {
		g := DecodeBase
		if c.has(DecodeLoRA) && c.UseAdapter() {
			g = DecodeLoRA
		}
		return c.execLogits(g, t, p)
	}
	if c.graphs.DecodeLoRA != nil && c.UseAdapter() {
		return c.graphs.DecodeLoRA(t, p), nil
	}
	return c.graphs.DecodeBase(t, p), nil
}

// Generate appends n sampled tokens to prompt, decoding one token at a time
// with the KV cache; when the cache is full it keeps the last Context/2
// tokens.
func (c *Core) Generate(prompt []int32, n int, s Sampler, r *RNG) ([]int32, error) {
	return Generate(c.Decode, prompt, n, c.Spec.Context, s, r)
}

// State returns the core itself, so that generated models, which embed it,
// satisfy the command-line driver's Runnable.
func (c *Core) State() *Core { return c }

// RowParam returns, for each branch of the running DecodeMix, the
// elements [lo, hi) of its adapter store (laid out as Core.LoRA).
// Generated code calls it for each adapted layer, with BranchRows and
// BranchWeights.
func (c *Core) RowParam(lo, hi int) [][]float32 {
	out := make([][]float32, len(c.branchStores))
	for i, s := range c.branchStores {
		out[i] = s[lo:hi]
	}
	return out
}

// BranchRows returns the row of each branch of the running DecodeMix.
func (c *Core) BranchRows() []int32 { return c.branchRows }

// BranchWeights returns the weight of each branch of the running
// DecodeMix in its row's mix.
func (c *Core) BranchWeights() []float32 { return c.branchWeights }

// HasRows says whether the model has the rows graph, which DecodeRows runs.
func (c *Core) HasRows() bool { return c.exec == nil && c.graphs.DecodeRows != nil && c.Spec.Rows > 0 }

// checkMix validates a row's adapter mix against the model.
func (c *Core) checkMix(mix []Term) error {
	for _, t := range mix {
		if len(t.Store) != c.Spec.LoRASize {
			return fmt.Errorf("the adapter store has %d elements, the model's has %d", len(t.Store), c.Spec.LoRASize)
		}
		if math.IsNaN(float64(t.Weight)) || math.IsInf(float64(t.Weight), 0) {
			return fmt.Errorf("adapter weight %g is not finite", t.Weight)
		}
	}
	return nil
}

// addBranch adds adapter t's branch on row to the running call's branches.
func (c *Core) addBranch(t Term, row int32) {
	c.branchStores = append(c.branchStores, t.Store)
	c.branchRows = append(c.branchRows, row)
	c.branchWeights = append(c.branchWeights, t.Weight)
}

// clearBranches empties the branches, holding no adapter store past the
// call.
func (c *Core) clearBranches() {
	clear(c.branchStores)
	c.branchStores, c.branchRows, c.branchWeights = c.branchStores[:0], c.branchRows[:0], c.branchWeights[:0]
}

// Term is one adapter of a row's weighted mix: its store, laid out as
// Core.LoRA, and its weight.
type Term struct {
	Store  []float32
	Weight float32
}

// DecodeRows runs one token for each of Spec.Rows rows: row r decodes
// tokens[r] at position pos[r] of its own sequence, kept in its own slot of
// KVRows, with the adapter whose store (laid out as Core.LoRA) is
// adapters[r], or the base alone where adapters[r] is nil. It is DecodeMix
// with mixes of one adapter of weight 1.
func (c *Core) DecodeRows(tokens []int32, pos []int32, adapters [][]float32) ([]float32, error) {
	mixes := make([][]Term, len(adapters))
	for r, a := range adapters {
		if a != nil {
			mixes[r] = []Term{{Store: a, Weight: 1}}
		}
	}
	return c.DecodeMix(tokens, pos, mixes)
}

// DecodeMix runs one token for each of Spec.Rows rows: row r decodes
// tokens[r] at position pos[r] of its own sequence, kept in its own slot of
// KVRows, with the weighted mix of adapters mixes[r] — base + Σ weight ·
// that adapter's branch, computed without merging anything into the base
// (PEFT's "cat" combination, exactly) — or the base alone where mixes[r]
// is empty. The base products run once over all rows; each branch reads
// its adapter's store in place. It returns the logits, (Rows, Vocab), a
// view into the arena valid until the next call. Rows nobody uses still
// run: give them any valid token and position and no adapter.
func (c *Core) DecodeMix(tokens []int32, pos []int32, mixes [][]Term) ([]float32, error) {
	if c.exec != nil {
		return nil, errNoExecutorRows
	}
	if !c.HasRows() {
		return nil, errors.New("the model has no rows graph; regenerate its package")
	}
	n := c.Spec.Rows
	if len(tokens) != n || len(pos) != n || len(mixes) != n {
		return nil, fmt.Errorf("DecodeRows: %d tokens, %d positions and %d adapters for %d rows", len(tokens), len(pos), len(mixes), n)
	}
	if err := CheckTokens(tokens, n, c.Spec.Vocab); err != nil {
		return nil, err
	}
	for r, p := range pos {
		if p < 0 || int(p) >= c.Spec.Context {
			return nil, fmt.Errorf("row %d: position %d is outside the context [0, %d)", r, p, c.Spec.Context)
		}
		if err := c.checkMix(mixes[r]); err != nil {
			return nil, fmt.Errorf("row %d: %w", r, err)
		}
	}
	if len(c.KVRows) != c.Spec.KVRowsSize {
		c.KVRows = make([]float32, c.Spec.KVRowsSize)
	}
	defer c.clearBranches()
	for r, mix := range mixes {
		for _, t := range mix {
			c.addBranch(t, int32(r))
		}
	}
	return c.graphs.DecodeRows(tokens, pos), nil
}

// SlotKV returns the elements [off+slot·n, off+(slot+1)·n) of KVRows: the
// running PrefillRows's slot of the rows graph's cache that starts at off,
// n elements a slot. Generated code calls it for each cache the prefill
// graph reads and extends.
func (c *Core) SlotKV(off, n int) []float32 {
	o := off + c.kvSlot*n
	return c.KVRows[o : o+n]
}

// HasPrefill says whether the model has the prefill graph, which
// PrefillRows runs.
func (c *Core) HasPrefill() bool {
	return c.graphs.PrefillRows != nil && c.Spec.Prefill > 0 && c.HasRows()
}

// PrefillRows runs tokens, the prompt positions start, start+1, … of the
// sequence in slot of KVRows, in chunks of Spec.Prefill tokens: each chunk
// runs its linear layers as products over all its tokens, stores every
// token's keys and values in the slot's cache, and attends causally over
// the cache (the slot's positions before start must hold the sequence's
// earlier tokens). mix is the row's weighted mix of adapters, as in
// DecodeMix (one Term of weight 1 for a plain adapter, empty for the
// base). DecodeMix then continues the row at
// position start+len(tokens). It returns the logits after the last token
// (Vocab), a view into the arena valid until the next call. A short last
// chunk is padded in front with position −1, which writes nothing (the
// graph computes the logits of its chunk's last row only).
//
// A token's result depends only on the sequence, not on how its prompt
// was cut into calls: within float rounding of decoding it with
// DecodeRows (the products run over more rows).
func (c *Core) PrefillRows(slot int, tokens []int32, start int, mix []Term) ([]float32, error) {
	if c.exec != nil {
		return nil, errNoExecutorPrefill
	}
	if !c.HasPrefill() {
		return nil, errors.New("the model has no prefill graph; regenerate its package")
	}
	if slot < 0 || slot >= c.Spec.Rows {
		return nil, fmt.Errorf("PrefillRows: slot %d is outside [0, %d)", slot, c.Spec.Rows)
	}
	if len(tokens) == 0 {
		return nil, errors.New("PrefillRows: no tokens")
	}
	if start < 0 || start+len(tokens) > c.Spec.Context {
		return nil, fmt.Errorf("PrefillRows: positions [%d, %d) are outside the context [0, %d)", start, start+len(tokens), c.Spec.Context)
	}
	if err := CheckTokens(tokens, c.Spec.Context, c.Spec.Vocab); err != nil {
		return nil, err
	}
	if err := c.checkMix(mix); err != nil {
		return nil, fmt.Errorf("PrefillRows: %w", err)
	}
	if len(c.KVRows) != c.Spec.KVRowsSize {
		c.KVRows = make([]float32, c.Spec.KVRowsSize)
	}
	T := c.Spec.Prefill
	if len(c.prefillTok) != T {
		c.prefillTok, c.prefillPos = make([]int32, T), make([]int32, T)
	}
	c.kvSlot = slot
	defer func() { c.kvSlot = 0 }()
	defer c.clearBranches()
	var logits []float32
	for lo := 0; lo < len(tokens); lo += T {
		// A short last chunk is padded in front: the graph's logits are
		// those of its last row, which is then the prompt's last token.
		n := min(T, len(tokens)-lo)
		pad := T - n
		for i := range T {
			c.prefillTok[i], c.prefillPos[i] = 0, -1
			if i >= pad {
				c.prefillTok[i], c.prefillPos[i] = tokens[lo+i-pad], int32(start+lo+i-pad)
			}
		}
		// Each adapter's branches over the chunk's real rows, adapter by
		// adapter: consecutive rows on one adapter run as segments.
		c.clearBranches()
		for _, t := range mix {
			for i := pad; i < T; i++ {
				c.addBranch(t, int32(i))
			}
		}
		logits = c.graphs.PrefillRows(c.prefillTok, c.prefillPos)
	}
	return logits, nil
}
