package tok

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// copyFamily copies a family's tokenizer.json into a temporary directory
// with the given tokenizer_config.json ("" for none) and loads it.
func copyFamily(t *testing.T, name, config string) (*BPETokenizer, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "families", name, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return LoadTokenizer(filepath.Join(dir, "tokenizer.json"))
}

func TestBOSEOSFromConfig(t *testing.T) {
	cases := []struct {
		family   string
		bos, eos string // "" for none
	}{
		{"gpt2", "<|endoftext|>", "<|endoftext|>"},
		{"llama3", "<|begin_of_text|>", "<|eot_id|>"},
		{"qwen2", "", "<|im_end|>"},
		{"llama2", "<s>", "</s>"},
		{"gemma", "<bos>", "<eos>"},
	}
	for _, c := range cases {
		tok := loadFamily(t, c.family)
		for _, x := range []struct {
			what string
			get  func() (int32, bool)
			want string
		}{{"BOS", tok.BOS, c.bos}, {"EOS", tok.EOS, c.eos}} {
			id, ok := x.get()
			if x.want == "" {
				if ok {
					t.Errorf("%s: %s = %d, want none", c.family, x.what, id)
				}
				continue
			}
			want, _ := tok.TokenID(x.want)
			if !ok || id != want {
				t.Errorf("%s: %s = %d %v, want %d (%s)", c.family, x.what, id, ok, want, x.want)
			}
			if !tok.IsSpecial(id) {
				t.Errorf("%s: %s %d is not special", c.family, x.what, id)
			}
		}
	}
}

func TestAddBOSEOSOverride(t *testing.T) {
	const text = "Hello world"
	base := loadFamily(t, "llama2")
	ids := base.Encode(text)
	bos, _ := base.TokenID("<s>")
	eos, _ := base.TokenID("</s>")
	cases := []struct {
		name, config string
		want         []int32
	}{
		{"no config: the post_processor", "", append([]int32{bos}, ids...)},
		{"config without flags", `{"bos_token": "<s>", "eos_token": "</s>"}`, append([]int32{bos}, ids...)},
		{"add_eos_token", `{"bos_token": "<s>", "eos_token": {"content": "</s>"}, "add_eos_token": true}`,
			append(append([]int32{bos}, ids...), eos)},
		{"add_bos_token false", `{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false}`, ids},
		{"both", `{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "add_eos_token": true}`,
			append(append([]int32{bos}, ids...), eos)},
	}
	for _, c := range cases {
		tok, err := copyFamily(t, "llama2", c.config)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := tok.EncodeSpecial(text); !slices.Equal(got, c.want) {
			t.Errorf("%s: EncodeSpecial = %v, want %v", c.name, got, c.want)
		}
		if got := tok.DecodeSkipSpecial(tok.EncodeSpecial(text)); got != text {
			t.Errorf("%s: DecodeSkipSpecial = %q", c.name, got)
		}
	}
	// Qwen2 has no BOS: the post_processor adds nothing, and asking for BOS
	// in the config without naming one is an error.
	q := loadFamily(t, "qwen2")
	if got, want := q.EncodeSpecial(text), q.Encode(text); !slices.Equal(got, want) {
		t.Errorf("qwen2: EncodeSpecial = %v, want %v", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, config, want string }{
		{"bad json", `{"bos_token": `, "parsing tokenizer_config.json"},
		{"unknown bos", `{"bos_token": "<nope>"}`, `"<nope>" is not a token`},
		{"bad token type", `{"eos_token": 5}`, "eos_token"},
		{"add_bos without bos", `{"bos_token": null, "add_bos_token": true}`, "no bos_token"},
		{"add_eos without eos", `{"add_eos_token": true}`, "no eos_token"},
	}
	for _, c := range cases {
		_, err := copyFamily(t, "qwen2", c.config)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer_config.json") {
			t.Errorf("%s: error %v, want one naming %q and the file", c.name, err, c.want)
		}
	}
}

