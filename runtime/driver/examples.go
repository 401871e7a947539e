package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lorac.dev/lorac/runtime/engine"
	"lorac.dev/lorac/runtime/kern"
	"lorac.dev/lorac/runtime/tmpl"
	"lorac.dev/lorac/runtime/tok"
)

// Specials are the special tokens a tokenizer defines for training data.
type Specials struct {
	BOS, EOS         int32  // ids, -1 when the tokenizer has none
	BOSText, EOSText string // their text
	// AddBOS says every example starts with BOS: tokenizer_config.json's
	// add_bos_token, or, when it does not say, a post_processor that puts a
	// special token before the sequence.
	AddBOS bool
	// Chat is the tokenizer's chat template (tokenizer_config.json's
	// chat_template, or chat_template.jinja beside it), nil for none.
	Chat *tmpl.Chat
}

// NoSpecials are the byte tokenizer's: no BOS, no EOS, no chat template.
var NoSpecials = Specials{BOS: -1, EOS: -1}

// LoadSpecials returns the special tokens of the tokenizer t read from the
// tokenizer.json at path, as runtime/tok reads them from the
// tokenizer_config.json beside it (bos_token, eos_token, add_bos_token) and
// from tokenizer.json's post_processor, and the chat template beside it
// (tokenizer_config.json's chat_template, or chat_template.jinja, as
// runtime/tmpl finds it). With path "" (the byte tokenizer) there are none.
func LoadSpecials(path string, t tok.Tokenizer) (Specials, error) {
	sp := NoSpecials
	if path == "" {
		return sp, nil
	}
	if bt, ok := t.(*tok.BPETokenizer); ok {
		if id, ok := bt.BOS(); ok {
			sp.BOS, sp.BOSText = id, bt.Decode([]int32{id})
		}
		if id, ok := bt.EOS(); ok {
			sp.EOS, sp.EOSText = id, bt.Decode([]int32{id})
		}
		sp.AddBOS = bt.AddsBOS()
	}
	// tmpl reads the template where transformers does: template files
	// beside the config replace its chat_template.
	switch chat, err := tmpl.LoadChat(filepath.Dir(path), ""); {
	case err == nil:
		sp.Chat = chat
	case errors.Is(err, tmpl.ErrNoChatTemplate), errors.Is(err, os.ErrNotExist):
	default:
		return sp, fmt.Errorf("%s: chat template: %w", filepath.Dir(path), err)
	}
	return sp, nil
}

// Encoder turns records into token ids and training masks.
type Encoder struct {
	Encode func(string) []int32
	Specials
	// Chat renders messages records; nil refuses them with ChatErr.
	Chat    ChatFormat
	ChatErr error
}

// NewEncoder returns the encoder of a run: the tokenizer's Encode and
// special tokens, and the chat format chatTemplate names: "chatml" (the
// built-in ChatML), a .jinja file, or "" for the tokenizer's own chat
// template. Without one, messages records are refused with an error saying
// what to pass.
func NewEncoder(encode func(string) []int32, sp Specials, chatTemplate string) (*Encoder, error) {
	e := &Encoder{Encode: encode, Specials: sp}
	switch {
	case chatTemplate == "chatml":
		e.Chat = ChatML
	case strings.HasSuffix(chatTemplate, ".jinja"):
		src, err := os.ReadFile(chatTemplate)
		if err != nil {
			return nil, fmt.Errorf("--chat-template: %w", err)
		}
		tokens := map[string]string{}
		if sp.Chat != nil {
			tokens = sp.Chat.Tokens
		} else {
			for k, v := range map[string]string{"bos_token": sp.BOSText, "eos_token": sp.EOSText} {
				if v != "" {
					tokens[k] = v
				}
			}
		}
		c, err := tmpl.NewChat(chatTemplate, string(src), tokens)
		if err != nil {
			return nil, fmt.Errorf("--chat-template: %w", err)
		}
		e.Chat = TemplateFormat{c}
	case chatTemplate != "":
		return nil, fmt.Errorf("%w: --chat-template %q: want chatml or a .jinja file", errUsage, chatTemplate)
	case sp.Chat != nil:
		e.Chat = TemplateFormat{sp.Chat}
	default:
		e.ChatErr = errors.New("messages records need a chat template and the tokenizer has none; pass --chat-template chatml (or a .jinja file)")
	}
	return e, nil
}

