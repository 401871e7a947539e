package tmpl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func render(t *testing.T, src string, vars map[string]any) (string, error) {
	t.Helper()
	tp, err := Parse("t", src)
	if err != nil {
		return "", err
	}
	return tp.Render(vars)
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *tmpl.Error", err, err)
	}
	return te
}

func TestErrorPositions(t *testing.T) {
	for _, c := range []struct {
		src             string
		parse           bool
		line, col       int
		raised          bool
		msgHas, display string
	}{
		{src: "line one\n  {{ 1 + }}", parse: true, line: 2, col: 10, msgHas: "unexpected end of print statement"},
		{src: "{% if x %}\n{% endfor %}", parse: true, line: 2, col: 4, msgHas: "unknown statement 'endfor'"},
		{src: "a\n\n   {{ x | nosuch }}", parse: true, line: 3, col: 11, msgHas: "no filter named 'nosuch'"},
		{src: "ü{{ 'abc }}", parse: true, line: 1, col: 5, msgHas: "string literal"},
		{src: "x\n{% for m in ms %}{% if m %}{{ raise_exception('bad ' ~ m) }}{% endif %}{% endfor %}", line: 2, col: 31, raised: true, msgHas: "bad 2"},
		{src: "{{ a }}\n  {{ missing.attr }}", line: 2, col: 13, msgHas: "'missing' is undefined"},
		{src: "{{ d.nokey + 1 }}", line: 1, col: 12, msgHas: "'dict object' has no attribute 'nokey'"},
		{src: "{{ 1 / 0 }}", line: 1, col: 6, msgHas: "division by zero"},
	} {
		tp, err := Parse("tpl", c.src)
		if c.parse {
			if err == nil {
				t.Errorf("%q: parsed", c.src)
				continue
			}
		} else {
			if err != nil {
				t.Errorf("%q: %v", c.src, err)
				continue
			}
			_, err = tp.Render(map[string]any{"ms": []any{0, 2}, "d": map[string]any{}})
			if err == nil {
				t.Errorf("%q: rendered", c.src)
				continue
			}
		}
		te := asError(t, err)
		if te.Name != "tpl" || te.Line != c.line || te.Col != c.col || te.Raised != c.raised || !strings.Contains(te.Msg, c.msgHas) {
			t.Errorf("%q: got %v (raised %v); want tpl:%d:%d containing %q (raised %v)", c.src, err, te.Raised, c.line, c.col, c.msgHas, c.raised)
		}
		if !strings.HasPrefix(err.Error(), "tpl:") {
			t.Errorf("%q: %q does not start with the template name", c.src, err)
		}
	}
	// A raised message is exactly the template's text.
	_, err := render(t, `{{ raise_exception("Roles must alternate!") }}`, nil)
	if te := asError(t, err); !te.Raised || te.Msg != "Roles must alternate!" {
		t.Fatalf("got %+v", te)
	}
}

