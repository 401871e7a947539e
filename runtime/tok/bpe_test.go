package tok

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The fixtures under testdata/bpe are made by
// conformance/make_tokenizer_fixtures.py with Hugging Face `tokenizers`.

var bpeFixtureNames = []string{"bytelevel", "bytelevel_prefix", "llama", "metaspace"}

type bpeCase struct {
	Text    string  `json:"text"`
	IDs     []int32 `json:"ids"`
	Decoded string  `json:"decoded"`
}

func loadBPECases(t testing.TB) map[string][]bpeCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "bpe", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string][]bpeCase{}
	for _, name := range bpeFixtureNames {
		var cs []bpeCase
		if err := json.Unmarshal(raw[name], &cs); err != nil {
			t.Fatalf("cases for %s: %v", name, err)
		}
		if len(cs) == 0 {
			t.Fatalf("no cases for %s", name)
		}
		out[name] = cs
	}
	return out
}

func loadBPEFixture(t testing.TB, name string) *BPETokenizer {
	t.Helper()
	tok, err := LoadTokenizer(filepath.Join("testdata", "bpe", name, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBPEMatchesHuggingFace(t *testing.T) {
	cases := loadBPECases(t)
	total, pass := 0, 0
	for _, name := range bpeFixtureNames {
		tok := loadBPEFixture(t, name)
		t.Run(name, func(t *testing.T) {
			for _, c := range cases[name] {
				total++
				ok := true
				got := tok.Encode(c.Text)
				if !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
					ok = false
				}
				if dec := tok.Decode(c.IDs); dec != c.Decoded {
					t.Errorf("Decode(%v) = %q, want %q", c.IDs, dec, c.Decoded)
					ok = false
				}
				if c.Decoded == c.Text {
					if rt := tok.Decode(tok.Encode(c.Text)); rt != c.Text {
						t.Errorf("round trip of %q gave %q", c.Text, rt)
						ok = false
					}
				}
				if ok {
					pass++
				}
			}
		})
	}
	t.Logf("%d/%d Hugging Face cases match", pass, total)
}

func TestBPEVocabSize(t *testing.T) {
	for _, name := range bpeFixtureNames {
		tok := loadBPEFixture(t, name)
		var f struct {
			Model struct {
				Vocab map[string]int `json:"vocab"`
			} `json:"model"`
			AddedTokens []struct {
				ID int `json:"id"`
			} `json:"added_tokens"`
		}
		data, _ := os.ReadFile(filepath.Join("testdata", "bpe", name, "tokenizer.json"))
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, id := range f.Model.Vocab {
			want = max(want, id+1)
		}
		for _, a := range f.AddedTokens {
			want = max(want, a.ID+1)
		}
		if got := tok.VocabSize(); got != want {
			t.Errorf("%s: VocabSize = %d, want %d", name, got, want)
		}
	}
	var _ Tokenizer = loadBPEFixture(t, "llama")
}

func TestBPEDecodeOutOfRange(t *testing.T) {
	for _, name := range bpeFixtureNames {
		tok := loadBPEFixture(t, name)
		n := int32(tok.VocabSize())
		got := tok.Decode([]int32{-1, n, n + 1000, 1 << 30, -1 << 31})
		if !strings.Contains(got, "\uFFFD") {
			t.Errorf("%s: Decode of bad ids = %q, want U+FFFD", name, got)
		}
		_ = tok.Decode(nil)
	}
}

// Encoding a long text (one BPE "word" for the Llama style, which has no
// pre-tokenizer) must agree with encoding it piece by piece where pieces
// cannot interact, and round-trip.
func TestBPELongText(t *testing.T) {
	text := strings.Repeat("The quick brown fox, naïve café 😀 don't stop.\n", 500)
	for _, name := range []string{"bytelevel", "llama"} {
		tok := loadBPEFixture(t, name)
		ids := tok.Encode(text)
		if got := tok.Decode(ids); got != text {
			t.Errorf("%s: long text does not round-trip", name)
		}
	}
}

func TestBPEConcurrent(t *testing.T) {
	tok := loadBPEFixture(t, "bytelevel")
	want := tok.Encode("Hello world, again and again!")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := tok.Encode("Hello world, again and again!"); !slices.Equal(got, want) {
					t.Error("concurrent Encode differs")
					return
				}
				tok.Encode(strings.Repeat("x", i))
			}
		}()
	}
	wg.Wait()
}

