package tok

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Tokenizer is what the command-line driver uses to turn text into token ids
// and back. ByteTokenizer and BPETokenizer implement it.
type Tokenizer interface {
	Encode(s string) []int32
	Decode(ids []int32) string
	VocabSize() int
}

var (
	_ Tokenizer = ByteTokenizer{}
	_ Tokenizer = (*BPETokenizer)(nil)
)

// BPETokenizer is a byte-pair-encoding tokenizer read from a Hugging Face
// tokenizer.json by LoadTokenizer. It reproduces what the Hugging Face
// `tokenizers` library returns for encode(text, add_special_tokens=False)
// (Encode) and =True (EncodeSpecial), and for decode(ids,
// skip_special_tokens=False) (Decode) and =True (DecodeSkipSpecial), for
// the configurations LoadTokenizer accepts. It is safe for concurrent use.
type BPETokenizer struct {
	path string

	// model
	vocab        map[string]int32
	idTok        []string // id -> token text; "" where no token has that id
	idKnown      []bool
	merges       map[[2]int32]bpeMerge
	unk          int32 // -1 when the model has no unk_token
	fuseUnk      bool
	byteFallback bool
	byteIDs      [256]int32 // <0xNN> ids for byte_fallback, -1 when absent
	ignoreMerges bool

	// added tokens, matched on the raw text (normalized=false) or on the
	// normalized text (normalized=true)
	rawAdded  addedMatcher
	normAdded addedMatcher
	addedText map[int32]string // what an added id decodes from
	addedID   map[string]int32 // added token content -> id
	special   map[int32]bool   // added tokens marked special

	post           postProc
	bos, eos       int32 // from tokenizer_config.json; -1 when not set
	addBOS, addEOS *bool // tokenizer_config.json add_bos_token, add_eos_token

	normalizer []normStep
	pre        preStep   // nil: none
	decoder    []decStep // nil: no decoder, tokens are joined with " "
	hasDecoder bool

	vocabSize int

	mu    sync.Mutex
	cache map[string][]int32
}

type bpeMerge struct {
	rank int32
	id   int32
}

const (
	bpeCacheCap     = 10000
	bpeCacheMaxWord = 256
)

// ---------------------------------------------------------------------------
// Loading

