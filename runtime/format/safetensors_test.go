package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stEncode encodes tensors or fails the test.
func stEncode(t testing.TB, tensors []WriteTensor, md map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeSafetensors(&b, tensors, md); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stRaw builds a file from a literal header and data section, so corrupt
// headers can be written by hand.
func stRaw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// stSample is a small valid file with every writable dtype, a scalar, an
// empty tensor and metadata.
func stSample(t testing.TB) []byte {
	return stEncode(t, []WriteTensor{
		{Name: "w", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-3, -7}},
		{Name: "b16", Shape: []int{3}, Data: []float32{1, 0.5, -3}, DType: "BF16"},
		{Name: "h16", Shape: []int{2, 1}, Data: []float32{65504, -2.5}, DType: "F16"},
		{Name: "s", Data: []float32{42}},
		{Name: "e", Shape: []int{0, 4}, Data: nil},
	}, map[string]string{"format": "pt"})
}

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, 7*5)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()*3))
	}
	// Values every dtype represents exactly survive bit for bit.
	exact := []float32{0, 1, -1, 0.5, -0.25, 3, 1024, -49152, 0.0078125, float32(math.Inf(1)), float32(math.Inf(-1))}
	negZero := float32(math.Copysign(0, -1))
	exact = append(exact, negZero)

	tensors := []WriteTensor{
		{Name: "f32", Shape: []int{7, 5}, Data: vals},
		{Name: "bf16", Shape: []int{7, 5}, Data: vals, DType: "BF16"},
		{Name: "f16", Shape: []int{35}, Data: vals, DType: "F16"},
		{Name: "exact.bf16", Shape: []int{len(exact)}, Data: exact, DType: "BF16"},
		{Name: "exact.f16", Shape: []int{len(exact)}, Data: exact, DType: "F16"},
		{Name: "scalar", Data: []float32{-3.25}},
		{Name: "empty", Shape: []int{3, 0}, Data: []float32{}},
	}
	md := map[string]string{"format": "pt", "note": "ünïcode <&>"}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteSafetensors(path, tensors, md); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !equalStringMaps(s.Metadata, md) {
		t.Errorf("metadata %v, want %v", s.Metadata, md)
	}
	var names []string
	for _, ti := range s.Tensors {
		names = append(names, ti.Name)
	}
	if want := []string{"bf16", "empty", "exact.bf16", "exact.f16", "f16", "f32", "scalar"}; !slices.Equal(names, want) {
		t.Errorf("tensors %q, want %q", names, want)
	}
	if ti, _ := s.Lookup("bf16"); ti.DType != "BF16" || !slices.Equal(ti.Shape, []int{7, 5}) || ti.End-ti.Begin != 70 {
		t.Errorf("bf16 info %+v", ti)
	}
	if ti, _ := s.Lookup("scalar"); len(ti.Shape) != 0 || ti.End-ti.Begin != 4 {
		t.Errorf("scalar info %+v", ti)
	}

	for _, tc := range []struct {
		name  string
		shape []int
		rel   float64 // half an ulp of the stored type
	}{
		{"f32", []int{7, 5}, 0},
		{"bf16", []int{7, 5}, 1.0 / 256},
		{"f16", []int{35}, 1.0 / 2048},
	} {
		got := nans[float32](35)
		if err := s.ReadFloat32(tc.name, tc.shape, got); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			g, w := float64(got[i]), float64(v)
			// F16 overflows from 65520 and has only absolute
			// precision (2⁻²⁴) below its normal range.
			if tc.name == "f16" && math.Abs(w) >= 65520 {
				if !math.IsInf(g, int(math.Copysign(1, w))) {
					t.Errorf("%s[%d] = %v, want ±Inf for %v", tc.name, i, g, w)
				}
				continue
			}
			if tc.name == "f16" && math.Abs(w) < 1.0/16384 {
				if math.Abs(g-w) > 1.0/(1<<25) {
					t.Errorf("%s[%d] = %v, want %v ± 2⁻²⁵", tc.name, i, g, w)
				}
				continue
			}
			if math.Abs(g-w) > tc.rel*math.Abs(w) {
				t.Errorf("%s[%d] = %v, want %v within %v relative", tc.name, i, g, w, tc.rel)
			}
		}
	}
	for _, name := range []string{"exact.bf16", "exact.f16"} {
		got := nans[float32](len(exact))
		if err := s.ReadFloat32(name, []int{len(exact)}, got); err != nil {
			t.Fatal(err)
		}
		for i := range exact {
			if math.Float32bits(got[i]) != math.Float32bits(exact[i]) {
				t.Errorf("%s[%d] = %v, want exactly %v", name, i, got[i], exact[i])
			}
		}
	}
	got := nans[float32](1)
	if err := s.ReadFloat32("scalar", nil, got); err != nil || got[0] != -3.25 {
		t.Errorf("scalar = %v, %v; want -3.25", got, err)
	}
	if err := s.ReadFloat32("empty", []int{3, 0}, nil); err != nil {
		t.Error(err)
	}
}

func equalStringMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// stRefRound rounds x to a binary format with p significand bits (implicit
// bit included), minimum normal exponent emin and largest finite value max,
// ties to even, in float64 arithmetic: an independent oracle for the bit
// manipulation in Float32ToF16 and Float32ToBF16.
func stRefRound(x float64, p, emin int, maxFinite float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return x
	}
	a := math.Abs(x)
	_, e := math.Frexp(a) // a = f·2^e, f in [0.5, 1)
	e = max(e, emin+1)    // below the normal range the quantum stays fixed
	q := math.RoundToEven(math.Ldexp(a, p-e))
	r := math.Ldexp(q, e-p)
	// Overflow rounds to infinity from halfway past max (IEEE 754: as if
	// the exponent range were unbounded).
	ulp := math.Ldexp(1, int(math.Floor(math.Log2(maxFinite)))+1-p)
	if a >= maxFinite+ulp/2 {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

// stCheckNarrow compares one narrowing against the oracle.
func stCheckNarrow(t *testing.T, kind string, x float32, got float32, want float64) bool {
	t.Helper()
	if math.IsNaN(float64(x)) {
		if !math.IsNaN(float64(got)) {
			t.Errorf("%s(NaN %#08x) = %v, want NaN", kind, math.Float32bits(x), got)
			return false
		}
		return true
	}
	if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
		t.Errorf("%s(%v = %#08x) = %v, want %v", kind, x, math.Float32bits(x), got, want)
		return false
	}
	return true
}

func TestF16Conversion(t *testing.T) {
	// Widening, all 65536 halves, against the definition of the format.
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, mant := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch exp {
		case 0:
			want = sign * math.Ldexp(float64(mant), -24)
		case 31:
			want = sign * math.Inf(1)
			if mant != 0 {
				want = math.NaN()
			}
		default:
			want = sign * math.Ldexp(float64(1024+mant), exp-25)
		}
		got := F16ToFloat32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != (sign < 0) {
				t.Fatalf("f16 %#04x = %v, want a NaN of the same sign", h, got)
			}
			// Narrowing keeps it a NaN with the same sign and
			// payload (quieted).
			if back := Float32ToF16(got); back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != uint16(h)&0x8000 || back&0x1ff != uint16(h)&0x1ff {
				t.Fatalf("f16 NaN %#04x narrows back to %#04x", h, back)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("f16 %#04x = %v, want %v", h, got, want)
		}
		if back := Float32ToF16(got); back != uint16(h) {
			t.Fatalf("f16 %#04x widens to %v which narrows to %#04x", h, got, back)
		}
	}

	narrow := func(x float32) bool {
		return stCheckNarrow(t, "F16", x, F16ToFloat32(Float32ToF16(x)), stRefRound(float64(x), 11, -14, 65504))
	}
	// Every tie between two adjacent halves, and the float32 neighbours of
	// each tie, are where rounding goes wrong.
	for h := range 0x7c00 {
		lo, hi := float64(F16ToFloat32(uint16(h))), float64(F16ToFloat32(uint16(h+1)))
		if h == 0x7bff {
			hi = 65536 // the would-be next value: the tie above the max overflows
		}
		mid := float32((lo + hi) / 2) // exact: the midpoint has 12 significant bits
		for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1)))} {
			if !narrow(x) || !narrow(-x) {
				return
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		if !narrow(math.Float32frombits(rng.Uint32())) {
			return
		}
	}
	for range 1 << 18 { // magnitudes around the half range, where most values in models live
		if !narrow(float32(math.Ldexp(rng.Float64()*2-1, rng.IntN(44)-28))) {
			return
		}
	}
}

