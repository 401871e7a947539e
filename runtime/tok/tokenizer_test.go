package tok

import (
	"testing"
	"unicode/utf8"
)

func TestByteTokenizerRoundTrip(t *testing.T) {
	var all []byte
	for b := range 256 {
		all = append(all, byte(b))
	}
	tok := ByteTokenizer{}
	for _, s := range []string{"", "hello, world", "héllo ✓", "\xff\xfe\x80bad utf-8\xc3", string(all)} {
		ids := tok.Encode(s)
		if len(ids) != len(s) {
			t.Errorf("Encode(%q) has %d ids, want %d", s, len(ids), len(s))
		}
		for i, id := range ids {
			if id != int32(s[i]) {
				t.Errorf("Encode(%q)[%d] = %d, want %d", s, i, id, s[i])
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	if tok.VocabSize() != 256 {
		t.Errorf("VocabSize() = %d", tok.VocabSize())
	}
}

func TestByteTokenizerDecodeOutOfRange(t *testing.T) {
	got := ByteTokenizer{}.Decode([]int32{'a', -1, 256, 1 << 30, 'b'})
	want := "a" + string(utf8.RuneError) + string(utf8.RuneError) + string(utf8.RuneError) + "b"
	if got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
}

func FuzzByteTokenizer(f *testing.F) {
	f.Add([]byte("seed"))
	f.Add([]byte{0xff, 0x00, 0xc3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := string(b)
		if got := (ByteTokenizer{}).Decode(ByteTokenizer{}.Encode(s)); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}