func TestPostProcessors(t *testing.T) {
	const vocab = `"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<s>": 3, "</s>": 4}, "merges": ["a b"]}`
	load := func(post string) (*BPETokenizer, error) {
		return LoadTokenizer(writeTokenizer(t, `{"post_processor": `+post+`, `+vocab+`}`))
	}
	ok := []struct {
		post string
		want []int32
	}{
		{`null`, []int32{2}},
		{`{"type": "ByteLevel", "trim_offsets": false}`, []int32{2}},
		{`{"type": "RobertaProcessing", "sep": ["</s>", 4], "cls": ["<s>", 3]}`, []int32{3, 2, 4}},
		{`{"type": "BertProcessing", "sep": ["</s>", 4], "cls": ["<s>", 3]}`, []int32{3, 2, 4}},
		{`{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
		   "special_tokens": {"</s>": {"id": "</s>", "ids": [4], "tokens": ["</s>"]}}}`, []int32{2, 4}},
		{`{"type": "Sequence", "processors": [
		   {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
		    "special_tokens": {"<s>": {"ids": [3]}}},
		   {"type": "RobertaProcessing", "sep": ["</s>", 4], "cls": ["</s>", 4]}]}`, []int32{4, 3, 2, 4}},
	}
	for _, c := range ok {
		tok, err := load(c.post)
		if err != nil {
			t.Errorf("%s: %v", c.post, err)
			continue
		}
		if got := tok.EncodeSpecial("ab"); !slices.Equal(got, c.want) {
			t.Errorf("%s: EncodeSpecial = %v, want %v", c.post, got, c.want)
		}
	}
	bad := []struct{ post, want string }{
		{`{"type": "Funky"}`, "Funky"},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}`, `"<x>"`},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {"ids": [3]}}}`, "no $A"},
		{`{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B"}}], "special_tokens": {}}`, `"B"`},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"ids": [99]}}}`, "outside"},
		{`{"type": "RobertaProcessing", "sep": ["</s>"], "cls": ["<s>", 3]}`, "sep"},
	}
	for _, c := range bad {
		if _, err := load(c.post); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.post, err, c.want)
		}
	}
}

func TestNFC(t *testing.T) {
	cases := map[string]string{
		"":                   "",
		"abc":                "abc",
		"e\u0301":            "é",
		"\u212b":             "Å",                    // singleton
		"A\u030a":            "Å",                    // composes to U+00C5, not U+212B
		"\u1e9b\u0323":       "\u1e9b\u0323",         // ẛ̣: long s with dot above keeps its form
		"q\u0307\u0323":      "q\u0323\u0307",        // reordered, nothing composes
		"\u1100\u1161\u11a8": "\uac01",               // Hangul L V T
		"\uac00\u11a8":       "\uac01",               // Hangul LV + T
		"a\u0328\u0301":      "\u0105\u0301",         // ogonek first (class 202)
		"\u0958":             "\u0915\u093c",         // composition exclusion
		"\u0344":             "\u0308\u0301",         // non-starter decomposition
		"e\u0301\xffe\u0301": "é\xffé",               // invalid byte kept
		"\U0001d15e":         "\U0001d157\U0001d165", // excluded musical symbol
		"\u1e31\u0323ṃ and 한국어 日本語 😀": "\u1e33\u0301ṃ and 한국어 日本語 😀", // dot below composes first
	}
	for in, want := range cases {
		if got := NFC(in); got != want {
			t.Errorf("NFC(%+q) = %+q, want %+q", in, got, want)
		}
	}
	if nfcUnicodeVersion == "" {
		t.Error("no Unicode version in the tables")
	}
}

func TestUnicodeClasses(t *testing.T) {
	cases := map[string]string{
		`\s+`:           `[` + uniSpace + `]+`,
		`[\d.]`:         `[` + uniDigit + `.]`,
		`\W`:            `[^` + uniWord + `]`,
		`[^\s]`:         `[^` + uniSpace + `]`,
		`\\s`:           `\\s`,
		`[]\s]`:         `[]` + uniSpace + `]`,
		`[[:alpha:]\d]`: `[[:alpha:]` + uniDigit + `]`,
	}
	for in, want := range cases {
		got, err := unicodeClasses(in)
		if err != nil || got != want {
			t.Errorf("unicodeClasses(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`\bx`, `[\S]`, `[a[b]]`} {
		if got, err := unicodeClasses(in); err == nil {
			t.Errorf("unicodeClasses(%q) = %q, want an error", in, got)
		}
	}
}

func TestPreTokenizerErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`{"type": "Split", "pattern": {"Regex": "a(?!b)"}, "behavior": "Isolated"}`, "(?!"},
		{`{"type": "Split", "pattern": {"Regex": "(a)\\1"}, "behavior": "Isolated"}`, `\1`},
		{`{"type": "Split", "pattern": {"Regex": "a++"}, "behavior": "Isolated"}`, "++"},
		{`{"type": "Split", "pattern": {"Regex": "\\bx"}, "behavior": "Isolated"}`, `\b`},
		{`{"type": "Split", "pattern": {"Regex": "^a|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated"}`, "anchor"},
		{`{"type": "Split", "pattern": {"Regex": "(?=a)|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated"}`, "(?="},
		{`{"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Sideways"}`, "Sideways"},
		{`{"type": "Split", "behavior": "Isolated"}`, "without pattern"},
		{`{"type": "Split", "pattern": {"String": ""}}`, "empty"},
		{`{"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "CharDelimiterSplit"}]}`, "CharDelimiterSplit"},
		{`{"type": "Metaspace", "replacement": "ab"}`, "one character"},
	}
	for _, c := range cases {
		_, err := parsePreTokenizer([]byte(c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.cfg, err, c.want)
		}
	}
}

// The hand-written matchers must cut every string into non-empty spans that
// cover it in order.
func checkSpans(t *testing.T, name, s string, spans [][2]int) {
	t.Helper()
	prev := 0
	for _, sp := range spans {
		if sp[0] != prev || sp[1] <= sp[0] || sp[1] > len(s) {
			t.Fatalf("%s(%q): bad spans %v", name, s, spans)
		}
		prev = sp[1]
	}
	if prev != len(s) {
		t.Fatalf("%s(%q): spans %v end at %d of %d", name, s, spans, prev, len(s))
	}
}

func FuzzPreTokenizers(f *testing.F) {
	for _, s := range []string{"", "Hello world", "I'll've  \r\n\n x", "'\u017f'S 1234567 ٣²", "e\u0301ʰǅ中 😀\u200d", "\xff\xfe \t\n"} {
		f.Add(s)
	}
	fixtures := loadFamilyFixtures(f)
	var steps []preStep
	for _, p := range fixtures.Pretok {
		st, err := parsePreTokenizer(p.Config)
		if err != nil {
			f.Fatal(err)
		}
		steps = append(steps, st)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for pat, match := range knownPatterns {
			checkSpans(t, pat[:12], s, match(s))
		}
		if s == "" {
			return
		}
		for _, st := range steps {
			for _, p := range st.apply([]piece{{text: s, first: true}}) {
				if p.text == "" {
					t.Fatalf("%T on %q gave an empty piece", st, s)
				}
			}
		}
	})
}

