package dsl

import "github.com/alecthomas/participle/v2/lexer"

// The AST is the grammar: participle reads the struct tags below. It is kept
// generic (blocks of "key value, value…" entries) so that Check, which knows
// what each block means, reports semantic mistakes with a suggestion instead
// of the parser reporting an unexpected token.

// File is a parsed .lora file: blocks separated by newlines.
type File struct {
	Pos    lexer.Position
	Blocks []*Block `parser:"NL* ( @@ ( NL+ @@? )* )?"`
}

// Block is `KIND [NAME] { entries }`, e.g. `model tiny { … }` or `target cpu { … }`.
type Block struct {
	Pos  lexer.Position
	Kind string `parser:"@Ident"`
	Name *Ident `parser:"@@?"`
	// Entries are separated by newlines or ";"; the last one may share its
	// line with the closing brace.
	Entries []*Entry `parser:"'{' ( NL | ';' )* ( @@ ( ( NL | ';' )+ @@? )* )? '}'"`
}

// Ident is a name with its position, for the NAME slot of a block header.
type Ident struct {
	Pos  lexer.Position
	Name string `parser:"@Ident"`
}

// Entry is `key value, value…`. A key without values parses, so that Check
// can say which value is missing. A newline may follow a comma, so long
// lists can be wrapped.
type Entry struct {
	Pos    lexer.Position
	Key    string   `parser:"@Ident"`
	Values []*Value `parser:"( @@ ( ',' NL* @@ )* )?"`
}

// Value is one value of an entry: exactly one of its fields is set. Numbers
// and strings keep their source text; Check interprets them.
type Value struct {
	Pos    lexer.Position
	Range  *Range  `parser:"@@"`
	Number *string `parser:"| @Number"`
	Str    *string `parser:"| @String"`
	Ident  *string `parser:"| @Ident"`
}

// Range is `lo..hi`, inclusive at both ends.
type Range struct {
	Pos lexer.Position
	Lo  string `parser:"@Number '..'"`
	Hi  string `parser:"@Number"`
}

// String renders the value as it appears in canonical source.
func (v *Value) String() string {
	switch {
	case v.Range != nil:
		return v.Range.Lo + ".." + v.Range.Hi
	case v.Number != nil:
		return *v.Number
	case v.Str != nil:
		return *v.Str
	case v.Ident != nil:
		return *v.Ident
	}
	return ""
}
