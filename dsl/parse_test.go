package dsl

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseShape(t *testing.T) {
	src := "model tiny {\n  arch gpt2 # c\n\n  layers 0..3, 5; targets all-linear, \"x\", -1e-6\n}\n"
	f, err := Parse("t.lora", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Blocks) != 1 {
		t.Fatalf("got %d blocks, want 1", len(f.Blocks))
	}
	b := f.Blocks[0]
	if b.Kind != "model" || b.Name == nil || b.Name.Name != "tiny" || len(b.Entries) != 3 {
		t.Fatalf("block = %+v", b)
	}
	layers := b.Entries[1]
	if got := layers.Values[0].Range; got == nil || got.Lo != "0" || got.Hi != "3" {
		t.Errorf("layers[0] = %+v, want range 0..3", layers.Values[0])
	}
	if p := layers.Pos; p.Line != 4 || p.Column != 3 {
		t.Errorf("layers at %d:%d, want 4:3", p.Line, p.Column)
	}
	if p := layers.Values[1].Pos; p.Line != 4 || p.Column != 16 {
		t.Errorf("layers[1] at %d:%d, want 4:16", p.Line, p.Column)
	}
	targets := b.Entries[2]
	var got []string
	for _, v := range targets.Values {
		got = append(got, v.String())
	}
	if want := []string{"all-linear", `"x"`, "-1e-6"}; !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %q, want %q", got, want)
	}
	if targets.Values[0].Ident == nil || targets.Values[1].Str == nil || targets.Values[2].Number == nil {
		t.Errorf("targets parsed as the wrong kinds of value: %+v", targets.Values)
	}
}

