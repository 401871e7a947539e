package engine

import (
	"errors"
	"fmt"
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
	if c.graphs.TrainLoRA == nil {
		return 0, errors.New("the model has no lora block; train it with TrainStepFull")
	}
	if !c.UseAdapter() {
		return 0, errors.New("the adapter is merged or detached; unmerge or attach it to train")
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

// RowParam returns, for each row of the running DecodeRows, the elements
// [lo, hi) of the row's adapter store (laid out as Core.LoRA), or nil for a
// row on the base alone. Generated code calls it for each adapted layer.
func (c *Core) RowParam(lo, hi int) [][]float32 {
	out := make([][]float32, len(c.rowStores))
	for r, s := range c.rowStores {
		if s != nil {
			out[r] = s[lo:hi]
		}
	}
	return out
}

// HasRows says whether the model has the rows graph, which DecodeRows runs.
func (c *Core) HasRows() bool { return c.graphs.DecodeRows != nil && c.Spec.Rows > 0 }

// DecodeRows runs one token for each of Spec.Rows rows: row r decodes
// tokens[r] at position pos[r] of its own sequence, kept in its own slot of
// KVRows, with the adapter whose store (laid out as Core.LoRA) is
// adapters[r], or the base alone where adapters[r] is nil. The base
// products run once over all rows; each row's LoRA branch reads its own
// adapter. It returns the logits, (Rows, Vocab), a view into the arena
// valid until the next call. Rows nobody uses still run: give them any
// valid token and position and no adapter.
func (c *Core) DecodeRows(tokens []int32, pos []int32, adapters [][]float32) ([]float32, error) {
	if !c.HasRows() {
		return nil, errors.New("the model has no rows graph; regenerate its package")
	}
	n := c.Spec.Rows
	if len(tokens) != n || len(pos) != n || len(adapters) != n {
		return nil, fmt.Errorf("DecodeRows: %d tokens, %d positions and %d adapters for %d rows", len(tokens), len(pos), len(adapters), n)
	}
	if err := CheckTokens(tokens, n, c.Spec.Vocab); err != nil {
		return nil, err
	}
	for r, p := range pos {
		if p < 0 || int(p) >= c.Spec.Context {
			return nil, fmt.Errorf("row %d: position %d is outside the context [0, %d)", r, p, c.Spec.Context)
		}
		if a := adapters[r]; a != nil && len(a) != c.Spec.LoRASize {
			return nil, fmt.Errorf("row %d: the adapter store has %d elements, the model's has %d", r, len(a), c.Spec.LoRASize)
		}
	}
	if len(c.KVRows) != c.Spec.KVRowsSize {
		c.KVRows = make([]float32, c.Spec.KVRowsSize)
	}
	c.rowStores = adapters
	defer func() { c.rowStores = nil }()
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
// earlier tokens). adapter is the row's adapter store (laid out as
// Core.LoRA), nil for the base. DecodeRows then continues the row at
// position start+len(tokens). It returns the logits after the last token
// (Vocab), a view into the arena valid until the next call. A short last
// chunk is padded in front with position −1, which writes nothing (the
// graph computes the logits of its chunk's last row only).
//
// A token's result depends only on the sequence, not on how its prompt
// was cut into calls: within float rounding of decoding it with
// DecodeRows (the products run over more rows).
func (c *Core) PrefillRows(slot int, tokens []int32, start int, adapter []float32) ([]float32, error) {
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
	if adapter != nil && len(adapter) != c.Spec.LoRASize {
		return nil, fmt.Errorf("PrefillRows: the adapter store has %d elements, the model's has %d", len(adapter), c.Spec.LoRASize)
	}
	if len(c.KVRows) != c.Spec.KVRowsSize {
		c.KVRows = make([]float32, c.Spec.KVRowsSize)
	}
	T := c.Spec.Prefill
	if len(c.prefillTok) != T {
		c.prefillTok, c.prefillPos = make([]int32, T), make([]int32, T)
	}
	stores := make([][]float32, T)
	for i := range stores {
		stores[i] = adapter
	}
	c.kvSlot, c.rowStores = slot, stores
	defer func() { c.kvSlot, c.rowStores = 0, nil }()
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
		logits = c.graphs.PrefillRows(c.prefillTok, c.prefillPos)
	}
	return logits, nil
}