func TestBF16Conversion(t *testing.T) {
	for h := range 1 << 16 {
		got := BF16ToFloat32(uint16(h))
		if math.Float32bits(got) != uint32(h)<<16 {
			t.Fatalf("bf16 %#04x = %#08x", h, math.Float32bits(got))
		}
		back := Float32ToBF16(got)
		if math.IsNaN(float64(got)) {
			if back&0x7f80 != 0x7f80 || back&0x7f == 0 || back&0x8000 != uint16(h)&0x8000 {
				t.Fatalf("bf16 NaN %#04x narrows back to %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("bf16 %#04x narrows back to %#04x", h, back)
		}
	}
	maxBF16 := float64(BF16ToFloat32(0x7f7f))
	narrow := func(x float32) bool {
		return stCheckNarrow(t, "BF16", x, BF16ToFloat32(Float32ToBF16(x)), stRefRound(float64(x), 8, -126, maxBF16))
	}
	for h := range 0x7f80 {
		lo := float64(BF16ToFloat32(uint16(h)))
		hi := float64(BF16ToFloat32(uint16(h + 1)))
		if h == 0x7f7f {
			hi = math.Ldexp(1, 128)
		}
		mid := (lo + hi) / 2
		xs := []float32{math.Nextafter32(float32(lo), 0)}
		if mid < math.MaxFloat32 {
			m := float32(mid)
			xs = append(xs, m, math.Nextafter32(m, 0), math.Nextafter32(m, float32(math.Inf(1))))
		}
		for _, x := range xs {
			if !narrow(x) || !narrow(-x) {
				return
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1 << 20 {
		if !narrow(math.Float32frombits(rng.Uint32())) {
			return
		}
	}
}

// TestNarrowEdgeCases pins the values people ask about by name.
func TestNarrowEdgeCases(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, tc := range []struct {
		x    float32
		f16  uint16
		bf16 uint16
	}{
		{0, 0x0000, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{inf, 0x7c00, 0x7f80},
		{-inf, 0xfc00, 0xff80},
		{65504, 0x7bff, 0x4780},                          // the largest half
		{65519.996, 0x7bff, 0x4780},                      // just under the tie rounds down
		{65520, 0x7c00, 0x4780},                          // the tie above the largest half is infinity
		{1 + 1.0/2048, 0x3c00, 0x3f80},                   // tie, rounds to even (down)
		{1 + 3.0/2048, 0x3c02, 0x3f80},                   // tie, rounds to even (up)
		{1 + 1.0/256, 0x3c04, 0x3f80},                    // bf16 tie, even (down)
		{1 + 3.0/256, 0x3c0c, 0x3f82},                    // bf16 tie, even (up)
		{float32(math.Ldexp(1, -14)), 0x0400, 0x3880},    // smallest normal half
		{float32(math.Ldexp(1023, -24)), 0x03ff, 0x3880}, // largest subnormal half; bf16 rounds up to 2⁻¹⁴
		{float32(math.Ldexp(1, -24)), 0x0001, 0x3380},    // smallest subnormal half
		{float32(math.Ldexp(1, -25)), 0x0000, 0x3300},    // its half: tie to even, zero
		{float32(math.Ldexp(3, -26)), 0x0001, 0x3340},    // above the tie
		{float32(math.Ldexp(3, -25)), 0x0002, 0x33c0},    // 1.5·2⁻²⁴: tie to even, up
		{math.MaxFloat32, 0x7c00, 0x7f80},                // beyond the largest bf16 too
		{math.SmallestNonzeroFloat32, 0x0000, 0x0000},    // float32 subnormal under bf16's
		{float32(math.Ldexp(1, -133)), 0x0000, 0x0001},   // smallest bf16 subnormal
	} {
		if got := Float32ToF16(tc.x); got != tc.f16 {
			t.Errorf("F16(%v) = %#04x, want %#04x", tc.x, got, tc.f16)
		}
		if got := Float32ToBF16(tc.x); got != tc.bf16 {
			t.Errorf("BF16(%v) = %#04x, want %#04x", tc.x, got, tc.bf16)
		}
	}
	// NaNs whose payload lies only in bits the narrow types drop must stay
	// NaN instead of turning into infinity.
	for _, bits := range []uint32{0x7f800001, 0xff800001, 0x7fc00000, math.Float32bits(nan)} {
		x := math.Float32frombits(bits)
		if h := Float32ToF16(x); !math.IsNaN(float64(F16ToFloat32(h))) {
			t.Errorf("F16(NaN %#08x) = %#04x, not a NaN", bits, h)
		}
		if h := Float32ToBF16(x); !math.IsNaN(float64(BF16ToFloat32(h))) {
			t.Errorf("BF16(NaN %#08x) = %#04x, not a NaN", bits, h)
		}
	}
}

// TestEncodeSafetensorsLayout pins the exact bytes: other packages compute
// file sizes from this layout.
func TestEncodeSafetensorsLayout(t *testing.T) {
	got := stEncode(t, []WriteTensor{
		{Name: "b", Shape: []int{2}, Data: []float32{1, 2}},
		{Name: "a", Shape: []int{1, 1}, Data: []float32{-1}, DType: "F16"},
	}, map[string]string{"format": "pt"})
	header := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[1,1],"data_offsets":[0,2]},"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}`
	pad := strings.Repeat(" ", (8-len(header)%8)%8)
	want := stRaw(header+pad, []byte{0x00, 0xbc, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40})
	if !bytes.Equal(got, want) {
		t.Errorf("encoded\n%q\nwant\n%q", got, want)
	}
	if n := binary.LittleEndian.Uint64(got); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}

	// Without metadata there is no __metadata__ key; a nil shape is a
	// scalar, [] and never null.
	got = stEncode(t, []WriteTensor{{Name: "s", Data: []float32{0}}}, nil)
	header = `{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`
	if want := stRaw(header+strings.Repeat(" ", (8-len(header)%8)%8), make([]byte, 4)); !bytes.Equal(got, want) {
		t.Errorf("encoded\n%q\nwant\n%q", got, want)
	}
}

func TestEncodeSafetensorsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var tensors []WriteTensor
	for i := range 20 {
		shape := []int{1 + rng.IntN(5), 1 + rng.IntN(5)}
		tensors = append(tensors, WriteTensor{
			Name:  "layer." + string(rune('a'+i)) + ".weight",
			Shape: shape,
			Data:  to32(randn(rng, shape[0]*shape[1])),
			DType: []string{"", "F32", "BF16", "F16"}[i%4],
		})
	}
	md := map[string]string{"z": "1", "a": "2", "m": "3", "format": "pt"}
	first := stEncode(t, tensors, md)
	for range 10 {
		shuffled := slices.Clone(tensors)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := stEncode(t, shuffled, md); !bytes.Equal(got, first) {
			t.Fatal("the same tensors in another order (or another map iteration) encode differently")
		}
	}
	if _, err := ParseSafetensors("det.safetensors", first); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeSafetensorsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tensors []WriteTensor
		md      map[string]string
		want    string
	}{
		{"duplicate", []WriteTensor{{Name: "a", Data: []float32{1}}, {Name: "a", Data: []float32{2}}}, nil, `tensor "a" appears twice`},
		{"length", []WriteTensor{{Name: "a", Shape: []int{2, 3}, Data: make([]float32, 5)}}, nil, `tensor "a": 5 values, but shape [2, 3] needs 6`},
		{"dtype", []WriteTensor{{Name: "a", Data: []float32{1}, DType: "I64"}}, nil, `tensor "a": cannot write dtype "I64"`},
		{"negative", []WriteTensor{{Name: "a", Shape: []int{-1, -2}, Data: make([]float32, 2)}}, nil, `shape [-1, -2] has a negative dimension`},
		{"overflow", []WriteTensor{{Name: "a", Shape: []int{math.MaxInt32, math.MaxInt32, math.MaxInt32}}}, nil, `overflows`},
		{"metadata name", []WriteTensor{{Name: "__metadata__", Data: []float32{1}}}, nil, `cannot be called "__metadata__"`},
		{"utf8", []WriteTensor{{Name: "a\xff", Data: []float32{1}}}, nil, `not valid UTF-8`},
		{"metadata utf8", nil, map[string]string{"k": "\xff"}, `metadata "k": not valid UTF-8`},
	} {
		var b bytes.Buffer
		err := EncodeSafetensors(&b, tc.tensors, tc.md)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
		if b.Len() != 0 {
			t.Errorf("%s: %d bytes written before the error", tc.name, b.Len())
		}
	}
}

// stCorrupt is a table of malformed files and the words their errors must
// contain. It also seeds the fuzzer.
var stCorrupt = []struct {
	name string
	file []byte
	want string
}{
	{"empty", nil, "0 bytes, but a safetensors file starts with an 8-byte header length"},
	{"short", []byte{1, 2, 3}, "3 bytes"},
	{"absurd header", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length 1099511627776 is absurd"},
	{"header past end", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "header length 100, but only 2 bytes follow"},
	{"not json", stRaw(`{"a":`, nil), "header: not valid JSON"},
	{"not utf8", stRaw("{\"\xff\":1}", nil), "header is not valid UTF-8"},
	{"not object", stRaw(`[1, 2]`, nil), `header: expected a JSON object, found "["`},
	{"string header", stRaw(`"x"`, nil), `header: expected a JSON object, found string "x"`},
	{"trailing", stRaw(`{} {}`, nil), `expected only padding after the JSON object, found "{"`},
	{"duplicate", stRaw(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `key "a" appears twice`},
	{"entry not object", stRaw(`{"a":[1]}`, nil), `tensor "a": expected an object with dtype, shape and data_offsets, found an array`},
	{"missing dtype", stRaw(`{"a":{"shape":[],"data_offsets":[0,4]}}`, nil), `tensor "a": missing "dtype"`},
	{"missing shape", stRaw(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, nil), `tensor "a": missing "shape"`},
	{"missing offsets", stRaw(`{"a":{"dtype":"F32","shape":[]}}`, nil), `tensor "a": missing "data_offsets"`},
	{"dtype number", stRaw(`{"a":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, nil), `tensor "a": dtype is a number, expected a string`},
	{"unknown dtype", stRaw(`{"a":{"dtype":"Q4_K","shape":[],"data_offsets":[0,4]}}`, nil), `tensor "a": unknown dtype "Q4_K"`},
	{"shape not array", stRaw(`{"a":{"dtype":"F32","shape":5,"data_offsets":[0,4]}}`, nil), `tensor "a": shape 5: expected an array of non-negative integers, found a number`},
	{"negative dim", stRaw(`{"a":{"dtype":"F32","shape":[5,-1],"data_offsets":[0,4]}}`, nil), `tensor "a": shape [5,-1]: element 1 is -1, expected a non-negative integer`},
	{"fractional dim", stRaw(`{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}}`, nil), `element 0 is 2.5, expected a non-negative integer`},
	{"string dim", stRaw(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,4]}}`, nil), `element 0 is "2", expected a non-negative integer`},
	{"huge dim", stRaw(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, nil), `element 0 is 99999999999999999999`},
	{"numel overflow", stRaw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, nil), `element count overflows int64`},
	{"bytes overflow", stRaw(`{"a":{"dtype":"F64","shape":[2305843009213693952,2],"data_offsets":[0,4]}}`, nil), `byte count overflows int64`},
	{"one offset", stRaw(`{"a":{"dtype":"F32","shape":[],"data_offsets":[4]}}`, make([]byte, 4)), `data_offsets [4] has 1 elements, expected two`},
	{"offsets not array", stRaw(`{"a":{"dtype":"F32","shape":[],"data_offsets":{}}}`, nil), `data_offsets {}: expected an array`},
	{"negative offset", stRaw(`{"a":{"dtype":"F32","shape":[],"data_offsets":[-4,0]}}`, nil), `data_offsets [-4,0]: element 0 is -4`},
	{"reversed offsets", stRaw(`{"a":{"dtype":"F32","shape":[],"data_offsets":[8,4]}}`, make([]byte, 8)), `data_offsets [8, 4] end before they begin`},
	{"past data", stRaw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 7)), `tensor "a": data_offsets [0, 8] end beyond the data section's 7 bytes`},
	{"size mismatch", stRaw(`{"lm_head.weight":{"dtype":"F32","shape":[5,4],"data_offsets":[0,100]}}`, make([]byte, 100)), `tensor "lm_head.weight": data_offsets [0, 100] span 100 bytes, but shape [5, 4] × F32 needs 80`},
	{"overlap", stRaw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), `tensors "a" at [0, 8] and "b" at [4, 12] overlap`},
	{"overlap inside", stRaw(`{"a":{"dtype":"U8","shape":[12],"data_offsets":[0,12]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"c":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}`, make([]byte, 12)), `tensors "a" at [0, 12] and "b" at [4, 6] overlap`},
	{"multi-line shape", stRaw("{\"a\":{\"dtype\":\"F32\",\"shape\":[\n  5,\n  -1\n],\"data_offsets\":[0,4]}}", nil), `tensor "a": shape [5,-1]: element 1 is -1`},
	{"long shape", stRaw(`{"a":{"dtype":"F32","shape":[`+strings.Repeat("1,", 100)+`-1],"data_offsets":[0,4]}}`, nil), `shape [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1…: element 100 is -1`},
	{"metadata array", stRaw(`{"__metadata__":["x"]}`, nil), `__metadata__: expected an object of strings, found an array`},
	{"metadata number", stRaw(`{"__metadata__":{"format":1}}`, nil), `__metadata__: value of "format" is a number, expected a string`},
}

