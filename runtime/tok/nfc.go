package tok

import (
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// NFC normalization (Unicode canonical decomposition, canonical ordering,
// canonical composition), from the tables in nfc_tables.go, which
// conformance/make_nfc_tables.py generates.

const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

var (
	nfcOnce    sync.Once
	nfcDec     map[rune][2]rune // one level; [1] is 0 for a singleton
	nfcCompose map[[2]rune]rune // primary composites
)

func nfcInit() {
	nfcOnce.Do(func() {
		nfcDec = make(map[rune][2]rune, len(nfcDecomp)/3)
		nfcCompose = make(map[[2]rune]rune, len(nfcDecomp)/3)
		for i := 0; i+2 < len(nfcDecomp); i += 3 {
			cp := rune(nfcDecomp[i] &^ (1 << 31))
			excluded := nfcDecomp[i]&(1<<31) != 0
			a, b := rune(nfcDecomp[i+1]), rune(nfcDecomp[i+2])
			nfcDec[cp] = [2]rune{a, b}
			if !excluded && b != 0 {
				nfcCompose[[2]rune{a, b}] = cp
			}
		}
	})
}

// combiningClass returns the canonical combining class of r.
func combiningClass(r rune) uint8 {
	if r < 0x300 {
		return 0
	}
	i := sort.Search(len(nfcCCC), func(i int) bool { return nfcCCC[i].hi >= r })
	if i < len(nfcCCC) && nfcCCC[i].lo <= r {
		return nfcCCC[i].c
	}
	return 0
}

// decompose appends the full canonical decomposition of r.
func decompose(r rune, out []rune) []rune {
	if s := r - hangulSBase; s >= 0 && s < hangulSCount {
		out = append(out, hangulLBase+s/hangulNCount, hangulVBase+(s%hangulNCount)/hangulTCount)
		if t := s % hangulTCount; t != 0 {
			out = append(out, hangulTBase+t)
		}
		return out
	}
	d, ok := nfcDec[r]
	if !ok {
		return append(out, r)
	}
	out = decompose(d[0], out)
	if d[1] != 0 {
		out = decompose(d[1], out)
	}
	return out
}

func composePair(a, b rune) (rune, bool) {
	if l := a - hangulLBase; l >= 0 && l < hangulLCount {
		if v := b - hangulVBase; v >= 0 && v < hangulVCount {
			return hangulSBase + (l*hangulVCount+v)*hangulTCount, true
		}
	}
	if s := a - hangulSBase; s >= 0 && s < hangulSCount && s%hangulTCount == 0 {
		if t := b - hangulTBase; t > 0 && t < hangulTCount {
			return a + t, true
		}
	}
	c, ok := nfcCompose[[2]rune{a, b}]
	return c, ok
}

// nfcQuick reports whether s certainly is in NFC: all of it is below
// U+0300, where nothing decomposes, combines or composes.
func nfcQuick(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xCC { // lead bytes of U+0300 and above
			return false
		}
	}
	return true
}

// NFC returns s in Unicode Normalization Form C. Bytes that are not valid
// UTF-8 are kept as they are and end any composition.
func NFC(s string) string {
	if nfcQuick(s) {
		return s
	}
	nfcInit()
	var sb strings.Builder
	sb.Grow(len(s))
	var buf []rune
	for i := 0; i < len(s); {
		j := i
		for j < len(s) {
			r, w := utf8.DecodeRuneInString(s[j:])
			if r == utf8.RuneError && w <= 1 {
				break
			}
			j += w
		}
		if j > i {
			buf = buf[:0]
			for _, r := range s[i:j] {
				buf = decompose(r, buf)
			}
			for _, r := range composeRunes(reorder(buf)) {
				sb.WriteRune(r)
			}
			i = j
			continue
		}
		sb.WriteByte(s[i])
		i++
	}
	return sb.String()
}

// reorder sorts each run of non-starters by combining class, stably.
func reorder(rs []rune) []rune {
	for i := 0; i < len(rs); {
		if combiningClass(rs[i]) == 0 {
			i++
			continue
		}
		j := i
		for j < len(rs) && combiningClass(rs[j]) != 0 {
			j++
		}
		run := rs[i:j]
		sort.SliceStable(run, func(a, b int) bool { return combiningClass(run[a]) < combiningClass(run[b]) })
		i = j
	}
	return rs
}

// composeRunes applies canonical composition to a decomposed, ordered
// sequence.
func composeRunes(rs []rune) []rune {
	if len(rs) == 0 {
		return rs
	}
	out := rs[:0:0]
	starter := -1 // index in out of the last starter
	var lastCC uint8
	for _, r := range rs {
		cc := combiningClass(r)
		if starter >= 0 {
			blocked := len(out)-1 != starter && (lastCC == 0 || lastCC >= cc)
			if !blocked {
				if c, ok := composePair(out[starter], r); ok {
					out[starter] = c
					continue
				}
			}
		}
		if cc == 0 {
			starter = len(out)
			lastCC = 0
		} else {
			lastCC = cc
		}
		out = append(out, r)
	}
	return out
}
