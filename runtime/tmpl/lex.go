package tmpl

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Token kinds.
const (
	tEOF        = iota
	tData       // text outside tags
	tBlockBegin // {%
	tBlockEnd   // %}
	tVarBegin   // {{
	tVarEnd     // }}
	tName
	tString
	tInt
	tFloat
	tOp
)

type token struct {
	kind      int
	val       string // data text, name, operator, decoded string
	num       int64
	fnum      float64
	line, col int
}

// pySpace reports whether Python's str.isspace (and its regular
// expressions' \s) counts r as white space; Go's unicode.IsSpace misses the
// four ASCII separators 0x1c..0x1f.
func pySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

type lexer struct {
	name  string
	src   string
	pos   int
	line  int // 1-based line of pos
	lineP int // offset where the line of pos starts
	toks  []token
}

func (lx *lexer) errAt(line, col int, format string, args ...any) error {
	return &Error{Name: lx.name, Line: line, Col: col, Msg: sprintf(format, args...)}
}

// advance moves pos to p, counting lines.
func (lx *lexer) advance(p int) {
	for i := lx.pos; i < p; i++ {
		if lx.src[i] == '\n' {
			lx.line++
			lx.lineP = i + 1
		}
	}
	lx.pos = p
}

func (lx *lexer) col(p int) int {
	// columns count characters, 1-based; p is on the current line
	return utf8.RuneCountInString(lx.src[lx.lineP:p]) + 1
}

// normalize turns \r\n and \r into \n and drops one trailing newline, as
// Jinja does with keep_trailing_newline off.
func normalize(src string) string {
	if strings.Contains(src, "\r") {
		src = strings.ReplaceAll(src, "\r\n", "\n")
		src = strings.ReplaceAll(src, "\r", "\n")
	}
	return strings.TrimSuffix(src, "\n")
}

// lex splits a template into tokens with the options transformers renders
// chat templates with: trim_blocks and lstrip_blocks on.
func lex(name, src string) ([]token, error) {
	lx := &lexer{name: name, src: normalize(src), line: 1}
	lineStarting := true
	for lx.pos < len(lx.src) {
		rest := lx.src[lx.pos:]
		i := indexTag(rest)
		if i < 0 {
			lx.emitData(rest)
			lx.advance(len(lx.src))
			break
		}
		text := rest[:i]
		tagAt := lx.pos + i
		kind := lx.src[tagAt+1]
		sign := byte(0)
		if tagAt+2 < len(lx.src) && (lx.src[tagAt+2] == '-' || lx.src[tagAt+2] == '+') {
			sign = lx.src[tagAt+2]
		}
		if sign == '-' {
			text = strings.TrimRightFunc(text, pySpace)
		} else if sign != '+' && kind != '{' {
			lpos := strings.LastIndexByte(text, '\n') + 1
			if lpos > 0 || lineStarting {
				tail := text[lpos:]
				if tail != "" && strings.TrimLeftFunc(tail, pySpace) == "" {
					text = text[:lpos]
				}
			}
		}
		lx.emitData(text)
		lx.advance(tagAt)
		beginLine, beginCol := lx.line, lx.col(tagAt)
		start := tagAt + 2
		if sign != 0 {
			start++
		}
		switch kind {
		case '#':
			j := strings.Index(lx.src[start:], "#}")
			if j < 0 {
				return nil, lx.errAt(beginLine, beginCol, "unclosed comment")
			}
			end := start + j
			lx.advance(end + 2)
			if end > start && lx.src[end-1] == '-' {
				lx.skipSpace()
			} else if !(end > start && lx.src[end-1] == '+') {
				lx.trimNewline()
			}
		case '%':
			if ok, err := lx.raw(start, beginLine, beginCol); ok {
				if err != nil {
					return nil, err
				}
				break
			}
			lx.advance(start)
			lx.toks = append(lx.toks, token{kind: tBlockBegin, line: beginLine, col: beginCol})
			if err := lx.inner(false); err != nil {
				return nil, err
			}
		case '{':
			lx.advance(start)
			lx.toks = append(lx.toks, token{kind: tVarBegin, line: beginLine, col: beginCol})
			if err := lx.inner(true); err != nil {
				return nil, err
			}
		}
		lineStarting = lx.pos > 0 && lx.src[lx.pos-1] == '\n'
	}
	lx.toks = append(lx.toks, token{kind: tEOF, line: lx.line, col: lx.col(lx.pos)})
	return lx.toks, nil
}

