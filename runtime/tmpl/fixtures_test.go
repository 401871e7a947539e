package tmpl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The fixtures come from testdata/make_fixtures.py: jinja2 and transformers'
// apply_chat_template on the same templates and inputs.

func loadFixture(t *testing.T, name string) *Dict {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v.(*Dict)
}

func field(d *Dict, k string) any {
	v, _ := d.Get(k)
	return v
}

func varsOf(d *Dict) map[string]any {
	out := map[string]any{}
	if d == nil {
		return out
	}
	for _, k := range d.Keys() {
		out[k.(string)] = d.m[k]
	}
	return out
}

// checkResult compares a render with the fixture's output or error.
func checkResult(t *testing.T, c *Dict, got string, err error) {
	t.Helper()
	want, hasOut := field(c, "output").(string)
	if hasOut {
		if err != nil {
			t.Fatalf("error %v; transformers renders %q", err, want)
		}
		if got != want {
			t.Fatalf("render differs from transformers\n got: %q\nwant: %q", got, want)
		}
		return
	}
	class, msg := field(c, "error").(string), field(c, "message").(string)
	if err == nil {
		t.Fatalf("rendered %q; jinja2 fails with %s: %s", got, class, msg)
	}
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *tmpl.Error", err)
	}
	if class == "TemplateError" {
		if !te.Raised || te.Msg != msg {
			t.Fatalf("error %v (raised %v); jinja2 raises the template's exception %q", err, te.Raised, msg)
		}
	} else if te.Raised {
		t.Fatalf("error %v came from raise_exception; jinja2 fails with %s: %s", err, class, msg)
	}
	if te.Line < 1 || te.Col < 1 || te.Name == "" {
		t.Fatalf("error %v has no position", err)
	}
}

// deviations are the cases where lorac differs from jinja2 on purpose: it
// fails with an error instead.
var deviations = map[string]string{
	"integer_overflow": "integers are 64-bit; Python's grow without bound",
}

func TestJinjaCases(t *testing.T) { runCases(t, "jinja_cases.json", 140) }

// TestRandomCases: seeded random templates, as a differential test of
// everything together.
func TestRandomCases(t *testing.T) { runCases(t, "random_cases.json", 400) }