func TestByteLevelSplit(t *testing.T) {
	cases := map[string][]string{
		"Hello world":       {"Hello", " world"},
		"a   b":             {"a", "  ", " b"},
		"end   ":            {"end", "   "},
		"don't":             {"don", "'t"},
		"I'll 'S":           {"I", "'ll", " '", "S"},
		"x\n\ny":            {"x", "\n", "\n", "y"},
		"x \ny":             {"x", " ", "\n", "y"},
		"12ab!! ?":          {"12", "ab", "!!", " ?"},
		" \t":               {" \t"},
		"":                  nil,
		"\xff\xfeab":        {"\xff\xfe", "ab"},
		"tab\there":         {"tab", "\t", "here"},
		"日本語 です":            {"日本語", " です"},
		"a\u00a0\u3000b c1": {"a", "\u00a0", "\u3000", "b", " c", "1"},
	}
	for in, want := range cases {
		if got := byteLevelSplit(in); !slices.Equal(got, want) {
			t.Errorf("byteLevelSplit(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := map[string]string{
		"abc":              "abc",
		"a\xffb":           "a\uFFFDb",
		"\xe2\x82":         "\uFFFD",             // truncated 3-byte sequence: one
		"\xe2\x82x":        "\uFFFDx",            // ... also before ASCII
		"\xf0\x9f\x98":     "\uFFFD",             // truncated 4-byte sequence
		"\xed\xa0\x80":     "\uFFFD\uFFFD\uFFFD", // surrogate: each byte
		"\xc0\x80":         "\uFFFD\uFFFD",
		"\xe0\x80\x80":     "\uFFFD\uFFFD\uFFFD",
		"é\x80😀":           "é\uFFFD😀",
		"\xf4\x90\x80\x80": "\uFFFD\uFFFD\uFFFD\uFFFD",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// A minimal valid file, edited per case to be malformed or unsupported.
const tinyBPE = `{
 "added_tokens": [{"id": 5, "content": "<s>", "special": true}],
 "normalizer": null,
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
 "post_processor": null,
 "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4},
           "merges": ["a b", ["ab", "c"]]}
}`

func writeTokenizer(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBPELoadTiny(t *testing.T) {
	tok, err := LoadTokenizer(writeTokenizer(t, tinyBPE))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("abcab<s>ba"); !slices.Equal(got, []int32{4, 2, 5, 1, 0}) {
		t.Errorf("Encode = %v", got)
	}
	if got := tok.Decode([]int32{4, 5, 1}); got != "abc<s>b" {
		t.Errorf("Decode = %q", got)
	}
	if tok.VocabSize() != 6 {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
}

func TestBPELoadErrors(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"wordpiece", `"type": "BPE"`, `"type": "WordPiece"`, "WordPiece"},
		{"unigram", `"type": "BPE"`, `"type": "Unigram"`, "Unigram"},
		{"pretokenizer", `{"type": "ByteLevel", "add_prefix_space": false}`, `{"type": "BertPreTokenizer"}`, "BertPreTokenizer"},
		{"split", `{"type": "ByteLevel", "add_prefix_space": false}`,
			`{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "x(?=y)"}}, {"type": "ByteLevel"}]}`, "(?="},
		{"normalizer", `"normalizer": null`, `"normalizer": {"type": "NFKC"}`, "NFKC"},
		{"regex replace", `"normalizer": null`, `"normalizer": {"type": "Replace", "pattern": {"Regex": " +(?=x)"}, "content": " "}`, "(?="},
		{"decoder", `"decoder": {"type": "ByteLevel"}`, `"decoder": {"type": "WordPiece"}`, "WordPiece"},
		{"bad json", `"model"`, `"model" "`, "parsing"},
		{"truncated", `}`, ``, "parsing"},
		{"unknown merge token", `"a b"`, `"a z"`, `"z"`},
		{"unknown merged token", `["ab", "c"]`, `["b", "c"]`, `"bc"`},
		{"bad merge string", `"a b"`, `"a b c"`, "merge 1"},
		{"bad merge pair", `["ab", "c"]`, `["ab"]`, "merge 2"},
		{"no merges", `,
           "merges": ["a b", ["ab", "c"]]`, ``, "merges"},
		{"negative id", `"c": 3`, `"c": -3`, "out of range"},
		{"huge id", `"c": 3`, `"c": 3000000000`, "out of range"},
		{"unk missing", `"type": "BPE",`, `"type": "BPE", "unk_token": "<unk>",`, "unk_token"},
		{"dropout", `"type": "BPE",`, `"type": "BPE", "dropout": 0.1,`, "dropout"},
		{"model null", `"model": {`, `"model": null, "x": {`, "model"},
		{"vocab wrong type", `"vocab": {`, `"vocab": [1], "v": {`, "parsing"},
	}
	for _, c := range cases {
		if !strings.Contains(tinyBPE, c.old) {
			t.Fatalf("%s: %q not in the template", c.name, c.old)
		}
		p := writeTokenizer(t, strings.Replace(tinyBPE, c.old, c.new, 1))
		tok, err := LoadTokenizer(p)
		if err == nil {
			t.Errorf("%s: no error (tokenizer %v)", c.name, tok != nil)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name %q and the file", c.name, err, c.want)
		}
	}
	if _, err := LoadTokenizer(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func FuzzBPEEncode(f *testing.F) {
	for _, s := range []string{"", "Hello world", "don't  stop\n", "<s>x</s>", "<|endoftext|>", "😀 é 日本", "\xff\xfe", "  <mask> <tag>"} {
		f.Add(s)
	}
	toks := map[string]*BPETokenizer{}
	for _, name := range bpeFixtureNames {
		toks[name] = loadBPEFixture(f, name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, tok := range toks {
			ids := tok.Encode(s)
			n := int32(tok.VocabSize())
			for _, id := range ids {
				if id < 0 || id >= n {
					t.Fatalf("%s: Encode(%q) gave id %d outside [0,%d)", name, s, id, n)
				}
			}
			dec := tok.Decode(ids)
			// The byte-level tokenizer without a prefix space loses nothing
			// on valid UTF-8 text, save the spaces <mask> (lstrip) eats.
			if utf8.ValidString(s) && name == "bytelevel" && !strings.Contains(s, "<mask>") && dec != s {
				t.Fatalf("%s: %q round-trips to %q", name, s, dec)
			}
		}
	})
}
