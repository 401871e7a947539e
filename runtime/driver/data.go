package driver

import (
	"fmt"
	"math"
	"os"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/tok"
)

// Dataset is a token stream split in two: Train for optimisation, Val (the
// end of the stream) for held-out loss.
type Dataset struct {
	Train, Val []int32
}

// LoadTextDataset reads the file at path as byte tokens and splits it with
// SplitTokens. Errors name the file. A file too short for one window of
// T+1 tokens in a split is not rejected here, because T is not known yet;
// NewBatcher reports it.
func LoadTextDataset(path string, valFraction float64) (*Dataset, error) {
	return LoadTextDatasetWith(path, tok.ByteTokenizer{}.Encode, valFraction)
}

// LoadTextDatasetWith is LoadTextDataset with another tokenizer's Encode.
func LoadTextDatasetWith(path string, encode func(string) []int32, valFraction float64) (*Dataset, error) {
	if !(valFraction >= 0 && valFraction < 1) {
		return nil, fmt.Errorf("%s: validation fraction %g is outside [0, 1); use e.g. 0.1", path, valFraction)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// os errors already carry the path.
		return nil, fmt.Errorf("load dataset: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: dataset file is empty", path)
	}
	return SplitTokens(encode(string(b)), valFraction), nil
}

// SplitTokens puts the last valFraction of tokens (rounded to the nearest
// token) in Val and the rest in Train. Holding out the end rather than a
// random sample keeps validation text contiguous and unseen, the way
// nanoGPT-style loaders do. A fraction ≤ 0 (or NaN) gives an empty Val, ≥ 1
// an empty Train.
//
// Both halves alias tokens; Train's capacity stops at the split, so
// appending to it cannot overwrite Val.
func SplitTokens(tokens []int32, valFraction float64) *Dataset {
	n := len(tokens)
	nVal := 0
	switch {
	case valFraction >= 1:
		nVal = n
	case valFraction > 0:
		nVal = int(math.Round(float64(n) * valFraction))
	}
	k := n - nVal
	return &Dataset{Train: tokens[:k:k], Val: tokens[k:]}
}

// Batcher cuts batches of B windows of T+1 consecutive tokens from a stream:
// the first T tokens of a window are the inputs, the last T the targets, so
// target t is the token that follows input t.
type Batcher struct {
	tokens []int32
	b, t   int // B, T
}

// NewBatcher returns a batcher over tokens. It fails if B or T is not
// positive or tokens cannot hold a single window of T+1.
func NewBatcher(tokens []int32, B, T int) (*Batcher, error) {
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("batch %d and sequence length %d must both be positive", B, T)
	}
	if len(tokens) < T+1 {
		return nil, fmt.Errorf("%d tokens cannot hold one window of seq+1 = %d tokens; use more data or a shorter seq", len(tokens), T+1)
	}
	return &Batcher{tokens: tokens, b: B, t: T}, nil
}

// Next fills inputs and targets, each at least B·T long and laid out
// [B, T], with B windows whose starts are drawn uniformly from every
// position that leaves room for T+1 tokens. Each row costs one IntN draw of
// r, so the batch sequence is fixed by r's state and resumes exactly.
func (b *Batcher) Next(r *engine.RNG, inputs, targets []int32) {
	B, T := b.b, b.t
	inputs, targets = inputs[:B*T], targets[:B*T]
	starts := len(b.tokens) - T
	for row := range B {
		s := r.IntN(starts)
		w := b.tokens[s : s+T+1]
		copy(inputs[row*T:(row+1)*T], w[:T])
		copy(targets[row*T:(row+1)*T], w[1:])
	}
}

// Sequential fills inputs and targets with batch i of the stream cut into
// consecutive windows at stride T: window w holds tokens [w·T, w·T+T], so
// windows share only their boundary token and every token after the first
// is a target exactly once over all batches, which is what an evaluation
// loss should average over. Only full batches are produced, because
// compiled models have a fixed B; Sequential returns false (touching
// nothing) when batch i would run past the stream or i < 0.
func (b *Batcher) Sequential(i int, inputs, targets []int32) bool {
	if i < 0 || i >= b.SequentialBatches() {
		return false
	}
	B, T := b.b, b.t
	inputs, targets = inputs[:B*T], targets[:B*T]
	for row := range B {
		s := (i*B + row) * T
		w := b.tokens[s : s+T+1]
		copy(inputs[row*T:(row+1)*T], w[:T])
		copy(targets[row*T:(row+1)*T], w[1:])
	}
	return true
}

// SequentialBatches returns how many batches Sequential yields, so an
// evaluation loop can size itself or warn that Val is shorter than a batch.
func (b *Batcher) SequentialBatches() int {
	windows := (len(b.tokens) - 1) / b.t
	return windows / b.b
}