func TestParseChatConfig(t *testing.T) {
	tpl := `{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}`
	msgs := []Message{{"user", "hi"}}
	for _, c := range []struct {
		name, cfg, pick, want, errHas string
	}{
		{name: "string", cfg: `{"chat_template": ` + quote(tpl) + `, "bos_token": "<s>", "eos_token": "</s>"}`, want: "<s>user:hi</s>"},
		{name: "added-token objects", cfg: `{"chat_template": ` + quote(tpl) + `, "bos_token": {"content": "<B>", "lstrip": false, "__type": "AddedToken"}, "eos_token": {"content": "<E>"}}`, want: "<B>user:hi<E>"},
		{name: "list default", cfg: `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": ` + quote(tpl) + `}], "bos_token": null, "eos_token": "."}`, want: "user:hi."},
		{name: "list named", cfg: `{"chat_template": [{"name": "tool_use", "template": "T{{ messages|length }}"}, {"name": "default", "template": "D"}]}`, pick: "tool_use", want: "T1"},
		{name: "list without default", cfg: `{"chat_template": [{"name": "rag", "template": "R"}]}`, errHas: `no chat template named "default"`},
		{name: "string but a name asked", cfg: `{"chat_template": "x"}`, pick: "rag", errHas: `not one named "rag"`},
		{name: "none", cfg: `{"bos_token": "<s>"}`, errHas: "no chat_template"},
		{name: "null", cfg: `{"chat_template": null}`, errHas: "no chat_template"},
		{name: "bad type", cfg: `{"chat_template": 3}`, errHas: "neither a string nor a list"},
		{name: "bad token", cfg: `{"chat_template": "x", "eos_token": 5}`, errHas: "eos_token"},
		{name: "bad json", cfg: `{"chat_template": `, errHas: "tokenizer_config.json"},
		{name: "bad template", cfg: `{"chat_template": "{% if %}"}`, errHas: "default:1:"},
	} {
		chat, err := ParseChatConfig([]byte(c.cfg), c.pick)
		if (c.name == "none" || c.name == "null") != errors.Is(err, ErrNoChatTemplate) {
			t.Errorf("%s: errors.Is(%v, ErrNoChatTemplate) is wrong", c.name, err)
		}
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got, err := chat.Apply(msgs, false)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func quote(s string) string {
	var b strings.Builder
	(&jsonOpts{itemSep: ", ", keySep: ": "}).quote(&b, s)
	return b.String()
}

func TestLoadChat(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadChat(dir, ""); err == nil {
		t.Fatal("a directory without tokenizer_config.json loaded")
	}
	cfg := `{"chat_template": "config {{ messages[0].content }}", "eos_token": "</s>"}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadChat(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Apply([]Message{{"user", "x"}}, false); got != "config x" {
		t.Fatalf("got %q", got)
	}
	// chat_template.jinja, as transformers saves templates, wins.
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte("file {{ messages[0].content }}{{ eos_token }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadChat(dir, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Apply([]Message{{"user", "x"}}, false); got != "file x</s>" {
		t.Fatalf("got %q", got)
	}
	// Named templates in additional_chat_templates; template files replace
	// the config's templates altogether.
	if err := os.Mkdir(filepath.Join(dir, "additional_chat_templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "additional_chat_templates", "tool_use.jinja"), []byte("tools {{ messages | length }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadChat(dir, "tool_use"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Apply([]Message{{"user", "x"}}, false); got != "tools 1" || c.Name != "tool_use" {
		t.Fatalf("got %q from %s", got, c.Name)
	}
	if _, err := LoadChat(dir, "rag"); err == nil || !strings.Contains(err.Error(), `["default" "tool_use"]`) {
		t.Fatalf("a missing name: %v", err)
	}
}

func TestRenderMessages(t *testing.T) {
	c, err := NewChat("t", `{% for m in messages %}{{ m.role }}[{{ m.content is defined }}]{{ m | tojson }};{% endfor %}{{ tools | tojson }}|{{ documents }}|{{ extra }}|{{ bos_token }}`, map[string]string{"bos_token": "<s>"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := DecodeJSON([]byte(`[{"role": "assistant", "content": null, "tool_calls": [{"z": 1, "a": 2.5}]}, {"role": "user", "content": "q", "thinking": "hm"}]`))
	if err != nil {
		t.Fatal(err)
	}
	tools, _ := DecodeJSON([]byte(`[{"name": "f", "b": true}]`))
	got, err := c.Render(msgs, Options{Tools: tools, Vars: map[string]any{"extra": 7, "bos_token": "<override>"}})
	if err != nil {
		t.Fatal(err)
	}
	// null keys dropped, key order kept, reasoning aliased, vars override tokens
	want := `assistant[False]{"role": "assistant", "tool_calls": [{"z": 1, "a": 2.5}]};` +
		`user[True]{"thinking": "hm", "role": "user", "content": "q", "reasoning_content": "hm"};` +
		`[{"name": "f", "b": true}]|None|7|<override>`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := c.Render([]Message{}, Options{}); err == nil {
		t.Fatal("an empty conversation rendered")
	}
	if _, err := c.Render([]any{"not a message"}, Options{}); err == nil {
		t.Fatal("a string message rendered")
	}
	if _, err := c.Render(map[string]any{}, Options{}); err == nil {
		t.Fatal("a map as the conversation rendered")
	}
}

func TestDecodeJSONAndFromGo(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"b": 1, "a": [1.5, 2e3, 99999999999999999999, "x", false, null], "c": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*Dict)
	if got := repr(d); got != `{'b': 1, 'a': [1.5, 2000.0, 1e+20, 'x', False, None], 'c': {}}` {
		t.Fatalf("got %s", got)
	}
	for _, bad := range []string{`{"a": 1} x`, `[1,`, `{"a" 1}`, strings.Repeat("[", 600) + strings.Repeat("]", 600)} {
		if _, err := DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	g, err := fromGo(map[string]any{"z": []int{1, 2}, "a": map[string]string{"k": "v"}, "f": float32(0.5), "p": (*int)(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if got := repr(g); got != `{'a': {'k': 'v'}, 'f': 0.5, 'p': None, 'z': [1, 2]}` {
		t.Fatalf("got %s", got)
	}
	od := NewDict()
	od.Set("z", []int{1})
	od.Set("a", Message{"user", "x"})
	od.Set("z", uint8(2))
	if g, err = fromGo(od); err != nil || repr(g) != `{'z': 2, 'a': {'role': 'user', 'content': 'x'}}` {
		t.Fatalf("a Dict of Go values: %s, %v", repr(g), err)
	}
	if _, err := fromGo(struct{}{}); err == nil {
		t.Fatal("a struct converted")
	}
	if _, err := (&Template{name: "t"}).Render(map[string]any{"x": make(chan int)}); err == nil {
		t.Fatal("a channel variable rendered")
	}
}

// Hostile templates end with an error, not an exhausted machine.
func TestLimits(t *testing.T) {
	for _, src := range []string{
		`{{ 'a' * 100000000000 }}`,
		`{{ range(1000000) | length }}`,
		`{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`,
		`{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{% for i in range(99999) %}{{ f(0) }}{% endfor %}`,
		`{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}`,
		`{% set s = 'x' * 1000000 %}{% for i in range(99999) %}{{ s }}{% endfor %}`,
		`{{ 9223372036854775807 + 1 }}`,
		"{{ " + strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000) + " }}",
		strings.Repeat("{% if true %}", 500) + strings.Repeat("{% endif %}", 500),
		"{{ " + strings.Repeat("-", 1000) + "1 }}",
		`{% set s = 'x' * 60000000 %}{% for i in range(99999) %}{{ s | length }}{{ s.split('y') | length }}{% endfor %}`,
		`{% set l = range(99999) | list %}{% for i in l %}{{ l | length }}{{ i in l }}{% endfor %}`,
		"{{ " + strings.Repeat("not ", 1000) + "1 }}",
	} {
		start := time.Now()
		if _, err := render(t, src, nil); err == nil {
			t.Errorf("%.60q: rendered", src)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%.60q: took %v", src, d)
		}
	}
}

func TestConcurrentRender(t *testing.T) {
	tp, err := Parse("t", `{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, err := tp.Render(map[string]any{"xs": []int{i, i, i}})
			if err != nil || got != itoa(3*i) {
				t.Errorf("goroutine %d: %q, %v", i, got, err)
			}
		}(i)
	}
	wg.Wait()
}

func itoa(i int) string { return repr(int64(i)) }

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1: "1.0", 0.1: "0.1", 1e-5: "1e-05", 1e16: "1e+16", 1e15: "1000000000000000.0", 123.456: "123.456",
		-2.5: "-2.5", 0.0001: "0.0001", 1.5e-7: "1.5e-07", 1e300: "1e+300",
	} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

// A long conversation is well inside the work budget.
func TestLongConversation(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "qwen3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChat("qwen3", string(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []Message
	for i := 0; i < 2500; i++ {
		msgs = append(msgs, Message{"user", strings.Repeat("q", 2000)}, Message{"assistant", "<think>r</think>" + strings.Repeat("a", 2000)})
	}
	out, err := c.Apply(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "<|im_start|>"); n != 5001 {
		t.Fatalf("%d turns rendered", n)
	}
}