type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type hfAddedToken struct {
	ID         int64  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfModel struct {
	Type                    string           `json:"type"`
	Dropout                 *float64         `json:"dropout"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	FuseUnk                 bool             `json:"fuse_unk"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Vocab                   map[string]int64 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
}

// component is the common shape of normalizers, pre-tokenizers and decoders.
type component struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	// Prepend
	Prepend *string `json:"prepend"`
	// Replace
	Pattern *struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content json.RawMessage `json:"content"`
	// ByteLevel
	AddPrefixSpace *bool `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Metaspace
	Replacement   *string `json:"replacement"`
	PrependScheme *string `json:"prepend_scheme"`
	Split         *bool   `json:"split"`
	// Strip
	Start      *int  `json:"start"`
	StripLeft  *bool `json:"strip_left"`
	StripRight *bool `json:"strip_right"`
	Stop       *int  `json:"stop"`
}

func isNull(m json.RawMessage) bool {
	s := strings.TrimSpace(string(m))
	return s == "" || s == "null"
}

// LoadTokenizer reads a Hugging Face tokenizer.json, and the
// tokenizer_config.json beside it if there is one (bos_token, eos_token,
// add_bos_token, add_eos_token). Supported:
//
//   - model: BPE (vocab plus merges written either as "a b" strings or
//     ["a","b"] pairs; unk_token, fuse_unk, byte_fallback, ignore_merges);
//   - normalizers: NFC, Lowercase, Strip, Prepend, Replace (string or
//     regex) and Sequence;
//   - pre-tokenizers: ByteLevel, Metaspace, Split (the GPT-2, Llama 3,
//     Qwen2 and GPT-4o regexes matched by hand, others by Go's regexp),
//     Digits, Punctuation, Whitespace, WhitespaceSplit and Sequence;
//   - added_tokens, matched leftmost-longest in the text before the model
//     sees it (normalized ones in the normalized text), honouring lstrip,
//     rstrip and single_word;
//   - post-processors: TemplateProcessing (single), RobertaProcessing,
//     BertProcessing, ByteLevel and Sequence;
//   - decoders: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and
//     Sequence.
//
// Anything else (WordPiece, Unigram, WordLevel, other components, a regex
// with a construct Go's regexp lacks, BPE dropout, subword
// prefixes/suffixes) is an error naming the component and the file.
func LoadTokenizer(path string) (*BPETokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTokenizer(data, path)
	if err != nil {
		return nil, err
	}
	if err := t.loadConfig(path); err != nil {
		return nil, err
	}
	return t, nil
}

func parseTokenizer(data []byte, path string) (*BPETokenizer, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{path}, args...)...)
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, errf("parsing tokenizer.json: %v", err)
	}
	if isNull(f.Model) {
		return nil, errf("no model")
	}
	var m hfModel
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, errf("parsing model: %v", err)
	}
	if m.Type == "" && !isNull(m.Merges) {
		m.Type = "BPE" // older files leave the type out
	}
	if m.Type != "BPE" {
		return nil, errf("unsupported model type %q (only BPE is supported)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, errf("unsupported BPE option dropout=%v", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, errf("unsupported BPE option continuing_subword_prefix %q", *m.ContinuingSubwordPrefix)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errf("unsupported BPE option end_of_word_suffix %q", *m.EndOfWordSuffix)
	}
	if m.Vocab == nil {
		return nil, errf("BPE model has no vocab")
	}

	t := &BPETokenizer{
		path:         path,
		vocab:        make(map[string]int32, len(m.Vocab)),
		unk:          -1,
		fuseUnk:      m.FuseUnk,
		byteFallback: m.ByteFallback,
		ignoreMerges: m.IgnoreMerges,
		addedText:    map[int32]string{},
		addedID:      map[string]int32{},
		special:      map[int32]bool{},
		bos:          -1,
		eos:          -1,
		cache:        map[string][]int32{},
	}

	// Ids index slices, so bound them: a few more ids than entries allows
	// the odd hole, a wildly sparse or negative id is a corrupt file.
	limit := int64(len(m.Vocab)+len(f.AddedTokens))*2 + 1024
	maxID := int64(-1)
	checkID := func(what string, id int64) error {
		if id < 0 || id >= limit || id > 1<<30 {
			return errf("%s has id %d out of range", what, id)
		}
		if id > maxID {
			maxID = id
		}
		return nil
	}
	for tok, id := range m.Vocab {
		if err := checkID(fmt.Sprintf("vocab entry %q", tok), id); err != nil {
			return nil, err
		}
		t.vocab[tok] = int32(id)
	}
	for _, a := range f.AddedTokens {
		if err := checkID(fmt.Sprintf("added token %q", a.Content), a.ID); err != nil {
			return nil, err
		}
	}
	t.vocabSize = int(maxID + 1)
	t.idTok = make([]string, t.vocabSize)
	t.idKnown = make([]bool, t.vocabSize)
	for tok, id := range t.vocab {
		t.idTok[id] = tok
		t.idKnown[id] = true
	}

	// Merges.
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, errf("%v", err)
	}
	t.merges = make(map[[2]int32]bpeMerge, len(pairs))
	for rank, p := range pairs {
		a, ok := t.vocab[p[0]]
		if !ok {
			return nil, errf("merge %d (%q %q) refers to unknown token %q", rank+1, p[0], p[1], p[0])
		}
		b, ok := t.vocab[p[1]]
		if !ok {
			return nil, errf("merge %d (%q %q) refers to unknown token %q", rank+1, p[0], p[1], p[1])
		}
		n, ok := t.vocab[p[0]+p[1]]
		if !ok {
			return nil, errf("merge %d (%q %q) makes unknown token %q", rank+1, p[0], p[1], p[0]+p[1])
		}
		t.merges[[2]int32{a, b}] = bpeMerge{rank: int32(rank), id: n}
	}

	if m.UnkToken != nil {
		id, ok := t.vocab[*m.UnkToken]
		if !ok {
			return nil, errf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unk = id
	}
	for b := 0; b < 256; b++ {
		t.byteIDs[b] = -1
		if id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteIDs[b] = id
		}
	}

	// Normalizer, pre-tokenizer, decoder.
	if !isNull(f.Normalizer) {
		if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
			return nil, errf("%v", err)
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
			return nil, errf("%v", err)
		}
	}
	if !isNull(f.Decoder) {
		t.hasDecoder = true
		if t.decoder, err = parseDecoder(f.Decoder); err != nil {
			return nil, errf("%v", err)
		}
	}

	// Added tokens. A normalized one is matched, and decodes, in its
	// normalized form, as in Hugging Face.
	var raw, norm []addedToken
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			continue
		}
		id := int32(a.ID)
		at := addedToken{text: a.Content, id: id, singleWord: a.SingleWord, lstrip: a.LStrip, rstrip: a.RStrip}
		if a.Normalized && t.normalizer != nil {
			at.text = t.normalize(a.Content)
		}
		t.addedText[id] = at.text
		t.addedID[a.Content] = id
		if a.Special {
			t.special[id] = true
		}
		if a.Normalized {
			norm = append(norm, at)
		} else {
			raw = append(raw, at)
		}
	}
	t.rawAdded = newAddedMatcher(raw)
	t.normAdded = newAddedMatcher(norm)
	if !isNull(f.PostProcessor) {
		if t.post, err = parsePostProcessor(f.PostProcessor, t.vocabSize); err != nil {
			return nil, errf("%v", err)
		}
	}
	return t, nil
}

func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("BPE model has no merges")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("merges: %v", err)
	}
	out := make([][2]string, 0, len(items))
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			if strings.HasPrefix(s, "#version") {
				continue
			}
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("merge %d %q is not two space-separated tokens", len(out)+1, s)
			}
			out = append(out, [2]string{parts[0], parts[1]})
			continue
		}
		var p []string
		if err := json.Unmarshal(it, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("merge %d is neither \"a b\" nor [\"a\", \"b\"]: %s", len(out)+1, it)
		}
		out = append(out, [2]string{p[0], p[1]})
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Normalizer

type normKind int

const (
	normPrepend normKind = iota
	normReplace
	normNFC
	normLowercase
	normStrip
)

type normStep struct {
	kind        normKind
	to          string // Prepend
	rep         replacer
	left, right bool // Strip
}

func parseNormalizer(raw json.RawMessage) ([]normStep, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %v", err)
	}
	switch c.Type {
	case "Sequence":
		var out []normStep
		for _, r := range c.Normalizers {
			s, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	case "Prepend":
		if c.Prepend == nil {
			return nil, fmt.Errorf("normalizer Prepend without prepend")
		}
		return []normStep{{kind: normPrepend, to: *c.Prepend}}, nil
	case "Replace":
		r, err := replaceArgs(c, "normalizer")
		if err != nil {
			return nil, err
		}
		return []normStep{{kind: normReplace, rep: r}}, nil
	case "NFC":
		return []normStep{{kind: normNFC}}, nil
	case "Lowercase":
		return []normStep{{kind: normLowercase}}, nil
	case "Strip":
		st := normStep{kind: normStrip, left: true, right: true}
		if c.StripLeft != nil {
			st.left = *c.StripLeft
		}
		if c.StripRight != nil {
			st.right = *c.StripRight
		}
		return []normStep{st}, nil
	}
	return nil, fmt.Errorf("unsupported normalizer %q", c.Type)
}

// replacer is the pattern of a Replace normalizer or decoder: a string, or
// a regex run by Go's regexp (with \s \d \w given their Unicode meaning).
type replacer struct {
	from string
	re   *regexp.Regexp
	to   string
}

func (r replacer) apply(s string) string {
	if r.re != nil {
		return r.re.ReplaceAllLiteralString(s, r.to)
	}
	return strings.ReplaceAll(s, r.from, r.to)
}

func replaceArgs(c component, kind string) (replacer, error) {
	if c.Pattern == nil || (c.Pattern.String == nil && c.Pattern.Regex == nil) {
		return replacer{}, fmt.Errorf("%s Replace without pattern", kind)
	}
	var r replacer
	if err := json.Unmarshal(c.Content, &r.to); err != nil {
		return replacer{}, fmt.Errorf("%s Replace content: %v", kind, err)
	}
	if c.Pattern.String == nil {
		re, err := compileGoRegex(*c.Pattern.Regex)
		if err != nil {
			return replacer{}, fmt.Errorf("%s Replace: %v", kind, err)
		}
		r.re = re
		return r, nil
	}
	if *c.Pattern.String == "" {
		return replacer{}, fmt.Errorf("unsupported %s Replace with an empty pattern", kind)
	}
	r.from = *c.Pattern.String
	return r, nil
}

func (t *BPETokenizer) normalize(s string) string {
	for _, st := range t.normalizer {
		s = st.apply(s)
	}
	return s
}

func (st normStep) apply(s string) string {
	switch st.kind {
	case normPrepend:
		if s != "" {
			s = st.to + s
		}
	case normReplace:
		s = st.rep.apply(s)
	case normNFC:
		s = NFC(s)
	case normLowercase:
		s = lowercase(s)
	case normStrip:
		if st.left {
			s = strings.TrimLeftFunc(s, unicode.IsSpace)
		}
		if st.right {
			s = strings.TrimRightFunc(s, unicode.IsSpace)
		}
	}
	return s
}

// lowercase maps each character to its lower case as Rust's
// char::to_lowercase does: Unicode's simple mapping, save U+0130, whose
// lower case is two characters. Bytes that are not valid UTF-8 are kept.
func lowercase(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w <= 1:
			sb.WriteByte(s[i])
		case r == '\u0130':
			sb.WriteString("i\u0307")
		default:
			sb.WriteRune(unicode.ToLower(r))
		}
		i += w
	}
	return sb.String()
}

// ---------------------------------------------------------------------------
// Pre-tokenizers

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspace holds the options of a Metaspace pre-tokenizer or decoder.
type metaspace struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func metaspaceArgs(c component, kind string) (metaspace, error) {
	p := metaspace{replacement: "▁", scheme: prependAlways, split: true}
	if c.Replacement != nil {
		if utf8.RuneCountInString(*c.Replacement) != 1 {
			return p, fmt.Errorf("%s Metaspace replacement %q is not one character", kind, *c.Replacement)
		}
		p.replacement = *c.Replacement
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		p.scheme = prependNever
	}
	if c.PrependScheme != nil {
		switch *c.PrependScheme {
		case "always":
			p.scheme = prependAlways
		case "first":
			p.scheme = prependFirst
		case "never":
			p.scheme = prependNever
		default:
			return p, fmt.Errorf("unsupported %s Metaspace prepend_scheme %q", kind, *c.PrependScheme)
		}
	}
	if c.Split != nil {
		p.split = *c.Split
	}
	return p, nil
}

var byteLevelChars, byteLevelBytes = byteLevelTables()

// byteLevelTables builds GPT-2's byte <-> printable character mapping.
func byteLevelTables() ([256]string, map[rune]byte) {
	var chars [256]string
	back := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			r = rune(256 + n)
			n++
		}
		chars[b] = string(r)
		back[r] = byte(b)
	}
	return chars, back
}

func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteLevelChars[s[i]])
	}
	return sb.String()
}

// ---------------------------------------------------------------------------
// Added tokens

type addedToken struct {
	text       string
	id         int32
	singleWord bool
	lstrip     bool
	rstrip     bool
}

// addedMatcher finds added tokens leftmost-longest.
type addedMatcher struct {
	byFirst map[byte][]addedToken // longest first
}

func newAddedMatcher(toks []addedToken) addedMatcher {
	if len(toks) == 0 {
		return addedMatcher{}
	}
	m := addedMatcher{byFirst: map[byte][]addedToken{}}
	for _, a := range toks {
		m.byFirst[a.text[0]] = append(m.byFirst[a.text[0]], a)
	}
	for _, l := range m.byFirst {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].text) > len(l[j].text) })
	}
	return m
}

// span is a piece of the text: an added token (id >= 0) or text for the
// model (id < 0).
type span struct {
	text  string
	id    int32
	first bool // starts the original text
}

// split cuts s around the added tokens it contains, dropping empty pieces.
func (m addedMatcher) split(s string, first bool, out []span) []span {
	if m.byFirst == nil {
		if s != "" {
			out = append(out, span{text: s, id: -1, first: first})
		}
		return out
	}
	emit := func(a, b int) {
		if b > a {
			out = append(out, span{text: s[a:b], id: -1, first: first && a == 0})
		}
	}
	startOffset := 0
	for i := 0; i < len(s); {
		var match *addedToken
		for k, a := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], a.text) {
				match = &m.byFirst[s[i]][k]
				break
			}
		}
		if match == nil {
			i++
			continue
		}
		start, stop := i, i+len(match.text)
		i = stop
		if match.singleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:start])
			after, _ := utf8.DecodeRuneInString(s[stop:])
			if (start > 0 && isWordChar(before)) || (stop < len(s) && isWordChar(after)) {
				continue
			}
		}
		if match.lstrip {
			ns := start
			for ns > 0 {
				r, w := utf8.DecodeLastRuneInString(s[:ns])
				if !unicode.IsSpace(r) {
					break
				}
				ns -= w
			}
			start = max(ns, startOffset)
		}
		if match.rstrip {
			for stop < len(s) {
				r, w := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += w
			}
			i = stop
		}
		emit(startOffset, start)
		out = append(out, span{text: s[start:stop], id: match.id})
		startOffset = stop
	}
	emit(startOffset, len(s))
	return out
}

// ---------------------------------------------------------------------------
// Encode

// Encode returns the token ids of s, as Hugging Face's
// encode(s, add_special_tokens=False) does: added tokens are matched
// literally, no BOS/EOS is added.
func (t *BPETokenizer) Encode(s string) []int32 {
	spans := t.rawAdded.split(s, true, nil)
	if t.normalizer != nil || t.normAdded.byFirst != nil {
		var next []span
		for _, sp := range spans {
			if sp.id >= 0 {
				next = append(next, sp)
				continue
			}
			next = t.normAdded.split(t.normalize(sp.text), sp.first, next)
		}
		spans = next
	}
	var ids []int32
	for _, sp := range spans {
		if sp.id >= 0 {
			ids = append(ids, sp.id)
			continue
		}
		words := []piece{{text: sp.text, first: sp.first}}
		if t.pre != nil {
			words = t.pre.apply(words)
		}
		for _, w := range words {
			ids = t.encodeWord(w.text, ids)
		}
	}
	if ids == nil {
		ids = []int32{}
	}
	return ids
}

// encodeWord appends the BPE tokens of one pre-tokenized word.
func (t *BPETokenizer) encodeWord(w string, ids []int32) []int32 {
	if w == "" {
		return ids
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[w]; ok {
			return append(ids, id)
		}
	}
	cacheable := len(w) < bpeCacheMaxWord
	if cacheable {
		t.mu.Lock()
		r, ok := t.cache[w]
		t.mu.Unlock()
		if ok {
			return append(ids, r...)
		}
	}
	r := t.mergeWord(w)
	if cacheable {
		t.mu.Lock()
		if len(t.cache) < bpeCacheCap {
			t.cache[w] = r
		}
		t.mu.Unlock()
	}
	return append(ids, r...)
}

// mergeWord splits w into characters (falling back to <0xNN> byte tokens or
// the unk token for characters outside the vocabulary) and applies the
// merges, lowest rank first, leftmost first among equal ranks.
func (t *BPETokenizer) mergeWord(w string) []int32 {
	syms := make([]int32, 0, len(w))
	unk := false
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		ch := w[i : i+n]
		i += n
		if id, ok := t.vocab[ch]; ok {
			if unk {
				syms = append(syms, t.unk)
				unk = false
			}
			syms = append(syms, id)
			continue
		}
		if t.byteFallback {
			all := true
			for k := 0; k < len(ch); k++ {
				if t.byteIDs[ch[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				// As in Hugging Face, a pending unk is not flushed here.
				for k := 0; k < len(ch); k++ {
					syms = append(syms, t.byteIDs[ch[k]])
				}
				continue
			}
		}
		if t.unk >= 0 {
			if unk && !t.fuseUnk {
				syms = append(syms, t.unk)
			}
			unk = true
		}
		// Without unk_token the character is dropped, as in Hugging Face.
	}
	if unk {
		syms = append(syms, t.unk)
	}
	if len(syms) < 2 || len(t.merges) == 0 {
		return syms
	}

	// Doubly linked list of symbols plus a heap of candidate merges.
	prev := make([]int, len(syms))
	next := make([]int, len(syms))
	alive := make([]bool, len(syms))
	for i := range syms {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[len(syms)-1] = -1
	q := make(mergeQueue, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := t.merges[[2]int32{syms[i], syms[i+1]}]; ok {
			q = append(q, mergeCand{rank: m.rank, pos: i, id: m.id})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		c := heap.Pop(&q).(mergeCand)
		if !alive[c.pos] || next[c.pos] < 0 {
			continue
		}
		r := next[c.pos]
		if m, ok := t.merges[[2]int32{syms[c.pos], syms[r]}]; !ok || m.id != c.id || m.rank != c.rank {
			continue // stale
		}
		syms[c.pos] = c.id
		alive[r] = false
		next[c.pos] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			if m, ok := t.merges[[2]int32{syms[p], syms[c.pos]}]; ok {
				heap.Push(&q, mergeCand{rank: m.rank, pos: p, id: m.id})
			}
		}
		if n := next[c.pos]; n >= 0 {
			if m, ok := t.merges[[2]int32{syms[c.pos], syms[n]}]; ok {
				heap.Push(&q, mergeCand{rank: m.rank, pos: c.pos, id: m.id})
			}
		}
	}
	out := make([]int32, 0, len(syms))
	for i := 0; i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type mergeCand struct {
	rank int32
	pos  int
	id   int32
}

type mergeQueue []mergeCand

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeCand)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// ---------------------------------------------------------------------------
// Decode

type decKind int

const (
	decByteLevel decKind = iota
	decReplace
	decByteFallback
	decFuse
	decStrip
	decMetaspace
)

type decStep struct {
	kind        decKind
	rep         replacer
	strip       rune
	start, stop int
	meta        metaspace
}

func parseDecoder(raw json.RawMessage) ([]decStep, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decoder: %v", err)
	}
	switch c.Type {
	case "Sequence":
		var out []decStep
		for _, r := range c.Decoders {
			s, err := parseDecoder(r)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	case "ByteLevel":
		return []decStep{{kind: decByteLevel}}, nil
	case "ByteFallback":
		return []decStep{{kind: decByteFallback}}, nil
	case "Fuse":
		return []decStep{{kind: decFuse}}, nil
	case "Replace":
		r, err := replaceArgs(c, "decoder")
		if err != nil {
			return nil, err
		}
		return []decStep{{kind: decReplace, rep: r}}, nil
	case "Strip":
		var content string
		if err := json.Unmarshal(c.Content, &content); err != nil || utf8.RuneCountInString(content) != 1 {
			return nil, fmt.Errorf("decoder Strip content %s is not one character", c.Content)
		}
		st := decStep{kind: decStrip}
		st.strip, _ = utf8.DecodeRuneInString(content)
		if c.Start != nil {
			st.start = *c.Start
		}
		if c.Stop != nil {
			st.stop = *c.Stop
		}
		if st.start < 0 || st.stop < 0 {
			return nil, fmt.Errorf("decoder Strip with negative start/stop")
		}
		return []decStep{st}, nil
	case "Metaspace":
		p, err := metaspaceArgs(c, "decoder")
		if err != nil {
			return nil, err
		}
		return []decStep{{kind: decMetaspace, meta: p}}, nil
	}
	return nil, fmt.Errorf("unsupported decoder %q", c.Type)
}

// Decode returns the text of ids, as Hugging Face's
// decode(ids, skip_special_tokens=False) does. An id that is neither in the
// vocabulary nor an added token (a model whose output layer is larger than
// the vocabulary can sample one) becomes U+FFFD, like in ByteTokenizer,
// where Hugging Face would drop it.
func (t *BPETokenizer) Decode(ids []int32) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if s, ok := t.addedText[id]; ok {
			toks = append(toks, s)
		} else if id >= 0 && int(id) < len(t.idTok) && t.idKnown[id] {
			toks = append(toks, t.idTok[id])
		} else {
			toks = append(toks, "\uFFFD")
		}
	}
	if !t.hasDecoder {
		return strings.Join(toks, " ")
	}
	for _, st := range t.decoder {
		toks = st.apply(toks)
	}
	return strings.Join(toks, "")
}

func (st decStep) apply(toks []string) []string {
	switch st.kind {
	case decByteLevel:
		var b []byte
		for _, tok := range toks {
			start := len(b)
			for _, r := range tok {
				c, ok := byteLevelBytes[r]
				if !ok {
					b = append(b[:start], tok...)
					break
				}
				b = append(b, c)
			}
		}
		return []string{lossyUTF8(b)}
	case decReplace:
		for i, tok := range toks {
			toks[i] = st.rep.apply(tok)
		}
		return toks
	case decFuse:
		return []string{strings.Join(toks, "")}
	case decStrip:
		for i, tok := range toks {
			rs := []rune(tok)
			a := 0
			for k := 0; k < st.start && k < len(rs) && rs[k] == st.strip; k++ {
				a = k + 1
			}
			b := len(rs)
			for k := 0; k < st.stop && len(rs)-k-1 >= a && rs[len(rs)-k-1] == st.strip; k++ {
				b = len(rs) - k - 1
			}
			toks[i] = string(rs[a:b])
		}
		return toks
	case decMetaspace:
		rep, _ := utf8.DecodeRuneInString(st.meta.replacement)
		for i, tok := range toks {
			var sb strings.Builder
			for _, r := range tok {
				if r == rep {
					if i == 0 && st.meta.scheme != prependNever {
						continue
					}
					r = ' '
				}
				sb.WriteRune(r)
			}
			toks[i] = sb.String()
		}
		return toks
	case decByteFallback:
		out := make([]string, 0, len(toks))
		var pend []byte
		flush := func() {
			if len(pend) == 0 {
				return
			}
			if utf8.Valid(pend) {
				out = append(out, string(pend))
			} else {
				for range pend {
					out = append(out, "\uFFFD")
				}
			}
			pend = pend[:0]
		}
		for _, tok := range toks {
			if b, ok := byteToken(tok); ok {
				pend = append(pend, b)
				continue
			}
			flush()
			out = append(out, tok)
		}
		flush()
		return out
	}
	return toks
}

// byteToken parses a "<0xNN>" token the way Hugging Face's ByteFallback
// decoder does.
func byteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	h := tok[3:5]
	if h[0] == '+' { // Rust's from_str_radix accepts a leading '+'
		h = h[1:]
	}
	v, err := strconv.ParseUint(h, 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// lossyUTF8 converts b to a string replacing each maximal invalid
// subsequence by one U+FFFD, as Rust's String::from_utf8_lossy does.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		n, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			n = 2
		case c == 0xE0:
			n, lo = 3, 0xA0
		case c == 0xED:
			n, hi = 3, 0x9F
		case c >= 0xE1 && c <= 0xEF:
			n = 3
		case c == 0xF0:
			n, lo = 4, 0x90
		case c >= 0xF1 && c <= 0xF3:
			n = 4
		case c == 0xF4:
			n, hi = 4, 0x8F
		}
		if n == 0 {
			sb.WriteRune(utf8.RuneError)
			i++
			continue
		}
		j, ok := i+1, true
		for k := 1; k < n; k++ {
			l, h := byte(0x80), byte(0xBF)
			if k == 1 {
				l, h = lo, hi
			}
			if j >= len(b) || b[j] < l || b[j] > h {
				ok = false
				break
			}
			j++
		}
		if ok {
			sb.Write(b[i:j])
		} else {
			sb.WriteRune(utf8.RuneError)
		}
		i = j
	}
	return sb.String()
}

// VocabSize returns one more than the largest id of the vocabulary and the
// added tokens: the size an embedding table needs.
func (t *BPETokenizer) VocabSize() int { return t.vocabSize }