func indexTag(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '{' && (s[i+1] == '{' || s[i+1] == '%' || s[i+1] == '#') {
			return i
		}
	}
	return -1
}

func (lx *lexer) emitData(text string) {
	if text == "" {
		return
	}
	lx.toks = append(lx.toks, token{kind: tData, val: text, line: lx.line, col: lx.col(lx.pos)})
}

func (lx *lexer) skipSpace() {
	p := lx.pos
	for p < len(lx.src) {
		r, n := utf8.DecodeRuneInString(lx.src[p:])
		if !pySpace(r) {
			break
		}
		p += n
	}
	lx.advance(p)
}

// trimNewline drops the one newline after a block or comment tag
// (trim_blocks).
func (lx *lexer) trimNewline() {
	if lx.pos < len(lx.src) && lx.src[lx.pos] == '\n' {
		lx.advance(lx.pos + 1)
	}
}

// raw handles {% raw %}…{% endraw %}: the text between is data, unparsed.
// It reports false when the tag at start is not raw.
func (lx *lexer) raw(start, line, col int) (bool, error) {
	p := start
	for p < len(lx.src) && pySpace(rune(lx.src[p])) {
		p++
	}
	if !strings.HasPrefix(lx.src[p:], "raw") {
		return false, nil
	}
	p += 3
	for p < len(lx.src) && pySpace(rune(lx.src[p])) {
		p++
	}
	sign := byte(0)
	if p < len(lx.src) && lx.src[p] == '-' {
		sign = lx.src[p]
		p++
	}
	if !strings.HasPrefix(lx.src[p:], "%}") {
		return false, nil
	}
	p += 2
	lx.advance(p)
	if sign == '-' {
		lx.skipSpace()
	} // no trim_blocks after {% raw %}: Jinja's rule for it has none
	// find {%[-+]? endraw [-+]?%}
	q := lx.pos
	for {
		k := strings.Index(lx.src[q:], "{%")
		if k < 0 {
			return true, lx.errAt(line, col, "missing end of raw directive")
		}
		k += q
		e := k + 2
		esign := byte(0)
		if e < len(lx.src) && (lx.src[e] == '-' || lx.src[e] == '+') {
			esign = lx.src[e]
			e++
		}
		for e < len(lx.src) && pySpace(rune(lx.src[e])) {
			e++
		}
		if !strings.HasPrefix(lx.src[e:], "endraw") {
			q = k + 2
			continue
		}
		e += 6
		for e < len(lx.src) && pySpace(rune(lx.src[e])) {
			e++
		}
		tsign := byte(0)
		if e < len(lx.src) && (lx.src[e] == '-' || lx.src[e] == '+') {
			tsign = lx.src[e]
			e++
		}
		if !strings.HasPrefix(lx.src[e:], "%}") {
			q = k + 2
			continue
		}
		text := lx.src[lx.pos:k]
		if esign == '-' {
			text = strings.TrimRightFunc(text, pySpace)
		} else if esign != '+' {
			lpos := strings.LastIndexByte(text, '\n') + 1
			tail := text[lpos:]
			if lpos > 0 && tail != "" && strings.TrimLeftFunc(tail, pySpace) == "" {
				text = text[:lpos]
			}
		}
		lx.emitData(text)
		lx.advance(e + 2)
		if tsign == '-' {
			lx.skipSpace()
		} else if tsign != '+' {
			lx.trimNewline()
		}
		return true, nil
	}
}

var ops3 = []string{"//", "**", "==", "!=", ">=", "<="}

