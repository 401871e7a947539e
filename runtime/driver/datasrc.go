package driver

import (
	"fmt"
	"io"
	"math"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
	"lorac.dev/lorac/runtime/tok"
)

// batches is a source of [B, T] batches: random ones for training, and the
// whole of it in order for evaluation. Batcher (a token stream) and
// ExampleBatcher (JSONL examples) are the two.
type batches interface {
	Next(r *engine.RNG, inputs, targets []int32)
	Sequential(i int, inputs, targets []int32) bool
	SequentialBatches() int
}

// dataConfig is how a run reads its data.
type dataConfig struct {
	tok          tok.Tokenizer
	tokPath      string // tokenizer.json, "" for bytes
	chatTemplate string // --chat-template
	B, T         int
	log          io.Writer
	enc          *Encoder // made on first use
}

func (dc *dataConfig) encoder() (*Encoder, error) {
	if dc.enc != nil {
		return dc.enc, nil
	}
	sp, err := LoadSpecials(dc.tokPath, dc.tok)
	if err != nil {
		return nil, err
	}
	enc, err := NewEncoder(dc.tok.Encode, sp, dc.chatTemplate)
	if err != nil {
		return nil, err
	}
	bos, eos := "none", "none"
	if sp.BOS >= 0 {
		bos = fmt.Sprintf("%q (%d)", sp.BOSText, sp.BOS)
		if !sp.AddBOS {
			bos += ", not added"
		}
	}
	if sp.EOS >= 0 {
		eos = fmt.Sprintf("%q (%d)", sp.EOSText, sp.EOS)
	}
	fmt.Fprintf(dc.log, "special tokens: BOS %s, EOS %s\n", bos, eos)
	dc.enc = enc
	return enc, nil
}

// examples reads and tokenizes a JSONL file.
func (dc *dataConfig) examples(path string) ([]Example, error) {
	recs, err := ReadJSONL(path)
	if err != nil {
		return nil, err
	}
	enc, err := dc.encoder()
	if err != nil {
		return nil, err
	}
	return enc.Examples(path, recs)
}

// exampleBatcher lays examples out in rows and reports, once, what did not
// fit.
func (dc *dataConfig) exampleBatcher(path, what string, exs []Example) (*ExampleBatcher, error) {
	eb, err := NewExampleBatcher(exs, dc.B, dc.T)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", path, what, err)
	}
	s := eb.Stats
	fmt.Fprintf(dc.log, "%s: %s: %d examples, %d trained tokens, one example per row of %d, padded\n", path, what, s.Examples, s.Targets, dc.T)
	if s.Truncated > 0 {
		fmt.Fprintf(dc.log, "%s: %s: %d examples longer than seq+1 = %d tokens were truncated, %d of them dropped with no trained token left\n", path, what, s.Truncated, dc.T+1, s.Dropped)
	}
	return eb, nil
}

// load reads one file as a whole (validation data, or eval's data).
func (dc *dataConfig) load(path, what string) (batches, error) {
	if IsJSONL(path) {
		exs, err := dc.examples(path)
		if err != nil {
			return nil, err
		}
		return dc.exampleBatcher(path, what, exs)
	}
	ds, err := LoadTextDatasetWith(path, dc.tok.Encode, 0)
	if err != nil {
		return nil, err
	}
	b, err := NewBatcher(ds.Train, dc.B, dc.T)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %v", path, what, err)
	}
	return b, nil
}

// trainVal loads the training data and the validation set: valPath's
// whole content when given, else the last valFraction of data (of its
// tokens for text, of its examples for JSONL).
func (dc *dataConfig) trainVal(data, valPath string, valFraction float64) (train, val batches, err error) {
	if valPath != "" {
		valFraction = 0
	}
	if IsJSONL(data) {
		if !(valFraction >= 0 && valFraction < 1) {
			return nil, nil, fmt.Errorf("%s: validation fraction %g is outside [0, 1); use e.g. 0.1", data, valFraction)
		}
		exs, err := dc.examples(data)
		if err != nil {
			return nil, nil, err
		}
		tr, va := SplitExamples(exs, valFraction)
		if train, err = dc.exampleBatcher(data, "training split", tr); err != nil {
			return nil, nil, err
		}
		if valPath == "" {
			if len(va) == 0 {
				return nil, nil, fmt.Errorf("%s: the validation split of %d examples at --val-fraction %g is empty; raise it or give --val-data", data, len(exs), valFraction)
			}
			val, err = dc.exampleBatcher(data, "validation split", va)
			return train, val, err
		}
	} else {
		ds, err := LoadTextDatasetWith(data, dc.tok.Encode, valFraction)
		if err != nil {
			return nil, nil, err
		}
		if train, err = NewBatcher(ds.Train, dc.B, dc.T); err != nil {
			return nil, nil, fmt.Errorf("%s: training split: %v", data, err)
		}
		if valPath == "" {
			if val, err = NewBatcher(ds.Val, dc.B, dc.T); err != nil {
				return nil, nil, fmt.Errorf("%s: validation split: %v", data, err)
			}
			return train, val, nil
		}
	}
	val, err = dc.load(valPath, "validation data")
	return train, val, err
}

// EvalResult is what EvalData measured.
type EvalResult struct {
	Loss    float64 // mean over the scored targets
	Tokens  int     // targets scored
	Batches int
}

// EvalData scores the data file at path with m, as `eval --data` does:
// text in consecutive windows of every full batch, or JSONL examples (one
// per row, only their trained tokens scored); the loss is the mean over
// every scored target. The tokenizer is tokenizerPath's, else base's
// directory's tokenizer.json, else bytes; chatTemplate names a built-in chat
// format for messages records. What was read goes to log.
func EvalData(m Runnable, path, tokenizerPath, base, chatTemplate string, log io.Writer) (EvalResult, error) {
	c := m.State()
	t, name, err := TokenizerFor(tokenizerPath, base, c.Spec.Vocab)
	if err != nil {
		return EvalResult{}, err
	}
	B, T := c.Spec.Train.Batch, c.Spec.Train.Seq
	dc := &dataConfig{tok: t, tokPath: tokPath(name), chatTemplate: chatTemplate, B: B, T: T, log: log}
	b, err := dc.load(path, "eval data")
	if err != nil {
		return EvalResult{}, err
	}
	loss, n, err := evalLoss(m, b, B, T, math.MaxInt)
	if err != nil {
		return EvalResult{}, fmt.Errorf("%s: %v", path, err)
	}
	return EvalResult{Loss: loss, Tokens: n, Batches: b.SequentialBatches()}, nil
}

// evalLoss is the loss of up to n batches of b in order, averaged over
// their counted targets (each batch's mean weighted by its count), and the
// number of targets counted.
func evalLoss(m Runnable, b batches, B, T, n int) (float64, int, error) {
	in, tg := make([]int32, B*T), make([]int32, B*T)
	var sum float64
	count := 0
	for i := 0; i < n && b.Sequential(i, in, tg); i++ {
		k := kern.CountTargets(tg)
		if k == 0 {
			continue
		}
		l, err := m.Eval(in, tg)
		if err != nil {
			return 0, 0, err
		}
		sum += float64(l) * float64(k)
		count += k
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("the validation data holds no full batch of %d × %d tokens (or no trained token); give more data", B, T)
	}
	return sum / float64(count), count, nil
}
