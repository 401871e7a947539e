package dsl

import (
	"strings"
)

// Format prints a file as canonical source: blocks separated by a blank
// line, one entry per line indented by two spaces, values aligned in a
// column and separated by ", ". Comments are not kept. Parsing the result
// gives back the same file, positions aside.
func Format(f *File) string {
	var b strings.Builder
	for i, blk := range f.Blocks {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(blk.Kind)
		if blk.Name != nil {
			b.WriteString(" " + blk.Name.Name)
		}
		b.WriteString(" {\n")
		width := 0
		for _, e := range blk.Entries {
			width = max(width, len(e.Key))
		}
		for _, e := range blk.Entries {
			b.WriteString("  " + e.Key)
			if len(e.Values) > 0 {
				b.WriteString(strings.Repeat(" ", width-len(e.Key)+1))
				for j, v := range e.Values {
					if j > 0 {
						b.WriteString(", ")
					}
					b.WriteString(v.String())
				}
			}
			b.WriteByte('\n')
		}
		b.WriteString("}\n")
	}
	return b.String()
}