func TestParseSafetensorsCorrupt(t *testing.T) {
	for _, tc := range stCorrupt {
		_, err := ParseSafetensors("model.safetensors", tc.file)
		if err == nil {
			t.Errorf("%s: no error, want %q", tc.name, tc.want)
			continue
		}
		msg := err.Error()
		if strconv.IntSize == 32 && strings.HasSuffix(tc.name, " overflow") && strings.Contains(msg, "too large for this platform") {
			continue // a 32-bit int refuses the dimension before the product overflows
		}
		if !strings.HasPrefix(msg, "model.safetensors: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error\n\t%s\nwant one line naming the file and containing\n\t%s", tc.name, msg, tc.want)
		}
	}
}

// TestParseSafetensorsLenient covers what must be accepted: holes between
// tensors and after them, empty tensors anywhere, null metadata, unknown
// entry fields, every described dtype.
func TestParseSafetensorsLenient(t *testing.T) {
	file := stRaw(`{"__metadata__":null,`+
		`"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},`+
		`"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[20,23]},`+
		`"none":{"dtype":"F32","shape":[0],"data_offsets":[5,5]},`+
		`"d":{"dtype":"F64","shape":[1],"data_offsets":[24,32],"extra":true},`+
		`"u":{"dtype":"U8","shape":[1,1],"data_offsets":[32,33]},`+
		`"i":{"dtype":"I32","shape":[],"data_offsets":[36,40]}}   `, make([]byte, 48))
	s, err := ParseSafetensors("ok.safetensors", file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Metadata != nil || len(s.Tensors) != 6 {
		t.Errorf("metadata %v, %d tensors", s.Metadata, len(s.Tensors))
	}
	if ti, ok := s.Lookup("mask"); !ok || ti.DType != "BOOL" || ti.Begin != 20 || ti.End != 23 {
		t.Errorf("mask: %+v %v", ti, ok)
	}
	err = s.ReadFloat32("ids", []int{2}, make([]float32, 2))
	if err == nil || err.Error() != `ok.safetensors: tensor "ids": dtype I64 cannot be read as float32 (readable: F32, F16, BF16)` {
		t.Errorf("reading I64: %v", err)
	}
}

func TestReadFloat32Errors(t *testing.T) {
	s, err := ParseSafetensors("m.safetensors", stEncode(t, []WriteTensor{{Name: "w", Shape: []int{3, 4}, Data: make([]float32, 12)}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		shape []int
		n     int
		want  string
	}{
		{"x", []int{3, 4}, 12, `m.safetensors: no tensor "x"`},
		{"w", []int{4, 3}, 12, `m.safetensors: tensor "w": shape [3, 4], expected [4, 3]`},
		{"w", []int{12}, 12, `m.safetensors: tensor "w": shape [3, 4], expected [12]`},
		{"w", []int{3, 4}, 11, `m.safetensors: tensor "w": dst has 11 elements, but shape [3, 4] holds 12`},
	} {
		err := s.ReadFloat32(tc.name, tc.shape, make([]float32, tc.n))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ReadFloat32(%q, %v, [%d]) = %v, want %s", tc.name, tc.shape, tc.n, err, tc.want)
		}
	}
	s.Close()
	if err := s.ReadFloat32("w", []int{3, 4}, make([]float32, 12)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: %v", err)
	}
}

// TestParseSafetensorsTruncated cuts a valid file at every byte: each prefix
// must be refused with an error, never a panic.
func TestParseSafetensorsTruncated(t *testing.T) {
	file := stSample(t)
	if _, err := ParseSafetensors("full", file); err != nil {
		t.Fatal(err)
	}
	for i := range len(file) {
		if _, err := ParseSafetensors("cut", file[:i]); err == nil {
			t.Errorf("file cut to %d of %d bytes parsed without error", i, len(file))
		}
	}
}

// TestParseSafetensorsMutated flips every bit of the header in turn: the
// result may parse or not, but must never panic, and what parses must read.
func TestParseSafetensorsMutated(t *testing.T) {
	file := stSample(t)
	n := 8 + int(binary.LittleEndian.Uint64(file))
	for i := range n {
		for bit := range 8 {
			m := slices.Clone(file)
			m[i] ^= 1 << bit
			stCheckParsed(t, m)
		}
	}
}

// stCheckParsed parses data and, if that succeeds, checks the promised
// invariants and reads every float tensor.
func stCheckParsed(t *testing.T, data []byte) {
	t.Helper()
	s, err := ParseSafetensors("x.safetensors", data)
	if err != nil {
		if msg := err.Error(); !strings.HasPrefix(msg, "x.safetensors: ") || strings.Contains(msg, "\n") {
			t.Fatalf("error not one line naming the file: %q", msg)
		}
		return
	}
	n := int64(len(data)) - 8 - int64(binary.LittleEndian.Uint64(data))
	for i, ti := range s.Tensors {
		if i > 0 && s.Tensors[i-1].Name >= ti.Name {
			t.Fatalf("tensors not sorted or duplicated: %q, %q", s.Tensors[i-1].Name, ti.Name)
		}
		if ti.Begin < 0 || ti.Begin > ti.End || ti.End > n {
			t.Fatalf("tensor %q at [%d, %d] outside a %d-byte data section", ti.Name, ti.Begin, ti.End, n)
		}
		if got, ok := s.Lookup(ti.Name); !ok || got.Begin != ti.Begin {
			t.Fatalf("Lookup(%q) = %+v, %v", ti.Name, got, ok)
		}
		switch ti.DType {
		case "F32", "F16", "BF16":
			count := (ti.End - ti.Begin) / stDTypeSize[ti.DType]
			if err := s.ReadFloat32(ti.Name, ti.Shape, make([]float32, count)); err != nil {
				t.Fatalf("valid tensor %q: %v", ti.Name, err)
			}
		}
	}
}

// TestOpenSafetensorsMmap exercises the memory-mapped path with a file over
// 1 MiB, and the read path with a small one.
func TestOpenSafetensorsMmap(t *testing.T) {
	dir := t.TempDir()
	rng := newRand()
	big := to32(randn(rng, 300_000)) // 1.2 MB of F32
	path := filepath.Join(dir, "big.safetensors")
	if err := WriteSafetensors(path, []WriteTensor{
		{Name: "big", Shape: []int{600, 500}, Data: big},
		{Name: "half", Shape: []int{3}, Data: []float32{1, 2, 3}, DType: "BF16"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if canMmap && s.unmap == nil {
		t.Error("a file over 1 MiB was read, not mapped")
	}
	got := nans[float32](len(big))
	if err := s.ReadFloat32("big", []int{600, 500}, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, big) {
		t.Error("mapped F32 data differ from what was written")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.ReadFloat32("big", []int{600, 500}, got); err == nil {
		t.Error("read after Close succeeded")
	}

	small := filepath.Join(dir, "small.safetensors")
	if err := os.WriteFile(small, stSample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSafetensors(small)
	if err != nil {
		t.Fatal(err)
	}
	if s.unmap != nil {
		t.Error("a small file was mapped")
	}
	s.Close()

	// A corrupt large file is refused and its mapping released.
	bad := filepath.Join(dir, "bad.safetensors")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(bad, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSafetensors(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
		t.Errorf("truncated large file: %v", err)
	}
	if _, err := OpenSafetensors(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := OpenSafetensors(dir); err == nil {
		t.Error("opening a directory succeeded")
	}
}

func FuzzParseSafetensors(f *testing.F) {
	f.Add(stSample(f))
	f.Add(stEncode(f, nil, nil))
	f.Add(stEncode(f, []WriteTensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}, DType: "F16"}}, map[string]string{"k": "v"}))
	for _, tc := range stCorrupt {
		f.Add(tc.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		stCheckParsed(t, data)
	})
}

// TestStEntryFieldOrder guards the header layout against a reordering of
// stEntry's fields, which would silently change every file size.
func TestStEntryFieldOrder(t *testing.T) {
	js, _ := json.Marshal(stEntry{"F32", []int{1}, []int64{0, 4}})
	if string(js) != `{"dtype":"F32","shape":[1],"data_offsets":[0,4]}` {
		t.Errorf("entry encodes as %s", js)
	}
}