// inner lexes the inside of a {% %} (isVar false) or {{ }} tag, up to and
// including its end.
func (lx *lexer) inner(isVar bool) error {
	depth := 0
	for {
		// skip white space
		for lx.pos < len(lx.src) {
			r, n := utf8.DecodeRuneInString(lx.src[lx.pos:])
			if !pySpace(r) {
				break
			}
			lx.advance(lx.pos + n)
		}
		if lx.pos >= len(lx.src) {
			if isVar {
				return lx.errAt(lx.line, lx.col(lx.pos), "unexpected end of template, expected '}}'")
			}
			return lx.errAt(lx.line, lx.col(lx.pos), "unexpected end of template, expected '%%}'")
		}
		rest := lx.src[lx.pos:]
		line, col := lx.line, lx.col(lx.pos)
		// tag ends
		if depth == 0 {
			end := "%}"
			if isVar {
				end = "}}"
			}
			sign := byte(0)
			body := rest
			if rest[0] == '-' || (rest[0] == '+' && !isVar) {
				sign = rest[0]
				body = rest[1:]
			}
			if strings.HasPrefix(body, end) {
				lx.advance(lx.pos + len(rest) - len(body) + 2)
				k := tBlockEnd
				if isVar {
					k = tVarEnd
				}
				lx.toks = append(lx.toks, token{kind: k, line: line, col: col})
				if sign == '-' {
					lx.skipSpace()
				} else if sign != '+' && !isVar {
					lx.trimNewline()
				}
				return nil
			}
		}
		c := rest[0]
		switch {
		case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)) || c >= utf8.RuneSelf:
			r, _ := utf8.DecodeRuneInString(rest)
			if !(r == '_' || unicode.IsLetter(r)) {
				return lx.errAt(line, col, "unexpected char %q", r)
			}
			n := 0
			for n < len(rest) {
				r, w := utf8.DecodeRuneInString(rest[n:])
				if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
					break
				}
				n += w
			}
			lx.toks = append(lx.toks, token{kind: tName, val: rest[:n], line: line, col: col})
			lx.advance(lx.pos + n)
		case c >= '0' && c <= '9':
			n, t, err := lexNumber(rest)
			if err != nil {
				return lx.errAt(line, col, "%v", err)
			}
			t.line, t.col = line, col
			lx.toks = append(lx.toks, t)
			lx.advance(lx.pos + n)
		case c == '\'' || c == '"':
			n, s, ok := lexString(rest)
			if !ok {
				return lx.errAt(line, col, "unexpected end of string literal")
			}
			lx.toks = append(lx.toks, token{kind: tString, val: s, line: line, col: col})
			lx.advance(lx.pos + n)
		default:
			op := ""
			for _, o := range ops3 {
				if strings.HasPrefix(rest, o) {
					op = o
					break
				}
			}
			if op == "" {
				if !strings.ContainsRune("+-*/%~<>=.,:|()[]{};", rune(c)) {
					r, _ := utf8.DecodeRuneInString(rest)
					return lx.errAt(line, col, "unexpected char %q", r)
				}
				op = rest[:1]
			}
			switch op {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				if depth == 0 {
					return lx.errAt(line, col, "unexpected '%s'", op)
				}
				depth--
			}
			lx.toks = append(lx.toks, token{kind: tOp, val: op, line: line, col: col})
			lx.advance(lx.pos + len(op))
		}
	}
}

func lexNumber(s string) (int, token, error) {
	n := 0
	digits := func() {
		for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] == '_' && n+1 < len(s) && s[n+1] >= '0' && s[n+1] <= '9') {
			n++
		}
	}
	digits()
	isFloat := false
	if n+1 < len(s) && s[n] == '.' && s[n+1] >= '0' && s[n+1] <= '9' {
		isFloat = true
		n++
		digits()
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		m := n + 1
		if m < len(s) && (s[m] == '+' || s[m] == '-') {
			m++
		}
		if m < len(s) && s[m] >= '0' && s[m] <= '9' {
			isFloat = true
			n = m
			digits()
		}
	}
	lit := strings.ReplaceAll(s[:n], "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return 0, token{}, err
		}
		return n, token{kind: tFloat, fnum: f}, nil
	}
	v, err := strconv.ParseInt(lit, 10, 64)
	if err != nil {
		return 0, token{}, sprintErr("integer literal %s out of range", lit)
	}
	return n, token{kind: tInt, num: v}, nil
}

// lexString reads a quoted literal and decodes Python's escapes as Jinja
// does (unicode-escape); unknown escapes keep their backslash.
func lexString(s string) (int, string, bool) {
	q := s[0]
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		if c == q {
			return i + 1, b.String(), true
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return 0, "", false
		}
		e := s[i+1]
		i += 2
		switch e {
		case '\n':
		case '\\':
			b.WriteByte('\\')
		case '\'':
			b.WriteByte('\'')
		case '"':
			b.WriteByte('"')
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'f':
			b.WriteByte(12)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte(11)
		case 'x', 'u', 'U':
			w := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+w > len(s) {
				return 0, "", false
			}
			v, err := strconv.ParseUint(s[i:i+w], 16, 32)
			if err != nil || v > unicode.MaxRune {
				return 0, "", false
			}
			b.WriteRune(rune(v))
			i += w
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for k := 0; k < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; k++ {
				v = v*8 + int(s[i]-'0')
				i++
			}
			b.WriteRune(rune(v))
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return 0, "", false
}