// Example is one tokenized record: its tokens, and for each token whether
// it is trained (a target predicted from the token before it).
type Example struct {
	Line   int // the record's line
	Tokens []int32
	Train  []bool
}

// Example tokenizes r. BOS starts it when AddBOS. A text record trains
// every token and ends with EOS; a prompt/completion record masks the
// prompt and trains the completion and the EOS after it; a messages record
// is cut by ChatPieces, its assistant turns (with the template's end of
// turn) trained, and gets no EOS: the template ends its turns. Pieces are
// tokenized one by one, so no token spans a masked and a trained piece.
// Without an EOS (the byte tokenizer) examples end with their last token.
func (e *Encoder) Example(r Record) (Example, error) {
	ex := Example{Line: r.Line}
	add := func(ids []int32, train bool) {
		ex.Tokens = append(ex.Tokens, ids...)
		for range ids {
			ex.Train = append(ex.Train, train)
		}
	}
	eos := func() {
		if e.EOS >= 0 {
			add([]int32{e.EOS}, true)
		}
	}
	if e.AddBOS {
		add([]int32{e.BOS}, false)
	}
	switch r.Shape {
	case ShapeText:
		add(e.Encode(r.Text), true)
		eos()
	case ShapePrompt:
		add(e.Encode(r.Prompt), false)
		add(e.Encode(r.Completion), true)
		eos()
	case ShapeChat:
		if e.Chat == nil {
			return ex, e.ChatErr
		}
		pieces, err := ChatPieces(e.Chat, r.Messages)
		if err != nil {
			return ex, err
		}
		for _, p := range pieces {
			ids := e.Encode(p.Text)
			if len(ex.Tokens) == 1 && e.AddBOS && len(ids) > 0 && ids[0] == e.BOS {
				ids = ids[1:] // the template wrote BOS itself
			}
			add(ids, p.Train)
		}
	default:
		return ex, fmt.Errorf("unknown record shape %v", r.Shape)
	}
	if !slices.Contains(ex.Train, true) {
		return ex, errors.New("the record encodes to no trained token")
	}
	return ex, nil
}

// Examples tokenizes records, naming name:line in errors.
func (e *Encoder) Examples(name string, recs []Record) ([]Example, error) {
	exs := make([]Example, 0, len(recs))
	for _, r := range recs {
		ex, err := e.Example(r)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, r.Line, err)
		}
		exs = append(exs, ex)
	}
	return exs, nil
}

// SplitExamples puts the last valFraction of exs (rounded to the nearest
// example) in val, the rest in train, as SplitTokens does for a stream.
func SplitExamples(exs []Example, valFraction float64) (train, val []Example) {
	nVal := 0
	switch {
	case valFraction >= 1:
		nVal = len(exs)
	case valFraction > 0:
		nVal = int(float64(len(exs))*valFraction + 0.5)
	}
	k := len(exs) - nVal
	return exs[:k:k], exs[k:]
}

// RowStats counts what fitting examples into rows of T did.
type RowStats struct {
	Examples  int // rows made
	Truncated int // examples longer than T+1 tokens, cut to T+1
	Dropped   int // examples with no trained token left after the cut
	Targets   int // counted (trained) targets over all rows
}

// ExampleBatcher makes batches of B rows of T from examples, one example
// per row: inputs are the example's first T tokens, target t is token t+1
// when that token is trained and kern.IgnoreTarget otherwise; a short
// example is right-padded with input 0 and ignored targets. Attention is
// causal, so a row's tokens never see its padding, and no row holds two
// examples (there is no packing). An example longer than T+1 tokens is cut
// to its first T+1.
type ExampleBatcher struct {
	in, tg []int32 // rows × T
	rows   int
	b, t   int
	// The training order: a permutation of the rows drawn from seed, and
	// how many of its rows Next has used.
	seed  uint64
	pos   int
	order []int
	Stats RowStats
}

