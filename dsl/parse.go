package dsl

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// lexDef splits a .lora file into tokens. Newlines are tokens because they
// end entries. Identifiers may contain "-" and "." between their characters,
// so all-linear and self_attn.q_proj are one token; a number takes a "." only
// when digits follow it, so 0..3 is a number, "..", and a number. The order
// matters: the first rule that matches wins.
var lexDef = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `#[^\n]*`},
	{Name: "NL", Pattern: `\r?\n`},
	{Name: "Whitespace", Pattern: `[ \t\r]+`},
	{Name: "String", Pattern: `"(?:\\.|[^"\\\n])*"`},
	{Name: "Number", Pattern: `-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?`},
	{Name: "Ident", Pattern: `[A-Za-z_](?:[A-Za-z0-9_]|[-.][A-Za-z0-9_])*`},
	{Name: "DotDot", Pattern: `\.\.`},
	{Name: "Punct", Pattern: `[{},;]`},
})

var fileParser = participle.MustBuild[File](
	participle.Lexer(lexDef),
	participle.Elide("Comment", "Whitespace"),
)

// Parse parses a .lora file. filename is used in positions and messages. The
// error, if any, is an ErrorList holding one *Error that says where the
// syntax breaks and what to write instead. A UTF-8 byte order mark at the
// start, which some editors write, is skipped; positions count from after it.
func Parse(filename string, src []byte) (*File, error) {
	src = bytes.TrimPrefix(src, []byte("\uFEFF"))
	tokens, err := fileParser.Lex(filename, bytes.NewReader(src))
	if err != nil {
		return nil, ErrorList{lexError(err, src)}
	}
	f, err := fileParser.ParseBytes(filename, src)
	if err != nil {
		return nil, ErrorList{syntaxError(err, tokens)}
	}
	// An empty file has no first token to take a position from.
	f.Pos = lexer.Position{Filename: filename, Line: 1, Column: 1}
	return f, nil
}

// lexError explains a character that starts no token.
func lexError(err error, src []byte) *Error {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Error{Pos: lexer.Position{Line: 1, Column: 1}, Msg: err.Error()}
	}
	pos := perr.Position()
	r, _ := utf8.DecodeRune(src[min(pos.Offset, len(src)):])
	e := &Error{Pos: pos, Msg: fmt.Sprintf("unexpected %q", string(r))}
	switch r {
	case '"':
		e.Msg = "unterminated string"
		e.Hint = `close it with '"' on the same line`
	case '=', ':':
		e.Hint = `separate a field name from its value with a space, e.g. "rank 8"`
	case '.':
		e.Hint = "write numbers like 0.5 and ranges like 0..3"
	case '-':
		e.Hint = `write negative numbers like -1; "-" may appear inside a name, not at its start or end`
	case '[', ']', '(', ')':
		e.Hint = "write lists without brackets, separated by commas: 0, 2, 5"
	case utf8.RuneError:
		e.Msg = fmt.Sprintf("unexpected byte %#02x", src[pos.Offset])
		e.Hint = "a .lora file is UTF-8 text; remove it"
	default:
		e.Hint = `remove it; a .lora file holds names, numbers, "strings", { } , ; .. and # comments`
	}
	return e
}

// The states of a walk over the tokens before a syntax error: they say what
// the parser was in the middle of, so the message can say what should have
// come instead.
type parseState int

const (
	lineStart   parseState = iota // at the start of a line, outside any block
	afterKind                     // after a block's kind, e.g. "model"
	afterName                     // after a block's name, e.g. "model tiny"
	entryStart                    // inside a block, where an entry may start
	afterKey                      // after an entry's key
	afterValue                    // after one of an entry's values
	afterComma                    // after the "," between two values
	afterDotDot                   // after the ".." of a range
	afterClose                    // after a block's closing "}"
)