func runCases(t *testing.T, file string, atLeast int) {
	cases := field(loadFixture(t, file), "cases").([]any)
	if len(cases) < atLeast {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, ci := range cases {
		c := ci.(*Dict)
		name := field(c, "name").(string)
		t.Run(name, func(t *testing.T) {
			src := field(c, "template").(string)
			tp, err := Parse(name, src)
			if field(c, "phase") == "parse" {
				if err == nil {
					t.Fatalf("parsed; jinja2 refuses it: %s", field(c, "message"))
				}
				var te *Error
				if !errors.As(err, &te) || te.Line < 1 || te.Col < 1 {
					t.Fatalf("parse error %v has no position", err)
				}
				if line, ok := field(c, "line").(int64); ok && int64(te.Line) != line {
					t.Fatalf("parse error %v on line %d; jinja2 reports line %d: %s", err, te.Line, line, field(c, "message"))
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			vars, _ := field(c, "vars").(*Dict)
			got, err := tp.Render(varsOf(vars))
			if why, ok := deviations[name]; ok {
				if err == nil {
					t.Fatalf("rendered %q; expected an error (%s)", got, why)
				}
				return
			}
			checkResult(t, c, got, err)
			if line, ok := field(c, "line").(int64); ok && int64(asError(t, err).Line) != line {
				t.Fatalf("error %v on line %d; jinja2 reports line %d", err, asError(t, err).Line, line)
			}
		})
	}
}

func TestChatFixtures(t *testing.T) {
	cases := field(loadFixture(t, "chat_fixtures.json"), "cases").([]any)
	families := map[string]int{}
	raised, nspans := 0, 0
	for _, ci := range cases {
		c := ci.(*Dict)
		name := field(c, "template").(string)
		families[name]++
		if field(c, "error") != nil {
			raised++
		}
		gen := field(c, "add_generation_prompt").(bool)
		label := name + "/" + field(c, "conversation").(string)
		if gen {
			label += "/gen"
		}
		t.Run(label, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
			if err != nil {
				t.Fatal(err)
			}
			tokens := map[string]string{}
			td := field(c, "tokens").(*Dict)
			for _, k := range td.Keys() {
				tokens[k.(string)] = td.m[k].(string)
			}
			chat, err := NewChat(name, string(src), tokens)
			if err != nil {
				t.Fatal(err)
			}
			chat.Now = func() time.Time {
				t.Fatal("the fixtures give date_string; strftime_now must not run")
				return time.Time{}
			}
			vars, _ := field(c, "vars").(*Dict)
			got, spans, err := chat.RenderSpans(field(c, "messages"), Options{
				AddGenerationPrompt: gen,
				Tools:               field(c, "tools"),
				Vars:                varsOf(vars),
			})
			checkResult(t, c, got, err)
			if err != nil {
				return
			}
			var want []Span
			for _, s := range field(c, "generation_spans").([]any) {
				p := s.([]any)
				want = append(want, Span{int(p[0].(int64)), int(p[1].(int64))})
			}
			if len(spans) != len(want) {
				t.Fatalf("generation spans %v; transformers marks %v", spans, want)
			}
			for i := range want {
				if spans[i] != want[i] {
					t.Fatalf("generation spans %v; transformers marks %v", spans, want)
				}
			}
			nspans += len(spans)
		})
	}
	for _, f := range []string{"chatml", "chatml_generation", "llama3", "mistral", "qwen25", "qwen3", "gemma"} {
		if families[f] < 18 {
			t.Errorf("family %s has %d fixtures", f, families[f])
		}
	}
	if nspans < 10 {
		t.Errorf("only %d generation spans in all fixtures", nspans)
	}
	if raised < 10 {
		t.Errorf("only %d fixtures exercise raise_exception", raised)
	}
}

// The built-in chatml template is the one the fixtures rendered.
func TestBuiltinChatML(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "chatml.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != ChatML {
		t.Fatalf("testdata/templates/chatml.jinja differs from ChatML")
	}
	c, err := Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Apply([]Message{{"system", "S"}, {"user", "U"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := Builtin("llama3"); err == nil || !strings.Contains(err.Error(), "chatml") {
		t.Fatalf("unknown built-in: %v", err)
	}
}

func TestStrftimeNow(t *testing.T) {
	f := loadFixture(t, "strftime_cases.json")
	when, err := time.Parse("2006-01-02T15:04:05", field(f, "when").(string))
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range field(f, "cases").([]any) {
		c := ci.(*Dict)
		format, want := field(c, "format").(string), field(c, "output").(string)
		tp, err := Parse("t", `{{ strftime_now(f) }}`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.render(map[string]any{"f": format}, func() time.Time { return when })
		if err != nil || got != want {
			t.Errorf("strftime_now(%q) = %q, %v; Python gives %q", format, got, err, want)
		}
	}
	// Through the chat API: llama3 without date_string reads the clock.
	src, err := os.ReadFile(filepath.Join("testdata", "templates", "llama3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChat("llama3", string(src), map[string]string{"bos_token": "<|begin_of_text|>"})
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return when }
	out, err := c.Apply([]Message{{"user", "hi"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Today Date: 06 Jul 2024\n") {
		t.Fatalf("the date is not today's: %q", out)
	}
}

// BenchmarkChatRender renders a 20-message conversation with the Qwen3
// template (namespace, a reversed loop, splits) and the Llama 3 one.
func BenchmarkChatRender(b *testing.B) {
	for _, name := range []string{"qwen3", "llama3", "chatml"} {
		b.Run(name, func(b *testing.B) {
			src, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
			if err != nil {
				b.Fatal(err)
			}
			c, err := NewChat(name, string(src), map[string]string{"bos_token": "<s>"})
			if err != nil {
				b.Fatal(err)
			}
			var msgs []Message
			for i := 0; i < 10; i++ {
				msgs = append(msgs, Message{"user", strings.Repeat("question words ", 20)}, Message{"assistant", "<think>hmm</think>" + strings.Repeat("answer words ", 40)})
			}
			opts := Options{Vars: map[string]any{"date_string": "1 Jan 2025"}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Render(msgs, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
