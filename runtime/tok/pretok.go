package tok

import (
	"encoding/json"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A piece is one part of the text between pre-tokenization steps. first
// says whether it starts at offset 0 of the text given to Encode (Metaspace
// prepend_scheme "first" looks at that).
type piece struct {
	text  string
	first bool
}

// preStep is one pre-tokenizer: it cuts (and may rewrite) each piece.
type preStep interface {
	apply(in []piece) []piece
}

// match is a part of a piece and whether the pattern matched it, as
// Hugging Face's Pattern::find_matches returns them: the parts cover the
// piece in order.
type match struct {
	start, end int
	hit        bool
}

// splitBehavior is what a Split does with the matched parts.
type splitBehavior int

const (
	behIsolated splitBehavior = iota
	behRemoved
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Isolated", "":
		return behIsolated, nil
	case "Removed":
		return behRemoved, nil
	case "MergedWithPrevious":
		return behMergedWithPrevious, nil
	case "MergedWithNext":
		return behMergedWithNext, nil
	case "Contiguous":
		return behContiguous, nil
	}
	return 0, fmt.Errorf("unknown Split behavior %q", s)
}

// splitBy applies a behaviour to the parts of one piece and appends the
// non-empty results, as Hugging Face's NormalizedString::split does.
func splitBy(p piece, ms []match, beh splitBehavior, invert bool, out []piece) []piece {
	if invert {
		for i := range ms {
			ms[i].hit = !ms[i].hit
		}
	}
	type part struct {
		start, end int
		remove     bool
	}
	var parts []part
	switch beh {
	case behIsolated:
		for _, m := range ms {
			parts = append(parts, part{m.start, m.end, false})
		}
	case behRemoved:
		for _, m := range ms {
			parts = append(parts, part{m.start, m.end, m.hit})
		}
	case behMergedWithPrevious:
		prev := false
		for _, m := range ms {
			if m.hit && !prev && len(parts) > 0 {
				parts[len(parts)-1].end = m.end
			} else {
				parts = append(parts, part{m.start, m.end, false})
			}
			prev = m.hit
		}
	case behMergedWithNext:
		prev := false
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if m.hit && !prev && len(parts) > 0 {
				parts[len(parts)-1].start = m.start
			} else {
				parts = append(parts, part{m.start, m.end, false})
			}
			prev = m.hit
		}
		for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
			parts[i], parts[j] = parts[j], parts[i]
		}
	case behContiguous:
		prev := false
		for _, m := range ms {
			if m.hit == prev && len(parts) > 0 {
				parts[len(parts)-1].end = m.end
			} else {
				parts = append(parts, part{m.start, m.end, false})
			}
			prev = m.hit
		}
	}
	for _, q := range parts {
		if q.remove || q.end <= q.start {
			continue
		}
		out = append(out, piece{text: p.text[q.start:q.end], first: p.first && q.start == 0})
	}
	return out
}

// matchesOf turns a list of matched spans (in order, not overlapping) into
// parts covering s.
func matchesOf(s string, spans [][2]int) []match {
	ms := make([]match, 0, 2*len(spans)+1)
	prev := 0
	for _, sp := range spans {
		if sp[0] > prev {
			ms = append(ms, match{prev, sp[0], false})
		}
		ms = append(ms, match{sp[0], sp[1], true})
		prev = sp[1]
	}
	if prev < len(s) {
		ms = append(ms, match{prev, len(s), false})
	}
	return ms
}

// charMatches gives each character for which f holds its own matched part,
// as Hugging Face does for a character predicate.
func charMatches(s string, f func(rune) bool) []match {
	var ms []match
	last := 0
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if f(r) {
			if last < i {
				ms = append(ms, match{last, i, false})
			}
			ms = append(ms, match{i, i + w, true})
			last = i + w
		}
		i += w
	}
	if last < len(s) {
		ms = append(ms, match{last, len(s), false})
	}
	return ms
}

// ---------------------------------------------------------------------------
// Split

type splitStep struct {
	find   func(s string) [][2]int
	beh    splitBehavior
	invert bool
}

func (st splitStep) apply(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		out = splitBy(p, matchesOf(p.text, st.find(p.text)), st.beh, st.invert, out)
	}
	return out
}

