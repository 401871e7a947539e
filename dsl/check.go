package dsl

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Sanity caps. They keep every derived size (a weight is at most dim·ffn
// elements, a model at most layers of them) far from int64 overflow, and
// keep Check's own work small: it resolves every lora block over every
// module, so layers and lora blocks are capped lower than the other sizes.
const (
	maxSize       = 1 << 24 // vocab, context, dim, heads, ffn, rank, batch, seq
	maxLayers     = 1 << 10 // eight times the deepest published transformers
	maxLoRABlocks = 1 << 10 // a block per linear of a 146-layer llama
	maxSteps      = 1 << 30 // steps and warmup
)

// A field is one key a block accepts, with a value to suggest when the field
// is missing or malformed.
type field struct {
	name, example string
}

// The fields of each block, in the order Format's users expect them and
// messages list them.
var (
	modelFields = []field{
		{"arch", "gpt2"}, {"vocab", "50257"}, {"context", "1024"}, {"dim", "768"},
		{"layers", "12"}, {"heads", "12"}, {"kv_heads", "4"}, {"ffn", "3072"},
		{"norm_eps", "1e-5"}, {"rope_theta", "10000"}, {"tie_embeddings", "true"}, {"bias", "true"},
		{"head_dim", "128"}, {"qkv_bias", "true"}, {"qk_norm", "true"}, {"sliding_window", "4096"},
		{"embed_scale", "true"}, {"norm_offset", "1"}, {"mlp_act", "gelu"},
		{"attn_scalar", "256"}, {"attn_softcap", "50"}, {"logit_softcap", "30"}, {"sandwich_norms", "true"},
		{"sliding_window_pattern", "2"}, {"rope_local_theta", "10000"},
		{"rope_scaling", "llama3"}, {"rope_factor", "8"}, {"rope_low_freq_factor", "1"},
		{"rope_high_freq_factor", "4"}, {"rope_original_context", "8192"},
	}
	loraFields = []field{
		{"rank", "8"}, {"alpha", "16"}, {"dropout", "0.05"}, {"targets", "qkv"},
		{"layers", "0..3"}, {"rslora", "false"}, {"init", "default"},
	}
	trainFields = []field{
		{"batch", "8"}, {"seq", "128"}, {"steps", "100"}, {"lr", "3e-4"}, {"warmup", "0"},
		{"schedule", "cosine"}, {"clip", "1.0"}, {"seed", "1"}, {"weight_decay", "0"},
	}
	cpuFields   = []field{{"isa", "avx512, avx2"}}
	cudaFields  = []field{{"arch", "sm_90"}}
	serveFields = []field{{"rows", "8"}, {"prefill", "64"}}

	// blockFields maps the name Check gives each kind of block to its
	// fields, so an unknown field can be traced to the block it belongs in.
	blockFields = []struct {
		block  string
		fields []field
	}{
		{"model", modelFields}, {"lora", loraFields}, {"train", trainFields},
		{"cpu target", cpuFields}, {"cuda target", cudaFields}, {"serve", serveFields},
	}
)

// The closed sets of words the DSL accepts.
var (
	blockKinds   = []string{"model", "lora", "train", "target", "serve"}
	archs        = []string{"gpt2", "llama"}
	targetKinds  = []string{"cpu", "cuda"}
	isas         = []string{"avx512", "avx2", "generic"}
	cudaArchs    = []string{"sm_80", "sm_90"}
	ropeScalings = []string{"none", "linear", "llama3"}
	mlpActs      = []string{"silu", "gelu"}
	schedules    = []string{"cosine", "linear", "constant"}
	inits        = []string{"default", "gaussian", "random"}
	targetGroups = []string{"attn", "mlp", "all-linear"}
)

// Check validates a parsed file and builds its Config with every default
// filled in. It reports every mistake it finds, not just the first, as an
// ErrorList sorted by position; each error sits on the offending key or
// value and says what to write instead.
func Check(f *File) (*Config, error) {
	if f == nil {
		return nil, ErrorList{{Msg: "no file to check", Hint: "parse one with dsl.Parse"}}
	}
	c := &checker{}
	cfg := c.file(f)
	if err := c.errs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checker collects errors while Check walks the file.
type checker struct {
	errs ErrorList
	// The model and train blocks' entries by key, for errors about sizes
	// that the two blocks set together.
	modelES, trainES map[string]*Entry
}

// errorf records an error; its hint is added with (*Error).hintf so that
// every call site reads "what is wrong" then "what to write instead".
func (c *checker) errorf(pos lexer.Position, format string, args ...any) *Error {
	e := &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	c.errs = append(c.errs, e)
	return e
}

// hintf sets what to write instead.
func (e *Error) hintf(format string, args ...any) {
	e.Hint = fmt.Sprintf(format, args...)
}

// modelFacts says which parts of the model checked clean, so that lora and
// train blocks are checked against what is known and a broken model block
// does not cause a cascade of follow-on errors.
type modelFacts struct {
	arch    bool // Arch is gpt2 or llama: target names can be resolved
	layers  bool // Layers is valid: layer numbers can be checked
	shapes  bool // every size is valid and consistent: Linears() has true In/Out
	context bool // Context is valid: seq can be checked against it
}

// file checks the blocks of a file: the model first, since lora and train
// blocks are checked against it.
func (c *checker) file(f *File) *Config {
	cfg := &Config{File: f.Pos.Filename}
	var model, train, serve *Block
	var loras []*Block
	tooMany := false // more than maxLoRABlocks lora blocks, reported once
	targets := map[string]*Block{}
	for _, b := range f.Blocks {
		switch b.Kind {
		case "model":
			if model != nil {
				c.errorf(b.Pos, "second model block").hintf("merge it into the model block at %s (a file has one)", lineCol(model.Pos))
				continue
			}
			model = b
		case "train":
			if train != nil {
				c.errorf(b.Pos, "second train block").hintf("merge it into the train block at %s (a file has at most one)", lineCol(train.Pos))
				continue
			}
			train = b
		case "lora":
			switch {
			case len(loras) < maxLoRABlocks:
				loras = append(loras, b)
			case !tooMany:
				c.errorf(b.Pos, "more than %d lora blocks", maxLoRABlocks).hintf("merge blocks that share a rank and alpha; the lora blocks from here on are not checked")
				tooMany = true
			}
		case "serve":
			if serve != nil {
				c.errorf(b.Pos, "second serve block").hintf("merge it into the serve block at %s (a file has at most one)", lineCol(serve.Pos))
				continue
			}
			serve = b
		case "target":
			if t := c.target(b, targets); t != nil {
				cfg.Targets = append(cfg.Targets, *t)
			}
		default:
			e := c.errorf(b.Pos, "unknown block %q", b.Kind)
			if s, ok := suggest(b.Kind, blockKinds); ok {
				e.hintf("did you mean %q?", s)
			} else {
				e.hintf("blocks are %s", wordList(blockKinds, "and"))
			}
		}
	}
	var facts modelFacts
	if model == nil {
		c.errorf(f.Pos, "no model block").hintf(`add one, e.g. "model tiny { arch gpt2; vocab 256; context 128; dim 128; layers 4; heads 4 }"`)
	} else {
		cfg.Model, facts = c.model(model)
	}
	c.loras(cfg, loras, facts)
	cfg.Train = c.train(train, &cfg.Model, facts)
	cfg.Serve = c.serve(serve, &cfg.Model, facts)
	if facts.shapes {
		c.sizes(&cfg.Model, &cfg.Train, c.modelES, c.trainES)
	}
	if targets["cpu"] == nil {
		// Every build can run on the CPU (the pure-Go kernels are the
		// fallback), with any variant unless a target cpu block narrows it.
		cfg.Targets = append(cfg.Targets, Target{Kind: "cpu", ISA: slices.Clone(isas)})
	}
	return cfg
}

// lineCol formats a position without its file name, for messages that point
// at another spot of the same file.
func lineCol(p lexer.Position) string { return fmt.Sprintf("%d:%d", p.Line, p.Column) }

// entries indexes a block's entries by key, reporting unknown and repeated
// keys. what names the block in messages ("model", "cpu target").
func (c *checker) entries(b *Block, what string, fields []field) map[string]*Entry {
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.name
	}
	m := map[string]*Entry{}
	for _, e := range b.Entries {
		if !slices.Contains(known, e.Key) {
			c.unknownField(e, what, known)
			continue
		}
		if prev, ok := m[e.Key]; ok {
			c.errorf(e.Pos, "duplicate field %q", e.Key).hintf("it is already set at %s; remove one of the two", lineCol(prev.Pos))
			continue
		}
		m[e.Key] = e
	}
	return m
}

// unknownField reports a key the block does not have, with the likely typo or
// the block it belongs in.
func (c *checker) unknownField(e *Entry, what string, known []string) {
	err := c.errorf(e.Pos, "unknown %s field %q", what, e.Key)
	if s, ok := suggest(e.Key, known); ok {
		err.hintf("did you mean %q?", s)
		return
	}
	var elsewhere []string
	for _, bf := range blockFields {
		if slices.ContainsFunc(bf.fields, func(f field) bool { return f.name == e.Key }) {
			elsewhere = append(elsewhere, bf.block)
		}
	}
	if len(elsewhere) > 0 {
		err.hintf("%s belongs in a %s block", e.Key, wordList(elsewhere, "or"))
		return
	}
	err.hintf("%s fields are %s", what, wordList(known, "and"))
}

// missing reports a required field that a block lacks, at the block.
func (c *checker) missing(b *Block, what string, f field) {
	c.errorf(b.Pos, "%s block has no %q", what, f.name).hintf(`add a line "%s %s"`, f.name, f.example)
}

// noName reports a name on a block kind that takes none.
func (c *checker) noName(b *Block) {
	if b.Name != nil {
		c.errorf(b.Name.Pos, "%s blocks take no name", b.Kind).hintf("remove %q", b.Name.Name)
	}
}

// example finds the suggested value of a field.
func example(fields []field, name string) string {
	for _, f := range fields {
		if f.name == name {
			return f.example
		}
	}
	return ""
}

// one returns the single value of an entry, reporting a missing value or
// extra ones.
func (c *checker) one(e *Entry, ex string) (*Value, bool) {
	switch len(e.Values) {
	case 0:
		c.errorf(e.Pos, "%s has no value", e.Key).hintf(`write e.g. "%s %s"`, e.Key, ex)
		return nil, false
	case 1:
		return e.Values[0], true
	}
	c.errorf(e.Values[1].Pos, "%s takes one value, got %d", e.Key, len(e.Values)).hintf(`keep one, e.g. "%s %s"`, e.Key, ex)
	return nil, false
}

// integer reads an entry's single integer value in [lo, hi]; lo is 0 or 1.
func (c *checker) integer(e *Entry, ex string, lo, hi int64) (int64, bool) {
	v, ok := c.one(e, ex)
	if !ok {
		return 0, false
	}
	want := "a positive integer"
	if lo == 0 {
		want = "a non-negative integer"
	}
	if v.Number == nil {
		c.errorf(v.Pos, "%s wants %s, got %q", e.Key, want, v.String()).hintf(`write e.g. "%s %s"`, e.Key, ex)
		return 0, false
	}
	n, err := strconv.ParseInt(*v.Number, 10, 64)
	whole := !strings.ContainsAny(*v.Number, ".eE")
	switch {
	case err != nil && whole && !strings.HasPrefix(*v.Number, "-"):
		c.errorf(v.Pos, "%s %s is too large", e.Key, *v.Number).hintf("use at most %d", hi)
	case err != nil || n < lo:
		c.errorf(v.Pos, "%s wants %s, got %q", e.Key, want, v.String()).hintf(`write e.g. "%s %s"`, e.Key, ex)
	case n > hi:
		c.errorf(v.Pos, "%s %d is too large", e.Key, n).hintf("use at most %d", hi)
	default:
		return n, true
	}
	return 0, false
}

// A bound is a condition on a float value: its text for messages and its
// test.
type bound struct {
	text string
	ok   func(float64) bool
}

var (
	positive    = bound{"a number > 0", func(x float64) bool { return x > 0 }}
	nonNegative = bound{"a number ≥ 0", func(x float64) bool { return x >= 0 }}
	probability = bound{"a number in [0, 1)", func(x float64) bool { return x >= 0 && x < 1 }}
)

// float reads an entry's single finite number satisfying b.
func (c *checker) float(e *Entry, ex string, b bound) (float64, bool) {
	v, ok := c.one(e, ex)
	if !ok {
		return 0, false
	}
	if v.Number != nil {
		x, err := strconv.ParseFloat(*v.Number, 64)
		if err == nil && b.ok(x) {
			return x, true
		}
		if err != nil && math.IsInf(x, 0) {
			c.errorf(v.Pos, "%s %s is too large", e.Key, *v.Number).hintf(`write e.g. "%s %s"`, e.Key, ex)
			return 0, false
		}
	}
	c.errorf(v.Pos, "%s wants %s, got %q", e.Key, b.text, v.String()).hintf(`write e.g. "%s %s"`, e.Key, ex)
	return 0, false
}

// boolean reads an entry's single true or false.
func (c *checker) boolean(e *Entry) (bool, bool) {
	v, ok := c.one(e, "true")
	if !ok {
		return false, false
	}
	if w, ok := word(v); ok && (w == "true" || w == "false") {
		return w == "true", true
	}
	c.errorf(v.Pos, "%s wants true or false, got %q", e.Key, v.String()).hintf(`write "%s true" or "%s false"`, e.Key, e.Key)
	return false, false
}

// word returns the text of a name: an identifier or a quoted string.
func word(v *Value) (string, bool) {
	switch {
	case v.Ident != nil:
		return *v.Ident, true
	case v.Str != nil:
		s, err := strconv.Unquote(*v.Str)
		return s, err == nil
	}
	return "", false
}

// choice reads one value from a closed set.
func (c *checker) choice(key string, v *Value, choices []string) (string, bool) {
	w, ok := word(v)
	if ok && slices.Contains(choices, w) {
		return w, true
	}
	if !ok {
		w = v.String()
	}
	e := c.errorf(v.Pos, "unknown %s %q", key, w)
	if s, ok := suggest(w, choices); ok {
		e.hintf("did you mean %q?", s)
	} else {
		e.hintf("use %s", wordList(choices, "or"))
	}
	return "", false
}

// enum reads an entry's single value from a closed set.
func (c *checker) enum(e *Entry, choices []string) (string, bool) {
	v, ok := c.one(e, choices[0])
	if !ok {
		return "", false
	}
	return c.choice(e.Key, v, choices)
}

// enums reads an entry's list of distinct values from a closed set, in the
// order written.
func (c *checker) enums(e *Entry, choices []string) ([]string, bool) {
	if len(e.Values) == 0 {
		c.errorf(e.Pos, "%s has no value", e.Key).hintf(`write e.g. "%s %s"`, e.Key, strings.Join(choices, ", "))
		return nil, false
	}
	var out []string
	ok := true
	for _, v := range e.Values {
		w, good := c.choice(e.Key, v, choices)
		switch {
		case !good:
			ok = false
		case slices.Contains(out, w):
			c.errorf(v.Pos, "%s %s is listed twice", e.Key, w).hintf("remove one")
			ok = false
		default:
			out = append(out, w)
		}
	}
	return out, ok
}

// model checks the model block and fills in the arch's defaults.
func (c *checker) model(b *Block) (Model, modelFacts) {
	m := Model{Pos: b.Pos, Name: "model"}
	if b.Name != nil {
		m.Name = b.Name.Name
	}
	es := c.entries(b, "model", modelFields)
	c.modelES = es
	var facts modelFacts
	if e, ok := es["arch"]; ok {
		m.Arch, facts.arch = c.enum(e, archs)
	} else {
		c.missing(b, "model", modelFields[0])
	}
	llama := m.Arch == "llama"

	// size reads a required size field; it reports whether the field is valid.
	size := func(name, ex string, dst *int, hi int64) bool {
		e, ok := es[name]
		if !ok {
			c.missing(b, "model", field{name, ex})
			return false
		}
		n, ok := c.integer(e, ex, 1, hi)
		*dst = int(n)
		return ok
	}
	vocabOK := size("vocab", example(modelFields, "vocab"), &m.Vocab, maxSize)
	facts.context = size("context", example(modelFields, "context"), &m.Context, maxSize)
	dimOK := size("dim", example(modelFields, "dim"), &m.Dim, maxSize)
	facts.layers = size("layers", example(modelFields, "layers"), &m.Layers, maxLayers)
	// The heads to suggest fit the dim already read (and llama's kv_heads,
	// when that line holds a plain number).
	headsEx := example(modelFields, "heads")
	if dimOK {
		want, _ := strconv.Atoi(headsEx)
		h := fittingHeads(m.Dim, want, llama, rawInt(es["kv_heads"]))
		if h == 0 {
			h = nearestDivisor(m.Dim, want)
		}
		headsEx = strconv.Itoa(h)
	}
	headsOK := size("heads", headsEx, &m.Heads, maxSize)
	shapesOK := facts.arch && vocabOK && facts.context && dimOK && facts.layers && headsOK

	// llamaOnly reports a llama field in a gpt2 model; it says whether the
	// field may be read.
	llamaOnly := func(name string) (*Entry, bool) {
		e, ok := es[name]
		if ok && m.Arch == "gpt2" {
			c.errorf(e.Pos, "gpt2 has no %s", name).hintf("remove the line (%s is a llama field)", name)
			return nil, false
		}
		return e, ok
	}

	m.KVHeads = m.Heads
	if e, ok := llamaOnly("kv_heads"); ok {
		n, good := c.integer(e, example(modelFields, "kv_heads"), 1, maxSize)
		m.KVHeads = int(n)
		shapesOK = shapesOK && good
		if good && headsOK && m.Heads%m.KVHeads != 0 {
			c.errorf(e.Values[0].Pos, "heads %d is not divisible by kv_heads %d", m.Heads, m.KVHeads).
				hintf("use a kv_heads that divides heads (e.g. kv_heads %d)", nearestDivisor(m.Heads, m.KVHeads))
			shapesOK = false
		}
	}

	if e, ok := es["ffn"]; ok {
		n, good := c.integer(e, example(modelFields, "ffn"), 1, maxSize)
		m.FFN = int(n)
		shapesOK = shapesOK && good
	} else if llama {
		ex := "11008"
		if dimOK {
			ex = strconv.Itoa(4 * m.Dim)
		}
		c.missing(b, "model", field{"ffn", ex})
		shapesOK = false
	} else {
		m.FFN = 4 * m.Dim
	}

	m.NormEps = 1e-5
	if llama {
		m.NormEps = 1e-6
	}
	if e, ok := es["norm_eps"]; ok {
		m.NormEps, _ = c.float(e, example(modelFields, "norm_eps"), positive)
	}
	if llama {
		m.RopeTheta = 10000
	}
	if e, ok := llamaOnly("rope_theta"); ok {
		m.RopeTheta, _ = c.float(e, example(modelFields, "rope_theta"), positive)
	}
	m.TieEmbeddings, m.Bias = !llama, !llama
	if e, ok := es["tie_embeddings"]; ok {
		m.TieEmbeddings, _ = c.boolean(e)
	}
	if e, ok := es["bias"]; ok {
		m.Bias, _ = c.boolean(e)
	}
	if e, ok := llamaOnly("qkv_bias"); ok {
		m.QKVBias, _ = c.boolean(e)
	}
	if e, ok := llamaOnly("qk_norm"); ok {
		m.QKNorm, _ = c.boolean(e)
	}
	c.ropeScaling(&m, es, llamaOnly)
	if e, ok := llamaOnly("mlp_act"); ok {
		m.MLPAct, _ = c.enum(e, mlpActs)
	}
	if e, ok := llamaOnly("embed_scale"); ok {
		m.EmbedScale, _ = c.boolean(e)
	}
	if e, ok := llamaOnly("norm_offset"); ok {
		m.NormOffset, _ = c.float(e, example(modelFields, "norm_offset"), nonNegative)
	}
	if e, ok := llamaOnly("sliding_window"); ok {
		n, _ := c.integer(e, example(modelFields, "sliding_window"), 1, maxSize)
		m.SlidingWindow = int(n)
	}
	if e, ok := llamaOnly("sliding_window_pattern"); ok {
		n, good := c.integer(e, example(modelFields, "sliding_window_pattern"), 1, maxSize)
		m.WindowPattern = int(n)
		if good && es["sliding_window"] == nil {
			c.errorf(e.Pos, "sliding_window_pattern is set but there is no sliding_window").hintf(`add a line "sliding_window 4096", or remove this one`)
		}
	}
	for _, f := range []struct {
		key string
		dst *float64
	}{{"attn_scalar", &m.AttnScalar}, {"attn_softcap", &m.AttnSoftcap}, {"logit_softcap", &m.LogitSoftcap}} {
		if e, ok := llamaOnly(f.key); ok {
			*f.dst, _ = c.float(e, example(modelFields, f.key), positive)
		}
	}
	if e, ok := llamaOnly("sandwich_norms"); ok {
		m.SandwichNorms, _ = c.boolean(e)
	}
	if e, ok := llamaOnly("rope_local_theta"); ok {
		x, good := c.float(e, example(modelFields, "rope_local_theta"), positive)
		m.RopeLocalTheta = x
		if good && es["sliding_window"] == nil {
			c.errorf(e.Pos, "rope_local_theta is set but there is no sliding_window").hintf(`add a line "sliding_window 1024" (it applies on the sliding-window layers), or remove this one`)
		}
	}

	headDim, hasHeadDim := llamaOnly("head_dim")
	if hasHeadDim {
		n, good := c.integer(headDim, example(modelFields, "head_dim"), 1, maxSize)
		m.HeadDim = int(n)
		shapesOK = shapesOK && good
		if good && m.HeadDim%2 != 0 {
			c.errorf(headDim.Values[0].Pos, "head_dim %d is odd, but llama's rotary embedding needs it even", m.HeadDim).
				hintf("use an even head_dim (e.g. head_dim %d)", m.HeadDim+1)
			shapesOK = false
		}
	}
	if hasHeadDim {
		// The head size is set: dim need not be a multiple of heads.
	} else if dimOK && headsOK {
		if m.Dim%m.Heads != 0 {
			// llama's head size must be even: dim a multiple of 2·heads.
			step := m.Heads
			if llama {
				step *= 2
			}
			e := c.errorf(es["dim"].Values[0].Pos, "dim %d is not divisible by heads %d", m.Dim, m.Heads)
			// kv_heads follows heads unless its line sets it.
			if h := fittingHeads(m.Dim, m.Heads, llama, rawInt(es["kv_heads"])); h > 0 {
				e.hintf("choose dim as a multiple of heads (e.g. %s) or heads that divides dim (e.g. heads %d)", multiples("dim", m.Dim, step), h)
			} else {
				e.hintf("choose dim as a multiple of heads (e.g. %s)", multiples("dim", m.Dim, step))
			}
			shapesOK = false
		} else if llama && m.HeadSize()%2 != 0 {
			c.errorf(es["dim"].Values[0].Pos, "head size dim/heads = %d/%d = %d is odd, but llama's rotary embedding needs it even", m.Dim, m.Heads, m.HeadSize()).
				hintf("choose dim as an even multiple of heads (e.g. %s)", multiples("dim", m.Dim, 2*m.Heads))
			shapesOK = false
		}
	}
	facts.shapes = shapesOK
	return m, facts
}

// multiples suggests the multiples of n nearest to x as "key a or key b".
func multiples(key string, x, n int) string {
	lo := x / n * n
	if lo == 0 {
		return fmt.Sprintf("%s %d", key, n)
	}
	return fmt.Sprintf("%s %d or %s %d", key, lo, key, lo+n)
}

// nearestDivisor finds the divisor of x nearest to d, preferring the larger
// one on a tie. Divisors come in pairs around √x, so this takes √x steps.
func nearestDivisor(x, d int) int {
	best := 1
	consider := func(q int) {
		if dq, db := abs(q-d), abs(best-d); dq < db || dq == db && q > best {
			best = q
		}
	}
	for i := 1; i*i <= x; i++ {
		if x%i == 0 {
			consider(i)
			consider(x / i)
		}
	}
	return best
}

// fittingHeads finds the heads count nearest to want (the larger on a tie)
// that divides dim and, for llama, leaves an even head size and is a
// multiple of kvHeads (when positive); 0 when no count fits.
func fittingHeads(dim, want int, llama bool, kvHeads int) int {
	best := 0
	consider := func(h int) {
		if llama && ((dim/h)%2 != 0 || kvHeads > 0 && h%kvHeads != 0) {
			return
		}
		if best == 0 || abs(h-want) < abs(best-want) || abs(h-want) == abs(best-want) && h > best {
			best = h
		}
	}
	for i := 1; i*i <= dim; i++ {
		if dim%i == 0 {
			consider(i)
			consider(dim / i)
		}
	}
	return best
}

// rawInt is the value of an entry that holds one positive integer, else 0;
// it reads a field before its own check reports on it.
func rawInt(e *Entry) int {
	if e == nil || len(e.Values) != 1 || e.Values[0].Number == nil {
		return 0
	}
	n, err := strconv.Atoi(*e.Values[0].Number)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// loras checks every lora block and that no module gets two adapters.
func (c *checker) loras(cfg *Config, blocks []*Block, facts modelFacts) {
	m := &cfg.Model
	lins := linears(m)
	// owner[layer][linear] is 1 + the index of the block adapting that module.
	var owner [][]int
	if facts.arch && facts.layers {
		owner = make([][]int, m.Layers)
		for i := range owner {
			owner[i] = make([]int, len(lins))
		}
	}
	for i, b := range blocks {
		l, mods := c.lora(b, m, facts)
		// One error per pair of blocks: the first module they share and how
		// many more, so a broad overlap does not flood the output.
		type clash struct {
			first  module
			others int
		}
		clashes := map[int]*clash{}
		var order []int
		for _, mod := range mods {
			o := owner[mod.layer][mod.linear] - 1
			if o < 0 {
				owner[mod.layer][mod.linear] = i + 1
				continue
			}
			if k, ok := clashes[o]; ok {
				k.others++
				continue
			}
			clashes[o] = &clash{first: mod}
			order = append(order, o)
		}
		for _, j := range order {
			k := clashes[j]
			more := ""
			if k.others > 0 {
				more = fmt.Sprintf(" (and %d more)", k.others)
			}
			c.errorf(k.first.target, "%s is targeted by the lora blocks at %s and %s%s",
				m.ModuleName(k.first.layer, lins[k.first.linear]), lineCol(blocks[j].Pos), lineCol(b.Pos), more).
				hintf("a module takes one adapter; narrow the targets or layers of one block")
		}
		// Only blocks that own all their modules are named, so however many
		// blocks a file has, at most Layers·len(Linears) names are built.
		if len(order) == 0 {
			for _, mod := range mods {
				l.Modules = append(l.Modules, m.ModuleName(mod.layer, lins[mod.linear]))
			}
		}
		cfg.LoRA = append(cfg.LoRA, l)
	}
}

// lora checks one lora block and resolves its targets to the modules it
// adapts, in model order; it leaves naming them to loras.
func (c *checker) lora(b *Block, m *Model, facts modelFacts) (LoRA, []module) {
	l := LoRA{Pos: b.Pos, Init: "default"}
	c.noName(b)
	es := c.entries(b, "lora", loraFields)
	ex := func(name string) string { return example(loraFields, name) }

	e, rankOK := es["rank"]
	if rankOK {
		var n int64
		n, rankOK = c.integer(e, ex("rank"), 1, maxSize)
		l.Rank = int(n)
	} else {
		c.missing(b, "lora", loraFields[0])
	}
	l.Alpha = float64(l.Rank)
	if e, ok := es["alpha"]; ok {
		l.Alpha, _ = c.float(e, ex("alpha"), positive)
	}
	if e, ok := es["dropout"]; ok {
		l.Dropout, _ = c.float(e, ex("dropout"), probability)
	}
	if e, ok := es["rslora"]; ok {
		l.RSLoRA, _ = c.boolean(e)
	}
	if e, ok := es["init"]; ok {
		l.Init, _ = c.enum(e, inits)
	}

	layersOK := facts.layers
	if e, ok := es["layers"]; ok {
		l.Layers, layersOK = c.layerList(e, m, facts.layers)
	} else if facts.layers {
		l.Layers = allLayers(m)
	}

	targets, ok := es["targets"]
	if !ok {
		c.missing(b, "lora", field{"targets", ex("targets")})
		return l, nil
	}
	if len(targets.Values) == 0 {
		c.errorf(targets.Pos, "targets has no value").hintf(`write e.g. "targets %s"`, ex("targets"))
		return l, nil
	}
	var names []*Value
	for _, v := range targets.Values {
		w, ok := word(v)
		if !ok {
			c.errorf(v.Pos, "targets wants module names, got %q", v.String()).hintf(`write e.g. "targets %s"`, ex("targets"))
			continue
		}
		l.Targets = append(l.Targets, w)
		names = append(names, v)
	}
	if !facts.arch || !facts.layers {
		return l, nil
	}
	// Every layer has the same linears, so with a broken layers entry the
	// targets and the rank can still be checked against all of them.
	layers := l.Layers
	if !layersOK {
		layers = allLayers(m)
	}
	mods := c.resolve(names, layers, m)
	if rankOK && facts.shapes {
		c.checkRank(es["rank"].Values[0].Pos, l.Rank, mods, m)
	}
	if !layersOK {
		return l, nil
	}
	return l, mods
}

// allLayers lists the model's layers, 0..Layers-1.
func allLayers(m *Model) []int {
	layers := make([]int, m.Layers)
	for i := range layers {
		layers[i] = i
	}
	return layers
}

// layerList reads a lora block's layers: numbers and inclusive ranges,
// returned sorted without duplicates. Without a valid model layer count
// (known false) it only checks what it can: syntax, order and sign.
func (c *checker) layerList(e *Entry, m *Model, known bool) ([]int, bool) {
	if len(e.Values) == 0 {
		c.errorf(e.Pos, "layers has no value").hintf(`write e.g. "layers 0..3" or "layers 0, 2"`)
		return nil, false
	}
	last := int64(math.MaxInt64)
	if known {
		last = int64(m.Layers - 1)
	}
	// number reads a layer number; text that is too long for an int64 is
	// still a layer that does not exist.
	number := func(pos lexer.Position, text string) (int64, bool) {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil && strings.ContainsAny(text, ".eE") {
			c.errorf(pos, "layers wants whole layer numbers, got %q", text).hintf(`write e.g. "layers 0..3" or "layers 0, 2"`)
			return 0, false
		}
		if err == nil && n >= 0 && n <= last {
			return n, true
		}
		e := c.errorf(pos, "layer %s does not exist", text)
		if known {
			e.hintf("the model has layers 0..%d", last)
		} else {
			e.hintf("layers are numbered from 0")
		}
		return 0, false
	}
	in := make([]bool, max(m.Layers, 0))
	ok := true
	for _, v := range e.Values {
		var lo, hi int64
		switch {
		case v.Number != nil:
			n, good := number(v.Pos, *v.Number)
			ok = ok && good
			lo, hi = n, n
		case v.Range != nil:
			a, goodA := strconv.ParseInt(v.Range.Lo, 10, 64)
			z, goodZ := strconv.ParseInt(v.Range.Hi, 10, 64)
			if goodA == nil && goodZ == nil && a > z {
				c.errorf(v.Pos, "range %s is reversed", v.String()).hintf("write %d..%d", z, a)
				ok = false
				continue
			}
			var good bool
			if lo, good = number(v.Pos, v.Range.Lo); good {
				hi, good = number(v.Pos, v.Range.Hi)
			}
			ok = ok && good
		default:
			c.errorf(v.Pos, "layers wants layer numbers or ranges, got %q", v.String()).hintf(`write e.g. "layers 0..3" or "layers 0, 2"`)
			ok = false
		}
		if ok && known {
			for n := lo; n <= hi; n++ {
				in[n] = true
			}
		}
	}
	if !ok || !known {
		return nil, false
	}
	var layers []int
	for n, yes := range in {
		if yes {
			layers = append(layers, n)
		}
	}
	return layers, true
}

// A module is one linear of one layer that a lora block adapts.
type module struct {
	layer, linear int            // the layer, and the linear's index in Linears()
	target        lexer.Position // the target value that chose it
}

// resolve turns targets into the modules they name, in model order (layer,
// then Linears order), restricted to layers. A target is a short name, a
// group, or a module name matched PEFT-style: as a suffix of the full name
// that starts after a ".". It reports targets that match nothing.
func (c *checker) resolve(targets []*Value, layers []int, m *Model) []module {
	lins := linears(m)
	in := make([]bool, m.Layers)
	for _, i := range layers {
		in[i] = true
	}
	// chosen[i][j] is the target that picked linear j of layer i, if any.
	chosen := make([][]*Value, m.Layers)
	for i := range chosen {
		chosen[i] = make([]*Value, len(lins))
	}
	for _, v := range targets {
		t, _ := word(v)
		anywhere, here := false, false
		for j, lin := range lins {
			for _, i := range matchLayers(t, lin, m) {
				anywhere = true
				if in[i] {
					here = true
					if chosen[i][j] == nil {
						chosen[i][j] = v
					}
				}
			}
		}
		switch {
		case !anywhere:
			c.unknownTarget(v, t, m)
		case !here:
			c.errorf(v.Pos, "target %q matches no module in this block's layers %s", t, layerText(layers)).
				hintf("add its layer to the block's layers or drop the target")
		}
	}
	var mods []module
	for i := range chosen {
		for j, v := range chosen[i] {
			if v != nil {
				mods = append(mods, module{i, j, v.Pos})
			}
		}
	}
	return mods
}

// linears is m.Linears() for naming modules. Targets are resolved even when
// the model's sizes did not check out, and Linears divides by Heads, so a
// model without a valid heads count is named as if it had one head; In and
// Out are then meaningless, and only used once facts.shapes holds.
func linears(m *Model) []Linear {
	if m.Heads > 0 {
		return m.Linears()
	}
	named := *m
	named.Heads = 1
	return named.Linears()
}

// matchLayers lists the layers whose linear lin the target t names.
func matchLayers(t string, lin Linear, m *Model) []int {
	all := t == lin.Short || t == lin.Group || t == "all-linear" || dotSuffix(lin.Suffix, t)
	if all {
		return allLayers(m)
	}
	// Otherwise t reaches into the block prefix ("0.mlp.up_proj",
	// "model.layers.0.mlp.up_proj"), whose last part is the layer number.
	prefix, ok := strings.CutSuffix(t, "."+lin.Suffix)
	if !ok {
		return nil
	}
	i, err := strconv.Atoi(prefix[strings.LastIndexByte(prefix, '.')+1:])
	// The number must be written as BlockPrefix writes it: not "01" or "+1".
	if err != nil || i < 0 || i >= m.Layers || !dotSuffix(strings.TrimSuffix(m.BlockPrefix(i), "."), prefix) {
		return nil
	}
	return []int{i}
}

// dotSuffix reports whether t is name or a suffix of it that starts after a ".".
func dotSuffix(name, t string) bool {
	return name == t || strings.HasSuffix(name, "."+t)
}

// unknownTarget reports a target that names no module of the model, with a
// likely typo or the names the arch has.
func (c *checker) unknownTarget(v *Value, t string, m *Model) {
	e := c.errorf(v.Pos, "target %q does not exist in a %s model", t, m.Arch)
	lins := linears(m)
	for _, lin := range lins {
		if dotSuffix(t, lin.Suffix) && m.Layers == 1 {
			e.hintf("the model has one such module, %s", m.ModuleName(0, lin))
			return
		}
		if dotSuffix(t, lin.Suffix) {
			e.hintf("its modules are named %s … %s", m.ModuleName(0, lin), m.ModuleName(m.Layers-1, lin))
			return
		}
	}
	var short, names []string
	for _, lin := range lins {
		short = append(short, lin.Short)
	}
	names = append(names, short...)
	names = append(names, targetGroups...)
	for _, lin := range lins {
		names = append(names, lin.Suffix, lin.Suffix[strings.LastIndexByte(lin.Suffix, '.')+1:])
	}
	if s, ok := suggest(t, names); ok {
		e.hintf("did you mean %q?", s)
		return
	}
	e.hintf("%s has %s", m.Arch, strings.Join(short, ", "))
}

// checkRank reports a rank above min(in, out) of the narrowest module, where
// the low-rank update could not be low rank.
func (c *checker) checkRank(pos lexer.Position, rank int, mods []module, m *Model) {
	lins := m.Linears()
	var narrowest module
	limit := math.MaxInt
	for _, mod := range mods {
		lin := lins[mod.linear]
		if n := min(lin.In, lin.Out); n < limit {
			narrowest, limit = mod, n
		}
	}
	if rank > limit {
		c.errorf(pos, "rank %d exceeds min(in, out) = %d for %s", rank, limit, m.ModuleName(narrowest.layer, lins[narrowest.linear])).
			hintf("use a rank ≤ %d", limit)
	}
}

// layerText writes sorted layers compactly: "0..3", "0, 2, 5..7".
func layerText(layers []int) string {
	var parts []string
	for i := 0; i < len(layers); {
		j := i
		for j+1 < len(layers) && layers[j+1] == layers[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d..%d", layers[i], layers[j]))
		} else {
			parts = append(parts, strconv.Itoa(layers[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// train checks the train block, if any, and fills in the defaults.
func (c *checker) train(b *Block, m *Model, facts modelFacts) Train {
	t := Train{Batch: 8, Seq: m.Context, Steps: 100, LR: 3e-4, Schedule: "cosine", Clip: 1, Seed: 1}
	if b == nil {
		return t
	}
	t.Pos = b.Pos
	c.noName(b)
	es := c.entries(b, "train", trainFields)
	c.trainES = es
	ex := func(name string) string { return example(trainFields, name) }
	integer := func(name string, dst *int, lo, hi int64) bool {
		e, ok := es[name]
		if !ok {
			return true
		}
		n, ok := c.integer(e, ex(name), lo, hi)
		*dst = int(n)
		return ok
	}
	integer("batch", &t.Batch, 1, maxSize)
	if integer("seq", &t.Seq, 1, maxSize) && facts.context && t.Seq > m.Context {
		c.errorf(es["seq"].Values[0].Pos, "seq %d exceeds context %d", t.Seq, m.Context).hintf("use a seq ≤ %d", m.Context)
	}
	stepsOK := integer("steps", &t.Steps, 1, maxSteps)
	if integer("warmup", &t.Warmup, 0, maxSteps) && stepsOK && t.Warmup > t.Steps {
		c.errorf(es["warmup"].Values[0].Pos, "warmup %d exceeds steps %d", t.Warmup, t.Steps).hintf("use a warmup ≤ %d", t.Steps)
	}
	if e, ok := es["lr"]; ok {
		t.LR, _ = c.float(e, ex("lr"), positive)
	}
	if e, ok := es["schedule"]; ok {
		t.Schedule, _ = c.enum(e, schedules)
	}
	if e, ok := es["clip"]; ok {
		t.Clip, _ = c.float(e, ex("clip"), nonNegative)
	}
	if e, ok := es["weight_decay"]; ok {
		t.WeightDecay, _ = c.float(e, ex("weight_decay"), nonNegative)
	}
	if e, ok := es["seed"]; ok {
		t.Seed, _ = c.seed(e)
	}
	return t
}

// maxRows bounds the rows graph's batch: each row has its own KV cache.
const maxRows = 256

// serve checks the serve block, if any, and fills in the defaults.
func (c *checker) serve(b *Block, m *Model, facts modelFacts) Serve {
	s := Serve{Rows: DefaultRows, Prefill: DefaultPrefill(m.Context)}
	if b == nil {
		return s
	}
	s.Pos = b.Pos
	c.noName(b)
	es := c.entries(b, "serve", serveFields)
	if e, ok := es["rows"]; ok {
		n, _ := c.integer(e, example(serveFields, "rows"), 1, maxRows)
		s.Rows = int(n)
	}
	if e, ok := es["prefill"]; ok {
		n, ok := c.integer(e, example(serveFields, "prefill"), 1, maxSize)
		s.Prefill = int(n)
		if ok && facts.context && s.Prefill > m.Context {
			c.errorf(e.Values[0].Pos, "prefill %d exceeds context %d", s.Prefill, m.Context).hintf("use a prefill chunk ≤ %d", m.Context)
		}
	}
	return s
}

// seed reads a seed: any integer in [0, 2⁶⁴).
func (c *checker) seed(e *Entry) (uint64, bool) {
	v, ok := c.one(e, "1")
	if !ok {
		return 0, false
	}
	if v.Number != nil {
		n, err := strconv.ParseUint(*v.Number, 10, 64)
		if err == nil {
			return n, true
		}
		if !strings.HasPrefix(*v.Number, "-") && !strings.ContainsAny(*v.Number, ".eE") {
			c.errorf(v.Pos, "seed %s is too large", *v.Number).hintf("use at most %d", uint64(math.MaxUint64))
			return 0, false
		}
	}
	c.errorf(v.Pos, "seed wants a non-negative integer, got %q", v.String()).hintf(`write e.g. "seed 1"`)
	return 0, false
}

// target checks a target block; seen holds the blocks already read by kind.
// It returns nil for a block that cannot be used.
func (c *checker) target(b *Block, seen map[string]*Block) *Target {
	if b.Name == nil {
		c.errorf(b.Pos, "target block has no kind").hintf(`write "target cpu {" or "target cuda {"`)
		return nil
	}
	kind := b.Name.Name
	if !slices.Contains(targetKinds, kind) {
		e := c.errorf(b.Name.Pos, "unknown target %q", kind)
		if s, ok := suggest(kind, targetKinds); ok {
			e.hintf("did you mean %q?", s)
		} else {
			e.hintf("use %s", wordList(targetKinds, "or"))
		}
		return nil
	}
	if prev, ok := seen[kind]; ok {
		c.errorf(b.Pos, "second %s target block", kind).hintf("merge it into the one at %s", lineCol(prev.Pos))
		return nil
	}
	seen[kind] = b
	t := &Target{Pos: b.Pos, Kind: kind}
	if kind == "cpu" {
		t.ISA = slices.Clone(isas)
		if e, ok := c.entries(b, "cpu target", cpuFields)["isa"]; ok {
			t.ISA, _ = c.enums(e, isas)
		}
		return t
	}
	t.Arch = []string{"sm_90"}
	if e, ok := c.entries(b, "cuda target", cudaFields)["arch"]; ok {
		t.Arch, _ = c.enums(e, cudaArchs)
	}
	return t
}

// wordList joins words for a message: "a, b and c".
func wordList(words []string, conj string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}

// suggest finds the choice closest to w, if it is close enough to be a
// likely typo: at most one edit per three characters, ignoring case.
func suggest(w string, choices []string) (string, bool) {
	best, bestD := "", math.MaxInt
	lw := strings.ToLower(w)
	for _, ch := range choices {
		if ch == w {
			continue
		}
		if d := distance(lw, strings.ToLower(ch)); d < bestD {
			best, bestD = ch, d
		}
	}
	return best, best != "" && 3*bestD <= len(w)+1
}

// distance is the optimal-string-alignment edit distance: insertions,
// deletions, substitutions and swaps of neighbours each cost 1. Inputs are
// short names, and longer ones are cut so a hostile input stays cheap.
func distance(a, b string) int {
	const limit = 64
	ra, rb := []rune(a), []rune(b)
	ra, rb = ra[:min(len(ra), limit)], rb[:min(len(rb), limit)]
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// ropeScaling reads rope_scaling and its parameters: linear takes
// rope_factor; llama3 takes rope_factor, rope_low_freq_factor,
// rope_high_freq_factor and rope_original_context. A parameter the chosen
// scaling does not use is an error, so no setting is silently ignored.
func (c *checker) ropeScaling(m *Model, es map[string]*Entry, llamaOnly func(string) (*Entry, bool)) {
	kind := "none"
	e, ok := llamaOnly("rope_scaling")
	if ok {
		if k, good := c.enum(e, ropeScalings); good {
			kind = k
		} else {
			return
		}
	}
	uses := map[string][]string{
		"none":   nil,
		"linear": {"rope_factor"},
		"llama3": {"rope_factor", "rope_low_freq_factor", "rope_high_freq_factor", "rope_original_context"},
	}[kind]
	for _, name := range []string{"rope_factor", "rope_low_freq_factor", "rope_high_freq_factor", "rope_original_context"} {
		pe, has := llamaOnly(name)
		switch {
		case !has && slices.Contains(uses, name) && e != nil:
			c.errorf(e.Pos, "rope_scaling %s needs %s", kind, name).hintf(`add a line "%s %s"`, name, example(modelFields, name))
		case has && !slices.Contains(uses, name):
			want := "llama3"
			if name == "rope_factor" {
				want = "linear or llama3"
			}
			c.errorf(pe.Pos, "%s is set but rope_scaling is %s", name, kind).hintf("remove the line, or set rope_scaling %s", want)
		case has && name == "rope_original_context":
			n, _ := c.integer(pe, example(modelFields, name), 1, maxSize)
			m.RopeOrigContext = int(n)
		case has:
			x, _ := c.float(pe, example(modelFields, name), positive)
			switch name {
			case "rope_factor":
				m.RopeFactor = x
			case "rope_low_freq_factor":
				m.RopeLowFreq = x
			case "rope_high_freq_factor":
				m.RopeHighFreq = x
			}
		}
	}
	if kind == "none" {
		return
	}
	m.RopeScaling = kind
	if kind == "llama3" && m.RopeLowFreq > 0 && m.RopeHighFreq > 0 && m.RopeHighFreq <= m.RopeLowFreq {
		c.errorf(es["rope_high_freq_factor"].Values[0].Pos, "rope_high_freq_factor %g is not above rope_low_freq_factor %g", m.RopeHighFreq, m.RopeLowFreq).
			hintf("Llama 3 uses rope_low_freq_factor 1 and rope_high_freq_factor 4")
	}
}