// TestLexIdents checks the tokens that make the grammar small: names with
// "-" and "." inside them, and ranges that are not mistaken for decimals.
func TestLexIdents(t *testing.T) {
	for src, want := range map[string][]string{
		"all-linear":                 {"all-linear"},
		"model.layers.0.mlp.up_proj": {"model.layers.0.mlp.up_proj"},
		"self_attn.q_proj":           {"self_attn.q_proj"},
		"sm_90":                      {"sm_90"},
		"0..3":                       {"0", "..", "3"},
		"10..12":                     {"10", "..", "12"},
		"1.5":                        {"1.5"},
		"3e-4":                       {"3e-4"},
		"-1":                         {"-1"},
		"a, b":                       {"a", ",", "b"},
	} {
		tokens, err := fileParser.Lex("", strings.NewReader(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		var got []string
		for _, tok := range tokens {
			if !tok.EOF() && tok.Type != symbols["Whitespace"] {
				got = append(got, tok.Value)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q lexes as %q, want %q", src, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unclosed block", "model tiny {\n  arch gpt2\n",
			`t.lora:1:1: model block is never closed; add "}" after its last entry`},
		{"two values", "model {\n  dim 128 256\n}\n",
			`t.lora:2:11: unexpected "256" after the value of dim; separate values with "," and end each entry with a newline or ";"`},
		{"trailing comma", "lora {\n  targets qkv,\n}\n",
			`t.lora:3:1: unexpected "}" after ","; add a value or remove the ","`},
		{"blocks on one line", "model { arch gpt2 } lora { rank 8 }\n",
			`t.lora:1:21: unexpected "lora" after "}"; start the next block on a new line`},
		{"semicolon after block", "train { steps 1 };\n",
			`t.lora:1:18: unexpected ";" after "}"; end a block with a newline, not ";"`},
		{"nested block", "model {\n  arch gpt2\nlora {\n}\n",
			`t.lora:3:6: unexpected "{" inside the model block opened at 1:1; close that block with "}" before starting another`},
		{"header", "model my tiny {\n}\n",
			`t.lora:1:10: unexpected "tiny" in the header of the model block; a block header is KIND [NAME] {, e.g. "model tiny {"`},
		{"brace on next line", "model tiny\n{\n}\n",
			`t.lora:1:11: model block has no body; put "{" on the same line as "model"`},
		{"kind only at end", "model",
			`t.lora:1:6: model block has no body; put "{" on the same line as "model"`},
		{"stray close", "}\n",
			`t.lora:1:1: unexpected "}" where a block should start; a block is KIND [NAME] { … }, e.g. "lora { rank 8; targets qkv }"`},
		{"number as key", "model {\n  128 dim\n}\n",
			`t.lora:2:3: unexpected "128" where a field should start; an entry is a field name and its values, e.g. "rank 8"`},
		{"comma after key", "lora {\n  targets , qkv\n}\n",
			`t.lora:2:11: unexpected "," after "targets"; write the values after the field name, separated by ","`},
		{"open range", "lora { layers 0.. }\n",
			`t.lora:1:19: unexpected "}" after ".."; write a range as two integers, e.g. 0..3`},
		{"range of names", "lora { layers a..b }\n",
			`t.lora:1:16: unexpected ".." in the value of layers; write a range as two integers, e.g. 0..3`},
		{"equals", "model {\n  arch = gpt2\n}\n",
			`t.lora:2:8: unexpected "="; separate a field name from its value with a space, e.g. "rank 8"`},
		{"colon", "model {\n  arch: gpt2\n}\n",
			`t.lora:2:7: unexpected ":"; separate a field name from its value with a space, e.g. "rank 8"`},
		{"unterminated string", "lora {\n  targets \"q_proj\n}\n",
			`t.lora:2:11: unterminated string; close it with '"' on the same line`},
		{"brackets", "lora { layers [0, 1] }\n",
			`t.lora:1:15: unexpected "["; write lists without brackets, separated by commas: 0, 2, 5`},
		{"trailing dot", "lora { dropout 1. }\n",
			`t.lora:1:17: unexpected "."; write numbers like 0.5 and ranges like 0..3`},
		{"leading dash", "lora { targets -q }\n",
			`t.lora:1:16: unexpected "-"; write negative numbers like -1; "-" may appear inside a name, not at its start or end`},
		{"nul byte", "model {\x00}\n",
			`t.lora:1:8: unexpected "\x00"; remove it; a .lora file holds names, numbers, "strings", { } , ; .. and # comments`},
		{"invalid utf-8", "model {\xff}\n",
			`t.lora:1:8: unexpected byte 0xff; a .lora file is UTF-8 text; remove it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.lora", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want %s", tc.want)
			}
			if list := errorList(t, err); len(list) != 1 {
				t.Errorf("got %d errors, want 1", len(list))
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestParseAccepts covers the layout freedoms of the grammar.
func TestParseAccepts(t *testing.T) {
	for _, src := range []string{
		"",
		"\n\n# only comments\n\n",
		"train { batch 16; seq 128 }",
		"train {batch 16;;seq 128;}\n",
		"train {\n\n  batch 16 # comment\n\n  # another\n  seq 128\n\n}\n\n\nlora {}\n",
		"lora {\n  targets q,\n    k,\n    v\n}\n",
		"train { lr 1e-6 }\r\ntarget cpu { isa avx2 }\r\n",
		"model { rslora }",
	} {
		if _, err := Parse("t.lora", []byte(src)); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// TestRoundTrip checks that Format prints what Parse reads back unchanged,
// and that formatting is idempotent.
func TestRoundTrip(t *testing.T) {
	for _, path := range testdataFiles(t, "good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			roundTrip(t, path, readFile(t, path))
		})
	}
}

func roundTrip(t testing.TB, name string, src []byte) {
	t.Helper()
	f1, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	out := Format(f1)
	f2, err := Parse(name, []byte(out))
	if err != nil {
		t.Fatalf("formatted source does not parse: %v\n%s", err, out)
	}
	if again := Format(f2); again != out {
		t.Errorf("Format is not idempotent:\n%s\nthen\n%s", out, again)
	}
	stripPositions(reflect.ValueOf(f1))
	stripPositions(reflect.ValueOf(f2))
	if !reflect.DeepEqual(f1, f2) {
		t.Errorf("round trip changed the AST; formatted source:\n%s", out)
	}
}

func TestFormat(t *testing.T) {
	src := "model tiny { arch gpt2; tie_embeddings true }\nlora{targets q,k ; layers 0 .. 3 # c\n}\ntrain {}"
	want := `model tiny {
  arch           gpt2
  tie_embeddings true
}

lora {
  targets q, k
  layers  0..3
}

train {
}
`
	f, err := Parse("t.lora", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(f); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
