package dsl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/participle/v2/lexer"
)

// Error is one mistake in a .lora file: where it is, what is wrong, and what
// to write instead.
type Error struct {
	Pos  lexer.Position
	Msg  string // what is wrong
	Hint string // what to write instead; may be empty
}

// Error formats the error as `file:line:col: msg; hint`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.Filename != "" {
		b.WriteString(e.Pos.Filename)
		b.WriteByte(':')
	}
	fmt.Fprintf(&b, "%d:%d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// ErrorList is every mistake found in a file, sorted by position. Parse and
// Check return their errors as an ErrorList so callers can show them all.
type ErrorList []*Error

// Error prints one error per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// sort orders the errors by position; errors found by different checks of the
// same spot keep the order they were found in.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
}

// err returns the list as an error, or nil when it is empty, so that a nil
// ErrorList never hides inside a non-nil error interface.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}