func FuzzFamilies(f *testing.F) {
	for _, s := range []string{"", "Hello world", "<|im_start|>user\nhi<|im_end|>", "<bos>x<start_of_turn>", "e\u0301 ẛ̣ Å", "\xff\xfe"} {
		f.Add(s)
	}
	toks := map[string]*BPETokenizer{}
	for _, name := range familyNames {
		toks[name] = loadFamily(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, tok := range toks {
			ids := tok.EncodeSpecial(s)
			n := int32(tok.VocabSize())
			for _, id := range ids {
				if id < 0 || id >= n {
					t.Fatalf("%s: EncodeSpecial(%q) gave id %d outside [0,%d)", name, s, id, n)
				}
			}
			dec := tok.Decode(tok.Encode(s))
			if !utf8.ValidString(s) {
				continue
			}
			switch name {
			case "gpt2", "llama3":
				if dec != s {
					t.Fatalf("%s: %q round-trips to %q", name, s, dec)
				}
			case "qwen2":
				if dec != NFC(s) {
					t.Fatalf("%s: %q round-trips to %q, not its NFC", name, s, dec)
				}
			}
		}
	})
}

func FuzzNFC(f *testing.F) {
	for _, s := range []string{"", "e\u0301", "\u1100\u1161\u11a8", "q\u0307\u0323\u0958", "\xff\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NFC(s)
		if NFC(n) != n {
			t.Fatalf("NFC not idempotent on %q: %q then %q", s, n, NFC(n))
		}
		if utf8.ValidString(s) != utf8.ValidString(n) {
			t.Fatalf("NFC(%q) = %q changed UTF-8 validity", s, n)
		}
	})
}

// Any JSON for a component either fails to parse with an error or works on
// text without a panic.
func FuzzComponents(f *testing.F) {
	fixtures := loadFamilyFixtures(f)
	for _, p := range fixtures.Pretok {
		f.Add([]byte(p.Config), "Hello  world 123 I'll\n")
	}
	for _, n := range fixtures.Normalizers {
		f.Add([]byte(n.Config), "Café e\u0301 ")
	}
	f.Add([]byte(`{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}`), "▁a<0x41>")
	f.Add([]byte(`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"ids": [3]}}}`), "x")
	f.Fuzz(func(t *testing.T, cfg []byte, s string) {
		if st, err := parsePreTokenizer(cfg); err == nil && s != "" {
			st.apply([]piece{{text: s, first: true}})
		}
		if steps, err := parseNormalizer(cfg); err == nil {
			for _, st := range steps {
				st.apply(s)
			}
		}
		if steps, err := parseDecoder(cfg); err == nil {
			toks := strings.Split(s, " ")
			for _, st := range steps {
				toks = st.apply(toks)
			}
		}
		_, _ = parsePostProcessor(cfg, 10)
	})
}