// NewExampleBatcher lays exs out in rows of T. It fails if B or T is not
// positive or no example keeps a trained token.
func NewExampleBatcher(exs []Example, B, T int) (*ExampleBatcher, error) {
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("batch %d and sequence length %d must both be positive", B, T)
	}
	eb := &ExampleBatcher{b: B, t: T}
	for _, ex := range exs {
		toks, train := ex.Tokens, ex.Train
		if len(toks) > T+1 {
			toks, train = toks[:T+1], train[:T+1]
			eb.Stats.Truncated++
		}
		in, tg := make([]int32, T), make([]int32, T)
		n := 0
		for i := range tg {
			tg[i] = kern.IgnoreTarget
			if i+1 < len(toks) {
				in[i] = toks[i]
				if train[i+1] {
					tg[i] = toks[i+1]
					n++
				}
			}
		}
		if n == 0 {
			eb.Stats.Dropped++
			continue
		}
		eb.in, eb.tg = append(eb.in, in...), append(eb.tg, tg...)
		eb.rows++
		eb.Stats.Targets += n
	}
	eb.Stats.Examples = eb.rows
	if eb.rows == 0 {
		return nil, fmt.Errorf("none of %d examples has a trained token within seq+1 = %d tokens; use a longer seq or shorter prompts", len(exs), T+1)
	}
	return eb, nil
}

// Next fills inputs and targets ([B, T]) with the next B rows of a random
// order of all rows: each epoch a new permutation, drawn from a seed that
// is one Uint64 of r, so the sequence of batches is fixed by r's state and
// the batcher's (dataOrder), which a checkpoint keeps.
func (b *ExampleBatcher) Next(r *engine.RNG, inputs, targets []int32) {
	T := b.t
	for row := range b.b {
		if b.order == nil || b.pos == b.rows {
			b.seed, b.pos = r.Uint64(), 0
			b.order = permutation(b.seed, b.rows)
		}
		i := b.order[b.pos]
		b.pos++
		copy(inputs[row*T:(row+1)*T], b.in[i*T:(i+1)*T])
		copy(targets[row*T:(row+1)*T], b.tg[i*T:(i+1)*T])
	}
}

// permutation returns a seeded Fisher–Yates permutation of 0..n-1.
func permutation(seed uint64, n int) []int {
	r := engine.NewRNG(seed)
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.IntN(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// dataOrder is an ExampleBatcher's place in its epoch, for checkpoints.
type dataOrder struct {
	Seed uint64 `json:"seed"`
	Pos  int    `json:"pos"`
}

func (b *ExampleBatcher) orderState() *dataOrder {
	if b.order == nil {
		return nil
	}
	return &dataOrder{Seed: b.seed, Pos: b.pos}
}

func (b *ExampleBatcher) setOrderState(o *dataOrder) error {
	if o == nil {
		b.order, b.pos = nil, 0
		return nil
	}
	if o.Pos < 0 || o.Pos > b.rows {
		return fmt.Errorf("the checkpoint's data position %d is outside the %d examples; resume with the same data and seq", o.Pos, b.rows)
	}
	b.seed, b.pos, b.order = o.Seed, o.Pos, permutation(o.Seed, b.rows)
	return nil
}

// Sequential fills batch i of the rows in file order; the last batch is
// completed with rows of ignored targets, so every example is scored once.
// It returns false (touching nothing) when i is out of range.
func (b *ExampleBatcher) Sequential(i int, inputs, targets []int32) bool {
	if i < 0 || i >= b.SequentialBatches() {
		return false
	}
	T := b.t
	for row := range b.b {
		in, tg := inputs[row*T:(row+1)*T], targets[row*T:(row+1)*T]
		k := i*b.b + row
		if k >= b.rows {
			clear(in)
			for j := range tg {
				tg[j] = kern.IgnoreTarget
			}
			continue
		}
		copy(in, b.in[k*T:(k+1)*T])
		copy(tg, b.tg[k*T:(k+1)*T])
	}
	return true
}

// SequentialBatches returns how many batches Sequential yields: every row,
// the last batch padded.
func (b *ExampleBatcher) SequentialBatches() int { return (b.rows + b.b - 1) / b.b }
