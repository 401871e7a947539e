package tok

import "unicode/utf8"

// ByteTokenizer maps each byte of the text to the token with that value, a
// vocabulary of 256. It needs no vocabulary file, handles any input
// (including invalid UTF-8) and round-trips it exactly, which makes it the
// default for models trained from scratch on small corpora.
type ByteTokenizer struct{}

// Encode returns one token per byte of s.
func (ByteTokenizer) Encode(s string) []int32 {
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int32(s[i])
	}
	return ids
}

// Decode returns the bytes the ids stand for. An id outside 0..255, which a
// model with a larger output layer can sample, becomes U+FFFD rather than a
// panic, so generation never dies on a bad token.
func (ByteTokenizer) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id > 255 {
			b = utf8.AppendRune(b, utf8.RuneError)
			continue
		}
		b = append(b, byte(id))
	}
	return string(b)
}

// VocabSize returns 256, the number of byte values.
func (ByteTokenizer) VocabSize() int { return 256 }
