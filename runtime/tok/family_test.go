package tok

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures under testdata/families are made by
// conformance/make_tokenizer_families.py with Hugging Face `tokenizers`
// (which checks that `transformers` agrees on ids_special).

var familyNames = []string{"gpt2", "llama3", "qwen2", "llama2", "gemma"}

type familyCase struct {
	Text        string  `json:"text"`
	IDs         []int32 `json:"ids"`
	IDsSpecial  []int32 `json:"ids_special"`
	Decoded     string  `json:"decoded"`
	DecodedSkip string  `json:"decoded_skip"`
}

type familyFixtures struct {
	Families map[string][]familyCase `json:"families"`
	Pretok   []struct {
		Config json.RawMessage `json:"config"`
		Cases  []struct {
			Text   string   `json:"text"`
			Pieces []string `json:"pieces"`
		} `json:"cases"`
	} `json:"pretok"`
	Normalizers []struct {
		Config json.RawMessage `json:"config"`
		Cases  []struct {
			Text       string `json:"text"`
			Normalized string `json:"normalized"`
		} `json:"cases"`
	} `json:"normalizers"`
	NFC []struct {
		Text       string `json:"text"`
		Normalized string `json:"normalized"`
	} `json:"nfc"`
}

func loadFamilyFixtures(t testing.TB) *familyFixtures {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "families", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f familyFixtures
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func loadFamily(t testing.TB, name string) *BPETokenizer {
	t.Helper()
	tok, err := LoadTokenizer(filepath.Join("testdata", "families", name, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestFamiliesMatchHuggingFace(t *testing.T) {
	f := loadFamilyFixtures(t)
	for _, name := range familyNames {
		t.Run(name, func(t *testing.T) {
			tok := loadFamily(t, name)
			cases := f.Families[name]
			if len(cases) < 40 {
				t.Fatalf("only %d cases", len(cases))
			}
			pass := 0
			for _, c := range cases {
				ok := true
				if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
					ok = false
				}
				if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, c.IDsSpecial) {
					t.Errorf("EncodeSpecial(%q)\n got %v\nwant %v", c.Text, got, c.IDsSpecial)
					ok = false
				}
				if got := tok.Decode(c.IDs); got != c.Decoded {
					t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
					ok = false
				}
				if got := tok.DecodeSkipSpecial(c.IDsSpecial); got != c.DecodedSkip {
					t.Errorf("DecodeSkipSpecial(%v) = %q, want %q", c.IDsSpecial, got, c.DecodedSkip)
					ok = false
				}
				if ok {
					pass++
				}
			}
			t.Logf("%s: %d/%d cases match", name, pass, len(cases))
		})
	}
}

// Decoding must give back the text wherever the tokenizer loses nothing:
// the byte-level families keep every byte, whatever the Hugging Face
// fixture says of a case.
func TestFamiliesRoundTrip(t *testing.T) {
	f := loadFamilyFixtures(t)
	for _, name := range []string{"gpt2", "llama3"} {
		tok := loadFamily(t, name)
		for _, c := range f.Families[name] {
			if got := tok.Decode(tok.Encode(c.Text)); got != c.Text {
				t.Errorf("%s: %q round-trips to %q", name, c.Text, got)
			}
		}
	}
	// Qwen2 normalizes to NFC: its round trip gives the NFC text.
	tok := loadFamily(t, "qwen2")
	for _, c := range f.Families["qwen2"] {
		if got := tok.Decode(tok.Encode(c.Text)); got != NFC(c.Text) {
			t.Errorf("qwen2: %q round-trips to %q", c.Text, got)
		}
	}
}

func TestPreTokenizersMatchHuggingFace(t *testing.T) {
	f := loadFamilyFixtures(t)
	if len(f.Pretok) < 20 {
		t.Fatalf("only %d pre-tokenizer configurations", len(f.Pretok))
	}
	for _, p := range f.Pretok {
		st, err := parsePreTokenizer(p.Config)
		if err != nil {
			t.Errorf("%s: %v", p.Config, err)
			continue
		}
		bad := 0
		for _, c := range p.Cases {
			var got []string
			var in []piece
			if c.Text != "" {
				in = []piece{{text: c.Text, first: true}}
			}
			for _, q := range st.apply(in) {
				got = append(got, q.text)
			}
			if !slices.Equal(got, c.Pieces) {
				if bad++; bad <= 3 {
					i := 0
					for i < len(got) && i < len(c.Pieces) && got[i] == c.Pieces[i] {
						i++
					}
					t.Errorf("%s\n on %.80q\n first difference at piece %d:\n got %.8q\nwant %.8q", p.Config, c.Text, i, got[i:], c.Pieces[i:])
				}
			}
		}
		if bad > 3 {
			t.Errorf("%s: %d cases differ", p.Config, bad)
		}
	}
}

func TestNormalizersMatchHuggingFace(t *testing.T) {
	f := loadFamilyFixtures(t)
	for _, n := range f.Normalizers {
		steps, err := parseNormalizer(n.Config)
		if err != nil {
			t.Errorf("%s: %v", n.Config, err)
			continue
		}
		for _, c := range n.Cases {
			got := c.Text
			for _, st := range steps {
				got = st.apply(got)
			}
			if got != c.Normalized {
				t.Errorf("%s on %q: got %q, want %q", n.Config, c.Text, got, c.Normalized)
			}
		}
	}
}

// NFC of every character with a canonical decomposition, composed, in NFD
// form and with its marks reversed, against tokenizers' NFC normalizer.
func TestNFCMatchesHuggingFace(t *testing.T) {
	f := loadFamilyFixtures(t)
	if len(f.NFC) != 3 {
		t.Fatalf("%d NFC cases, want 3", len(f.NFC))
	}
	for k, c := range f.NFC {
		got := strings.Fields(NFC(c.Text))
		want := strings.Fields(c.Normalized)
		if len(got) != len(want) {
			t.Fatalf("case %d: %d words, want %d", k, len(got), len(want))
		}
		in := strings.Fields(c.Text)
		bad := 0
		for i := range got {
			if got[i] != want[i] {
				if bad++; bad <= 5 {
					t.Errorf("case %d: NFC(%+q) = %+q, want %+q", k, in[i], got[i], want[i])
				}
			}
		}
		if bad > 0 {
			t.Errorf("case %d: %d of %d differ", k, bad, len(got))
		}
	}
}

func BenchmarkFamilyEncode(b *testing.B) {
	f := loadFamilyFixtures(b)
	var sb strings.Builder
	for _, c := range f.Families["gpt2"] {
		sb.WriteString(c.Text)
		sb.WriteByte('\n')
	}
	text := sb.String()
	for _, name := range familyNames {
		tok := loadFamily(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(text)
			}
		})
	}
}
