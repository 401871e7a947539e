package tmpl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParseRender: no input makes Parse or Render panic (both turn a panic
// into an "internal error", which fails here), run away, or fail without a
// position. The corpus starts from the family templates and jinja cases.
func FuzzParseRender(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "templates", "*.jinja"))
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	for _, s := range []string{
		"{{ x }}", "{% for a, b in d.items() if a %}{{ loop.index }}{% else %}e{% endfor %}",
		"{%- set ns = namespace(a=1) -%}{% set ns.a = ns.a ~ 'x' %}{{ ns.a | tojson(indent=2) }}",
		"{{ 'a b'.split()[::-1] | join(',') }}{# c #}{% raw %}{{{% endraw %}",
		"{% macro m(a, b=2) %}{{ caller() if caller is defined }}{{ a * b }}{% endmacro %}{% call m(3) %}x{% endcall %}",
		"{{ (1, 2) + (3,) }}{{ {'a': [1, {'b': none}]}['a'][1].b is none }}",
	} {
		f.Add(s)
	}
	vars := map[string]any{
		"messages": []any{
			map[string]any{"role": "system", "content": "s"},
			map[string]any{"role": "user", "content": " u "},
			map[string]any{"role": "assistant", "content": "<think>r</think>a", "tool_calls": []any{map[string]any{"function": map[string]any{"name": "f", "arguments": map[string]any{"x": 1}}}}},
		},
		"tools":                 []any{map[string]any{"name": "f"}},
		"add_generation_prompt": true,
		"bos_token":             "<s>",
		"d":                     map[string]any{"k": []any{1, 2.5, "x"}},
		"x":                     1,
	}
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
		}()
		tp, err := Parse("fuzz", src)
		if err != nil {
			checkFuzzErr(t, err)
			return
		}
		if _, err := tp.Render(vars); err != nil {
			checkFuzzErr(t, err)
		}
	})
}

func checkFuzzErr(t *testing.T, err error) {
	te := asError(t, err)
	if strings.Contains(te.Msg, "internal error") {
		t.Fatal(err)
	}
	if te.Line < 1 || te.Col < 1 {
		t.Fatalf("error without a position: %v", err)
	}
}