// syntaxError rewrites a participle error at token t as an Error that names
// what the parser was reading and what it expected.
func syntaxError(err error, tokens []lexer.Token) *Error {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Error{Pos: lexer.Position{Line: 1, Column: 1}, Msg: err.Error()}
	}
	pos := perr.Position()
	var (
		state parseState
		kind  lexer.Token // the kind of the block being read
		key   lexer.Token // the key of the entry being read
		t     = lexer.EOFToken(pos)
	)
	for _, tok := range tokens {
		if tok.Type == symbols["Comment"] || tok.Type == symbols["Whitespace"] {
			continue
		}
		if tok.Pos.Offset >= pos.Offset {
			t = tok
			break
		}
		switch {
		case state == lineStart && tok.Type == symbols["Ident"]:
			state, kind = afterKind, tok
		case state == afterKind && tok.Type == symbols["Ident"]:
			state = afterName
		case tok.Value == "{":
			state = entryStart
		case tok.Value == "}":
			state = afterClose
		case tok.Type == symbols["NL"] && (state == afterClose || state == lineStart):
			state = lineStart
		case tok.Type == symbols["NL"] && state == afterComma:
			// A list of values may continue on the next line.
		case tok.Type == symbols["NL"] || tok.Value == ";":
			state = entryStart
		case state == entryStart:
			state, key = afterKey, tok
		case tok.Value == ",":
			state = afterComma
		case tok.Value == "..":
			state = afterDotDot
		default:
			state = afterValue
		}
	}
	what := describe(t)
	e := &Error{Pos: t.Pos, Msg: "unexpected " + what}
	switch state {
	case lineStart:
		e.Msg += " where a block should start"
		e.Hint = `a block is KIND [NAME] { … }, e.g. "lora { rank 8; targets qkv }"`
	case afterKind, afterName:
		if t.EOF() || t.Type == symbols["NL"] {
			e.Msg = fmt.Sprintf("%s block has no body", kind.Value)
			e.Hint = fmt.Sprintf(`put "{" on the same line as %q`, kind.Value)
			break
		}
		e.Msg += fmt.Sprintf(" in the header of the %s block", kind.Value)
		e.Hint = `a block header is KIND [NAME] {, e.g. "model tiny {"`
	case afterClose:
		e.Msg += ` after "}"`
		e.Hint = "start the next block on a new line"
		if t.Value == ";" {
			e.Hint = `end a block with a newline, not ";"`
		}
	case afterComma:
		e.Msg += ` after ","`
		e.Hint = `add a value or remove the ","`
	case afterDotDot:
		e.Msg += ` after ".."`
		e.Hint = "write a range as two integers, e.g. 0..3"
	default:
		switch {
		case t.EOF():
			e.Pos = kind.Pos
			e.Msg = fmt.Sprintf("%s block is never closed", kind.Value)
			e.Hint = `add "}" after its last entry`
		case t.Value == "{":
			e.Msg += fmt.Sprintf(" inside the %s block opened at %d:%d", kind.Value, kind.Pos.Line, kind.Pos.Column)
			e.Hint = `close that block with "}" before starting another`
		case state == entryStart:
			e.Msg += " where a field should start"
			e.Hint = `an entry is a field name and its values, e.g. "rank 8"`
		case t.Value == "..":
			e.Msg += fmt.Sprintf(" in the value of %s", key.Value)
			e.Hint = "write a range as two integers, e.g. 0..3"
		case state == afterKey:
			e.Msg += fmt.Sprintf(" after %s", describe(key))
			e.Hint = `write the values after the field name, separated by ","`
		default:
			e.Msg += fmt.Sprintf(" after the value of %s", key.Value)
			e.Hint = `separate values with "," and end each entry with a newline or ";"`
		}
	}
	return e
}

var symbols = lexDef.Symbols()

// describe names a token for a message.
func describe(t lexer.Token) string {
	switch {
	case t.EOF():
		return "end of file"
	case t.Type == symbols["NL"]:
		return "end of line"
	}
	return fmt.Sprintf("%q", t.Value)
}