// The regexes of well-known tokenizers. Go's regexp cannot run them (they
// use the lookahead \s+(?!\S)), so they are recognised by their text and
// matched by hand.
const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// patO200k is the GPT-4o (o200k) regex.
const patO200k = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
	`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|` +
	`\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// knownPatterns maps a recognised regex to its hand-written matcher.
var knownPatterns = map[string]func(string) [][2]int{
	patGPT2:   gpt2Spans,
	patLlama3: func(s string) [][2]int { return cl100kSpans(s, 3) },
	patQwen2:  func(s string) [][2]int { return cl100kSpans(s, 1) },
	patO200k:  o200kSpans,
}

// Character classes of the hand-written matchers. Bytes that are not valid
// UTF-8 (which Hugging Face never sees) count as "other".
const (
	clsSpace = iota
	clsLetter
	clsNumber
	clsOther
)

func classAt(s string, i int) (cls int, r rune, w int) {
	r, w = utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && w <= 1:
		return clsOther, r, 1
	case unicode.IsSpace(r):
		return clsSpace, r, w
	case unicode.IsLetter(r):
		return clsLetter, r, w
	case unicode.IsNumber(r):
		return clsNumber, r, w
	}
	return clsOther, r, w
}

// runOf returns the end of the run of class c starting at i.
func runOf(s string, i, c int) int {
	for i < len(s) {
		ci, _, w := classAt(s, i)
		if ci != c {
			break
		}
		i += w
	}
	return i
}

// spaceRunEnd handles \s+(?!\S)|\s+ for the whitespace run [i, end): the
// run, less its last character when a non-space follows and the run is
// longer than one character.
func spaceRunEnd(s string, i, end int) int {
	if end < len(s) {
		_, lw := utf8.DecodeLastRuneInString(s[:end])
		if end-lw > i {
			return end - lw
		}
	}
	return end
}

// gpt2Spans matches patGPT2.
func gpt2Spans(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		if n := contraction(s[i:], false); n > 0 {
			out = append(out, [2]int{i, i + n})
			i += n
			continue
		}
		c, _, _ := classAt(s, i)
		// " ?X+" for X in letters, numbers, other.
		if s[i] == ' ' && i+1 < len(s) {
			if c2, _, _ := classAt(s, i+1); c2 != clsSpace {
				end := runOf(s, i+1, c2)
				out = append(out, [2]int{i, end})
				i = end
				continue
			}
		}
		if c != clsSpace {
			end := runOf(s, i, c)
			out = append(out, [2]int{i, end})
			i = end
			continue
		}
		end := spaceRunEnd(s, i, runOf(s, i, clsSpace))
		out = append(out, [2]int{i, end})
		i = end
	}
	return out
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at the start of
// s (any case when fold is set, with Unicode simple case folding as
// Oniguruma applies it), or 0.
func contraction(s string, fold bool) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	for _, suf := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		j := 1
		ok := true
		for k := 0; k < len(suf); k++ {
			if j >= len(s) {
				ok = false
				break
			}
			r, w := utf8.DecodeRuneInString(s[j:])
			if !(r == rune(suf[k]) || fold && foldEq(r, rune(suf[k]))) {
				ok = false
				break
			}
			j += w
		}
		if ok {
			return j
		}
	}
	return 0
}

// foldEq reports whether r equals the ASCII lower-case letter a under
// simple case folding (so 'S' and U+017F LONG S both match 's').
func foldEq(r, a rune) bool {
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == r {
			return true
		}
	}
	return false
}

// cl100kSpans matches patLlama3 (maxDigits 3) and patQwen2 (maxDigits 1):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// taking the first alternative that matches at each position, as a
// backtracking engine does.
func cl100kSpans(s string, maxDigits int) [][2]int {
	isCRLF := func(r rune) bool { return r == '\r' || r == '\n' }
	var out [][2]int
	for i := 0; i < len(s); {
		if n := contraction(s[i:], true); n > 0 {
			out = append(out, [2]int{i, i + n})
			i += n
			continue
		}
		c, r, w := classAt(s, i)
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if c == clsLetter {
			end := runOf(s, i, clsLetter)
			out = append(out, [2]int{i, end})
			i = end
			continue
		}
		if c != clsNumber && !isCRLF(r) && i+w < len(s) {
			if c2, _, _ := classAt(s, i+w); c2 == clsLetter {
				end := runOf(s, i+w, clsLetter)
				out = append(out, [2]int{i, end})
				i = end
				continue
			}
		}
		// \p{N}{1,maxDigits}
		if c == clsNumber {
			end := i
			for k := 0; k < maxDigits && end < len(s); k++ {
				ck, _, wk := classAt(s, end)
				if ck != clsNumber {
					break
				}
				end += wk
			}
			out = append(out, [2]int{i, end})
			i = end
			continue
		}
		//  ?[^\s\p{L}\p{N}]+[\r\n]*
		start := -1
		if c == clsOther {
			start = i
		} else if s[i] == ' ' && i+1 < len(s) {
			if c2, _, _ := classAt(s, i+1); c2 == clsOther {
				start = i + 1
			}
		}
		if start >= 0 {
			end := runOf(s, start, clsOther)
			for end < len(s) && (s[end] == '\r' || s[end] == '\n') {
				end++
			}
			out = append(out, [2]int{i, end})
			i = end
			continue
		}
		end := whitespaceSpan(s, i)
		out = append(out, [2]int{i, end})
		i = end
	}
	return out
}

// whitespaceSpan matches \s*[\r\n]+|\s+(?!\S)|\s+ at i, where s has a
// whitespace character: up to the last CR or LF of the run, else the run
// less its last character when a non-space follows.
func whitespaceSpan(s string, i int) int {
	run := runOf(s, i, clsSpace)
	if k := strings.LastIndexAny(s[i:run], "\r\n"); k >= 0 {
		return i + k + 1
	}
	return spaceRunEnd(s, i, run)
}

var (
	o200kUpper = []*unicode.RangeTable{unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M}
	o200kLower = []*unicode.RangeTable{unicode.Ll, unicode.Lm, unicode.Lo, unicode.M}
)

// runIn returns the end of the run of characters in one of the tables
// starting at i.
func runIn(s string, i int, tabs []*unicode.RangeTable) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w <= 1 || !unicode.IsOneOf(tabs, r) {
			break
		}
		i += w
	}
	return i
}

func inTables(s string, i int, tabs []*unicode.RangeTable) bool {
	if i >= len(s) {
		return false
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return !(r == utf8.RuneError && w <= 1) && unicode.IsOneOf(tabs, r)
}

// o200kSpans matches patO200k, the alternatives in order as a
// backtracking engine tries them:
//
//	P?U*L+C? | P?U+L*C? | \p{N}{1,3} |  ?[^\s\p{L}\p{N}]+[\r\n/]* |
//	\s*[\r\n]+ | \s+(?!\S) | \s+
//
// with P = [^\r\n\p{L}\p{N}], U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
// L = [\p{Ll}\p{Lm}\p{Lo}\p{M}] and C the contractions, any case.
func o200kSpans(s string) [][2]int {
	// body1 matches U*L+ at j: U* gives back characters until one of L
	// follows, then L+ runs greedily.
	body1 := func(j int) int {
		e := runIn(s, j, o200kUpper)
		for k := e; k >= j; {
			if inTables(s, k, o200kLower) {
				return runIn(s, k, o200kLower)
			}
			if k == j {
				break
			}
			_, w := utf8.DecodeLastRuneInString(s[:k])
			k -= w
		}
		return -1
	}
	body2 := func(j int) int {
		if !inTables(s, j, o200kUpper) {
			return -1
		}
		return runIn(s, runIn(s, j, o200kUpper), o200kLower)
	}
	var out [][2]int
	for i := 0; i < len(s); {
		c, r, w := classAt(s, i)
		isP := c != clsLetter && c != clsNumber && r != '\r' && r != '\n'
		end := -1
		for _, body := range [...]func(int) int{body1, body2} {
			if isP {
				end = body(i + w)
			}
			if end < 0 {
				end = body(i)
			}
			if end >= 0 {
				end += contraction(s[end:], true)
				break
			}
		}
		switch {
		case end >= 0:
		case c == clsNumber:
			end = i
			for k := 0; k < 3 && end < len(s); k++ {
				ck, _, wk := classAt(s, end)
				if ck != clsNumber {
					break
				}
				end += wk
			}
		case c == clsOther || s[i] == ' ' && i+1 < len(s) && func() bool { c2, _, _ := classAt(s, i+1); return c2 == clsOther }():
			start := i
			if c != clsOther {
				start++
			}
			end = runOf(s, start, clsOther)
			for end < len(s) && (s[end] == '\r' || s[end] == '\n' || s[end] == '/') {
				end++
			}
		default:
			end = whitespaceSpan(s, i)
		}
		out = append(out, [2]int{i, end})
		i = end
	}
	return out
}

// compileSplitRegex returns the matcher of a Split regex: by hand for the
// known patterns, else Go's regexp (see compileGoRegex). A construct Go
// lacks (lookaround, backreferences, possessive or atomic groups) is an
// error naming it.
func compileSplitRegex(pat string) (func(string) [][2]int, error) {
	if f, ok := knownPatterns[pat]; ok {
		return f, nil
	}
	if prefix, ok := strings.CutSuffix(pat, spaceTail); ok && prefix != "" {
		return compileSpaceTail(pat, prefix)
	}
	re, err := compileGoRegex(pat)
	if err != nil {
		return nil, fmt.Errorf("Split: %v (it is not one of the patterns matched by hand: GPT-2, Llama 3, Qwen2, GPT-4o)", err)
	}
	return func(s string) [][2]int {
		var out [][2]int
		for _, m := range re.FindAllStringIndex(s, -1) {
			out = append(out, [2]int{m[0], m[1]})
		}
		return out
	}, nil
}

// spaceTail ends the regexes of many tokenizers (DeepSeek, Mistral's
// Tekken): whitespace up to the last character before a non-space, or all
// of it.
const spaceTail = `|\s+(?!\S)|\s+`

// compileSpaceTail matches "PREFIX|\s+(?!\S)|\s+" as a backtracking engine
// does, trying the alternatives in order at each position: PREFIX, anchored,
// on Go's regexp, then the whitespace tail by hand.
func compileSpaceTail(pat, prefix string) (func(string) [][2]int, error) {
	goPat, err := unicodeClasses(prefix)
	if err == nil {
		var re *syntax.Regexp
		if re, err = syntax.Parse(goPat, syntax.Perl); err == nil && hasAnchor(re) {
			err = fmt.Errorf("unsupported construct: an anchor (^, \\A or $ in multi-line mode)")
		}
	}
	var re *regexp.Regexp
	if err == nil {
		re, err = regexp.Compile(`^(?:` + goPat + `)`)
	}
	if err != nil {
		return nil, fmt.Errorf("Split: regex %q: %v", pat, err)
	}
	return func(s string) [][2]int {
		var out [][2]int
		lastEnd := -1
		for i := 0; i < len(s); {
			if m := re.FindStringIndex(s[i:]); m != nil {
				end := i + m[1]
				if end > i || i != lastEnd {
					out = append(out, [2]int{i, end})
					lastEnd = end
				}
				if end > i {
					i = end
					continue
				}
			} else if c, _, _ := classAt(s, i); c == clsSpace {
				end := spaceRunEnd(s, i, runOf(s, i, clsSpace))
				out = append(out, [2]int{i, end})
				lastEnd = end
				i = end
				continue
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
		}
		return out
	}, nil
}

func hasAnchor(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine:
		return true
	}
	for _, sub := range re.Sub {
		if hasAnchor(sub) {
			return true
		}
	}
	return false
}

// compileGoRegex compiles an Oniguruma regex with Go's regexp, once \s \d
// \w are rewritten to their Unicode meaning, or says which construct Go
// lacks.
func compileGoRegex(pat string) (*regexp.Regexp, error) {
	goPat, err := unicodeClasses(pat)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", pat, err)
	}
	re, err := regexp.Compile(goPat)
	if err != nil {
		return nil, fmt.Errorf("regex %q uses a construct Go's regexp lacks: %v", pat, err)
	}
	return re, nil
}

// The Unicode meaning of the Perl classes, as Oniguruma gives them.
const (
	uniSpace = `\t\n\v\f\r \x{85}\p{Z}`
	uniDigit = `\p{Nd}`
	uniWord  = `\p{L}\p{M}\p{N}\p{Pc}`
)

// unicodeClasses rewrites \s \d \w (and their negations outside brackets)
// to Unicode classes. A negated class inside brackets, and \b \B, which
// have no such rewrite, are errors.
func unicodeClasses(pat string) (string, error) {
	var sb strings.Builder
	depth := 0 // inside [...]
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		if c == '\\' && i+1 < len(pat) {
			e := pat[i+1]
			i++
			var cls string
			switch e {
			case 's', 'S':
				cls = uniSpace
			case 'd', 'D':
				cls = uniDigit
			case 'w', 'W':
				cls = uniWord
			case 'b', 'B':
				return "", fmt.Errorf("unsupported construct \\%c (word boundary)", e)
			default:
				sb.WriteByte('\\')
				sb.WriteByte(e)
				continue
			}
			neg := e == 'S' || e == 'D' || e == 'W'
			switch {
			case depth > 0 && neg:
				return "", fmt.Errorf("unsupported construct \\%c inside a bracket class", e)
			case depth > 0:
				sb.WriteString(cls)
			case neg:
				sb.WriteString("[^" + cls + "]")
			default:
				sb.WriteString("[" + cls + "]")
			}
			continue
		}
		switch c {
		case '[':
			if depth == 0 {
				depth = 1
				sb.WriteByte(c)
				// A ']' right after '[' or '[^' is a literal.
				if i+1 < len(pat) && pat[i+1] == '^' {
					sb.WriteByte('^')
					i++
				}
				if i+1 < len(pat) && pat[i+1] == ']' {
					sb.WriteByte(']')
					i++
				}
				continue
			}
			if i+1 < len(pat) && pat[i+1] == ':' { // [:alpha:]
				end := strings.Index(pat[i:], ":]")
				if end > 0 {
					sb.WriteString(pat[i : i+end+2])
					i += end + 1
					continue
				}
			}
			return "", fmt.Errorf("unsupported construct: nested bracket class")
		case ']':
			if depth > 0 {
				depth = 0
			}
		}
		sb.WriteByte(c)
	}
	return sb.String(), nil
}

// ---------------------------------------------------------------------------
// ByteLevel, Metaspace, Digits, Punctuation, Whitespace

type byteLevelStep struct {
	addPrefixSpace bool
	useRegex       bool
}

func (st byteLevelStep) apply(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		s := p.text
		if s == "" {
			continue
		}
		if st.addPrefixSpace && !strings.HasPrefix(s, " ") {
			s = " " + s
		}
		if !st.useRegex {
			out = append(out, piece{text: byteLevelEncode(s), first: p.first})
			continue
		}
		for _, sp := range gpt2Spans(s) {
			out = append(out, piece{text: byteLevelEncode(s[sp[0]:sp[1]]), first: p.first && sp[0] == 0})
		}
	}
	return out
}

// byteLevelSplit splits s like the GPT-2 pattern.
func byteLevelSplit(s string) []string {
	var out []string
	for _, sp := range gpt2Spans(s) {
		out = append(out, s[sp[0]:sp[1]])
	}
	return out
}

type metaspaceStep struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func (st metaspaceStep) apply(in []piece) []piece {
	rep, _ := utf8.DecodeRuneInString(st.replacement)
	out := make([]piece, 0, len(in))
	for _, p := range in {
		if p.text == "" {
			continue
		}
		s := strings.ReplaceAll(p.text, " ", st.replacement)
		if !strings.HasPrefix(s, st.replacement) &&
			(st.scheme == prependAlways || (st.scheme == prependFirst && p.first)) {
			s = st.replacement + s
		}
		q := piece{text: s, first: p.first}
		if !st.split {
			out = append(out, q)
			continue
		}
		out = splitBy(q, charMatches(s, func(r rune) bool { return r == rep }), behMergedWithNext, false, out)
	}
	return out
}

// predStep splits on a character predicate (Digits, Punctuation,
// WhitespaceSplit).
type predStep struct {
	pred func(rune) bool
	beh  splitBehavior
}

func (st predStep) apply(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		out = splitBy(p, charMatches(p.text, st.pred), st.beh, false, out)
	}
	return out
}

// isPunct is Hugging Face's punctuation test: ASCII punctuation or a
// Unicode P* character.
func isPunct(r rune) bool {
	return r < 0x80 && unicode.IsPunct(r) || r < 0x80 && unicode.IsSymbol(r) || unicode.IsPunct(r)
}

// isWordChar is \w of the Rust regex crate, which the Whitespace
// pre-tokenizer and the single_word test of added tokens use (Unicode
// TR 18): alphabetic characters (letters,
// letter numbers, marks), decimal digits, connector punctuation and the
// joiners U+200C and U+200D.
func isWordChar(r rune) bool {
	return r == 0x200C || r == 0x200D || unicode.IsLetter(r) || unicode.IsMark(r) ||
		unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r)
}

// whitespaceStep is the Whitespace pre-tokenizer: the runs of \w+ and
// [^\w\s]+, whitespace dropped.
type whitespaceStep struct{}

func (whitespaceStep) apply(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		s := p.text
		var spans [][2]int
		for i := 0; i < len(s); {
			r, w := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				i += w
				continue
			}
			word := isWordChar(r)
			j := i
			for j < len(s) {
				r2, w2 := utf8.DecodeRuneInString(s[j:])
				if unicode.IsSpace(r2) || isWordChar(r2) != word {
					break
				}
				j += w2
			}
			spans = append(spans, [2]int{i, j})
			i = j
		}
		out = splitBy(p, matchesOf(s, spans), behRemoved, true, out)
	}
	return out
}

// sequenceStep runs its steps in order.
type sequenceStep []preStep

func (st sequenceStep) apply(in []piece) []piece {
	for _, s := range st {
		in = s.apply(in)
	}
	return in
}

// ---------------------------------------------------------------------------
// Parsing

type preComponent struct {
	Type          string            `json:"type"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	// ByteLevel
	AddPrefixSpace *bool `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Metaspace
	Replacement   *string `json:"replacement"`
	PrependScheme *string `json:"prepend_scheme"`
	Split         *bool   `json:"split"`
	// Split
	Pattern *struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Digits
	IndividualDigits bool `json:"individual_digits"`
}

func parsePreTokenizer(raw json.RawMessage) (preStep, error) {
	var c preComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %v", err)
	}
	switch c.Type {
	case "Sequence":
		var seq sequenceStep
		for _, r := range c.PreTokenizers {
			s, err := parsePreTokenizer(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, s)
		}
		return seq, nil
	case "ByteLevel":
		p := byteLevelStep{addPrefixSpace: true, useRegex: true}
		if c.AddPrefixSpace != nil {
			p.addPrefixSpace = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			p.useRegex = *c.UseRegex
		}
		return p, nil
	case "Metaspace":
		m, err := metaspaceArgs(component{Replacement: c.Replacement, PrependScheme: c.PrependScheme, Split: c.Split, AddPrefixSpace: c.AddPrefixSpace}, "pre_tokenizer")
		if err != nil {
			return nil, err
		}
		return metaspaceStep{replacement: m.replacement, scheme: m.scheme, split: m.split}, nil
	case "Split":
		beh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer %v", err)
		}
		if c.Pattern == nil || (c.Pattern.String == nil && c.Pattern.Regex == nil) {
			return nil, fmt.Errorf("pre_tokenizer Split without pattern")
		}
		st := splitStep{beh: beh, invert: c.Invert}
		if c.Pattern.String != nil {
			lit := *c.Pattern.String
			if lit == "" {
				return nil, fmt.Errorf("pre_tokenizer Split with an empty pattern")
			}
			st.find = func(s string) [][2]int {
				var out [][2]int
				for i := 0; i <= len(s)-len(lit); {
					k := strings.Index(s[i:], lit)
					if k < 0 {
						break
					}
					out = append(out, [2]int{i + k, i + k + len(lit)})
					i += k + len(lit)
				}
				return out
			}
		} else if st.find, err = compileSplitRegex(*c.Pattern.Regex); err != nil {
			return nil, fmt.Errorf("pre_tokenizer %v", err)
		}
		return st, nil
	case "Digits":
		if c.IndividualDigits {
			return predStep{pred: unicode.IsNumber, beh: behIsolated}, nil
		}
		return predStep{pred: unicode.IsNumber, beh: behContiguous}, nil
	case "Punctuation":
		beh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer %v", err)
		}
		return predStep{pred: isPunct, beh: beh}, nil
	case "Whitespace":
		return whitespaceStep{}, nil
	case "WhitespaceSplit":
		return predStep{pred: unicode.IsSpace, beh: behRemoved}, nil
	}
	return nil, fmt.Errorf("unsupported pre_tokenizer %q", c.Type)
}
