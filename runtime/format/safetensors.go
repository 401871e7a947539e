package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The safetensors format (Hugging Face): an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON header, then the data section. The header
// maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// with offsets relative to the data section, plus an optional "__metadata__"
// object of strings. Tensor data is little-endian and row-major.

const (
	// stMetadataKey is the header key that holds metadata, not a tensor.
	stMetadataKey = "__metadata__"
	// stMaxHeader bounds the JSON header, as the reference implementation
	// does, so a corrupt length cannot make us allocate or scan gigabytes.
	stMaxHeader = 100_000_000
	// stMmapMin is the file size from which OpenSafetensors maps instead of
	// reading: below it a read is as fast and needs no unmapping.
	stMmapMin = 1 << 20
)

// stDTypeSize is the element size of every dtype the header may name.
// Only F32, F16 and BF16 convert to float32; the others are accepted so a
// model file holding, say, an I64 position table still opens and the float
// tensors in it can be read.
var stDTypeSize = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	Name  string
	DType string // as in the header: "F32", "BF16", "F16", "I64", …
	Shape []int  // row-major; empty for a scalar
	// Begin and End are byte offsets into the data section (after the
	// header), End exclusive.
	Begin, End int64
}

// Safetensors is a parsed safetensors file whose header has been fully
// validated: every tensor lies inside the data section, its byte length
// matches shape × dtype size, and no two tensors overlap.
type Safetensors struct {
	Path     string            // for messages
	Metadata map[string]string // "__metadata__"; nil when absent
	Tensors  []TensorInfo      // sorted by name

	data   []byte       // the data section
	unmap  func() error // non-nil while the file is memory-mapped
	closed bool
}

// OpenSafetensors opens and validates a safetensors file. Files of 1 MiB or
// more are memory-mapped read-only where the platform allows, otherwise the
// file is read into memory. Close releases the mapping.
//
// A mapped file must not be truncated in place by another process while
// open: the operating system would fault on the missing pages. Replacing it
// with WriteFileAtomic is safe, since the mapping keeps the old file alive.
func OpenSafetensors(path string) (*Safetensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // a mapping stays valid after its file is closed
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := fi.Size()
	var data []byte
	var unmap func() error
	if size >= stMmapMin {
		data, unmap = mmapFile(f, size)
	}
	if data == nil {
		if size > math.MaxInt {
			return nil, fmt.Errorf("%s: %d bytes do not fit in memory on this platform", path, size)
		}
		data = make([]byte, size)
		if _, err := io.ReadFull(f, data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	s, err := ParseSafetensors(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	s.unmap = unmap
	return s, nil
}

// ParseSafetensors validates the safetensors file held in data; path is used
// only in messages. The result refers to data without copying it, so data
// must stay unchanged while the result is in use.
//
// Every malformation is an error naming the file, the tensor where there is
// one, what was expected and what was found. Holes between tensors (and
// after the last) are allowed, unlike in the reference reader, so files
// from writers that align each tensor still open; overlaps are not.
func ParseSafetensors(path string, data []byte) (*Safetensors, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{path}, args...)...)
	}
	if len(data) < 8 {
		return nil, fail("%d bytes, but a safetensors file starts with an 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > stMaxHeader {
		return nil, fail("header length %d is absurd (more than %d bytes); not a safetensors file?", n, stMaxHeader)
	}
	if n > uint64(len(data)-8) {
		return nil, fail("header length %d, but only %d bytes follow the 8-byte length", n, len(data)-8)
	}
	header := data[8 : 8+n]
	section := data[8+n:]
	if !utf8.Valid(header) {
		return nil, fail("header is not valid UTF-8")
	}

	raw, err := stHeaderObject(header)
	if err != nil {
		return nil, fail("header: %v", err)
	}
	s := &Safetensors{Path: path, data: section}
	for _, kv := range raw {
		if kv.key == stMetadataKey {
			if s.Metadata, err = stMetadata(kv.value); err != nil {
				return nil, fail("%s: %v", stMetadataKey, err)
			}
			continue
		}
		t, err := stTensorInfo(kv.key, kv.value, int64(len(section)))
		if err != nil {
			return nil, fail("tensor %q: %v", kv.key, err)
		}
		s.Tensors = append(s.Tensors, t)
	}
	slices.SortFunc(s.Tensors, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) })

	// Overlap check: sort the non-empty tensors by start and compare each
	// with the furthest end seen so far. Empty tensors occupy no bytes and
	// may sit anywhere.
	byBegin := make([]*TensorInfo, 0, len(s.Tensors))
	for i := range s.Tensors {
		if t := &s.Tensors[i]; t.End > t.Begin {
			byBegin = append(byBegin, t)
		}
	}
	slices.SortFunc(byBegin, func(a, b *TensorInfo) int {
		if a.Begin != b.Begin {
			return cmpInt64(a.Begin, b.Begin)
		}
		return strings.Compare(a.Name, b.Name)
	})
	var last *TensorInfo
	for _, t := range byBegin {
		if last != nil && t.Begin < last.End {
			return nil, fail("tensors %q at [%d, %d] and %q at [%d, %d] overlap",
				last.Name, last.Begin, last.End, t.Name, t.Begin, t.End)
		}
		if last == nil || t.End > last.End {
			last = t
		}
	}
	return s, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stKV is one top-level header entry, kept in file order.
type stKV struct {
	key   string
	value json.RawMessage
}

// stHeaderObject splits the header into its top-level entries. It streams
// tokens rather than unmarshalling into a map because a map would silently
// keep only the last of two entries with the same name.
func stHeaderObject(header []byte) ([]stKV, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", stJSONErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, found %s", stDescribe(tok))
	}
	var kvs []stKV
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %v", stJSONErr(err))
		}
		key, ok := tok.(string)
		if !ok { // the decoder yields only strings as keys; never trust that blindly
			return nil, fmt.Errorf("expected a key, found %s", stDescribe(tok))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not valid JSON after key %q: %v", key, stJSONErr(err))
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		kvs = append(kvs, stKV{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("not valid JSON: %v", stJSONErr(err))
	}
	// Writers pad the header with spaces; anything else after the object
	// means the length or the JSON is wrong.
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, fmt.Errorf("not valid JSON after the object: %v", stJSONErr(err))
		}
		return nil, fmt.Errorf("expected only padding after the JSON object, found %s", stDescribe(tok))
	}
	return kvs, nil
}

// stJSONErr turns the decoder's end-of-input into words.
func stJSONErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of header")
	}
	return err
}

// stDescribe names a JSON token for a message.
func stDescribe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return "string " + strconv.Quote(v)
	case nil:
		return "null"
	default:
		return fmt.Sprint(v)
	}
}

// stKind names the kind of a raw JSON value for a message.
func stKind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// stMetadata decodes "__metadata__": an object of strings. null counts as
// absent, since writers that serialise an empty optional field emit it.
func stMetadata(v json.RawMessage) (map[string]string, error) {
	if stKind(v) == "null" {
		return nil, nil
	}
	if stKind(v) != "an object" {
		return nil, fmt.Errorf("expected an object of strings, found %s", stKind(v))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("expected an object of strings: %v", err)
	}
	md := make(map[string]string, len(m))
	for k, e := range m {
		var s string
		if stKind(e) != "a string" || json.Unmarshal(e, &s) != nil {
			return nil, fmt.Errorf("value of %q is %s, expected a string", k, stKind(e))
		}
		md[k] = s
	}
	return md, nil
}

// stTensorInfo decodes and checks one tensor entry against a data section of
// sectionLen bytes.
func stTensorInfo(name string, v json.RawMessage, sectionLen int64) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	if stKind(v) != "an object" {
		return t, fmt.Errorf("expected an object with dtype, shape and data_offsets, found %s", stKind(v))
	}
	var e struct {
		DType   json.RawMessage `json:"dtype"`
		Shape   json.RawMessage `json:"shape"`
		Offsets json.RawMessage `json:"data_offsets"`
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return t, err
	}
	switch {
	case e.DType == nil:
		return t, errors.New(`missing "dtype"`)
	case e.Shape == nil:
		return t, errors.New(`missing "shape"`)
	case e.Offsets == nil:
		return t, errors.New(`missing "data_offsets"`)
	}

	if stKind(e.DType) != "a string" || json.Unmarshal(e.DType, &t.DType) != nil {
		return t, fmt.Errorf("dtype is %s, expected a string such as \"F32\"", stKind(e.DType))
	}
	size, ok := stDTypeSize[t.DType]
	if !ok {
		return t, fmt.Errorf("unknown dtype %q (known: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64)", t.DType)
	}

	dims, err := stInts(e.Shape)
	shapeText := stText(e.Shape)
	if err != nil {
		return t, fmt.Errorf("shape %s: %v", shapeText, err)
	}
	t.Shape = make([]int, len(dims))
	numel := int64(1)
	for i, d := range dims {
		if d > math.MaxInt {
			return t, fmt.Errorf("shape %s: dimension %d is %d, too large for this platform", shapeText, i, d)
		}
		t.Shape[i] = int(d)
		if numel, ok = mulInt64(numel, d); !ok {
			return t, fmt.Errorf("shape %s: element count overflows int64", shapeText)
		}
	}
	nbytes, ok := mulInt64(numel, size)
	if !ok {
		return t, fmt.Errorf("shape %s × %s: byte count overflows int64", shapeText, t.DType)
	}

	off, err := stInts(e.Offsets)
	if err != nil {
		return t, fmt.Errorf("data_offsets %s: %v", stText(e.Offsets), err)
	}
	if len(off) != 2 {
		return t, fmt.Errorf("data_offsets %s has %d elements, expected two: [begin, end]", stText(e.Offsets), len(off))
	}
	t.Begin, t.End = off[0], off[1]
	if t.Begin > t.End {
		return t, fmt.Errorf("data_offsets [%d, %d] end before they begin", t.Begin, t.End)
	}
	if t.End > sectionLen {
		return t, fmt.Errorf("data_offsets [%d, %d] end beyond the data section's %d bytes", t.Begin, t.End, sectionLen)
	}
	if t.End-t.Begin != nbytes {
		return t, fmt.Errorf("data_offsets [%d, %d] span %d bytes, but shape %s × %s needs %d",
			t.Begin, t.End, t.End-t.Begin, ShapeString(t.Shape), t.DType, nbytes)
	}
	return t, nil
}

// stInts decodes a JSON array of non-negative integers. Each element is
// parsed from its literal text, so 2.0, 1e3 and "2" are refused rather than
// silently converted.
func stInts(v json.RawMessage) ([]int64, error) {
	if stKind(v) != "an array" {
		return nil, fmt.Errorf("expected an array of non-negative integers, found %s", stKind(v))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(v, &elems); err != nil {
		return nil, err
	}
	out := make([]int64, len(elems))
	for i, e := range elems {
		n, err := strconv.ParseInt(string(e), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("element %d is %s, expected a non-negative integer", i, stText(e))
		}
		out[i] = n
	}
	return out, nil
}

// stText renders raw JSON for a one-line message: compacted (the header
// may spread an array over lines) and cut short if long.
func stText(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		b.Reset()
		b.Write(v)
	}
	const limit = 60
	if b.Len() > limit {
		cut := b.Bytes()[:limit]
		for !utf8.Valid(cut) { // do not split a character
			cut = cut[:len(cut)-1]
		}
		return string(cut) + "…"
	}
	return b.String()
}

// mulInt64 multiplies non-negative a and b, reporting false on overflow.
func mulInt64(a, b int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// ShapeString formats a shape as in messages and PyTorch: [5, 4].
func ShapeString(shape []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteByte(']')
	return b.String()
}

// Close releases the file's memory mapping, if any. The tensors' data cannot
// be read afterwards; closing twice is harmless.
func (s *Safetensors) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.data = nil
	if s.unmap != nil {
		u := s.unmap
		s.unmap = nil
		if err := u(); err != nil {
			return fmt.Errorf("%s: %w", s.Path, err)
		}
	}
	return nil
}

// Lookup returns the tensor called name.
func (s *Safetensors) Lookup(name string) (TensorInfo, bool) {
	i, ok := slices.BinarySearchFunc(s.Tensors, name, func(t TensorInfo, n string) int {
		return strings.Compare(t.Name, n)
	})
	if !ok {
		return TensorInfo{}, false
	}
	return s.Tensors[i], true
}

// ReadFloat32 converts tensor name into dst: F32 is copied, BF16 and F16 are
// widened exactly (subnormals, infinities and NaNs included). Its shape must
// equal want and dst must hold exactly its element count; checking the shape
// here catches a model file that does not belong to the compiled model
// before any number is used.
func (s *Safetensors) ReadFloat32(name string, want []int, dst []float32) error {
	if s.closed {
		return fmt.Errorf("%s: tensor %q: file is closed", s.Path, name)
	}
	t, ok := s.Lookup(name)
	if !ok {
		return fmt.Errorf("%s: no tensor %q", s.Path, name)
	}
	if !slices.Equal(t.Shape, want) {
		return fmt.Errorf("%s: tensor %q: shape %s, expected %s", s.Path, name, ShapeString(t.Shape), ShapeString(want))
	}
	size := stDTypeSize[t.DType]
	numel := (t.End - t.Begin) / size
	if int64(len(dst)) != numel {
		return fmt.Errorf("%s: tensor %q: dst has %d elements, but shape %s holds %d", s.Path, name, len(dst), ShapeString(t.Shape), numel)
	}
	src := s.data[t.Begin:t.End]
	switch t.DType {
	case "F32":
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case "BF16":
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case "F16":
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	default:
		return fmt.Errorf("%s: tensor %q: dtype %s cannot be read as float32 (readable: F32, F16, BF16)", s.Path, name, t.DType)
	}
	return nil
}

// BF16ToFloat32 widens a bfloat16: it is the top half of a float32.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F16ToFloat32 widens an IEEE half exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal, mant × 2⁻²⁴: exact in float32, whose
		// significand holds any 10-bit integer and whose exponent range
		// covers 2⁻²⁴.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f:
		// Infinity, or NaN keeping its payload.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToBF16 rounds to the nearest bfloat16, ties to even. Values beyond
// the largest bfloat16 round to infinity as IEEE rounding requires.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		// NaN: truncating could clear every payload bit and make it
		// infinity, so force the quiet bit.
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Float32ToF16 rounds to the nearest IEEE half, ties to even, producing
// subnormals, ±0 and ±infinity where the value lands there.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13) // quiet NaN, top payload bits kept
	}
	e := exp - 127 + 15 // the half's biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Below the smallest normal half: the result is k × 2⁻²⁴.
		// Values under half of 2⁻²⁴ round to zero (this also covers
		// float32 zeros and subnormals).
		if e < -10 {
			return sign
		}
		m := mant | 0x800000 // the significand with its implicit bit, × 2^(exp−150)
		shift := uint(14 - e)
		k := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && k&1 == 1 {
			k++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(k)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // may carry into the exponent, up to infinity, which is right
	}
	return sign | uint16(h)
}

// WriteTensor is one tensor to write with EncodeSafetensors.
type WriteTensor struct {
	Name  string
	Shape []int // nil or empty for a scalar
	Data  []float32
	// DType is the stored type: "F32" (when empty), "BF16" or "F16".
	// Narrow types are rounded to nearest, ties to even.
	DType string
}

// stEntry is a tensor's header value. Its field order is part of the
// format lorac writes: other packages compute the file size from it.
type stEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// EncodeSafetensors writes tensors (and metadata, when non-nil) as a
// safetensors file. The bytes depend only on the arguments: the header is
// encoding/json's rendering of a map from tensor names (and
// "__metadata__") to {dtype, shape, data_offsets}, keys sorted; the tensors'
// data follow contiguously in sorted-name order; the header is padded with
// spaces to a multiple of 8 bytes so the data start aligned.
//
// Nothing is written if the arguments are invalid: duplicate or non-UTF-8
// names, a tensor called "__metadata__", a negative dimension, a data length
// that is not the shape's element count, or an unknown dtype.
func EncodeSafetensors(w io.Writer, tensors []WriteTensor, metadata map[string]string) error {
	sorted, dtypes, buf, _, err := stLayout(tensors, metadata, true)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}

	// Convert in chunks so a large tensor is not duplicated in memory.
	chunk := make([]byte, 0, 64<<10)
	flush := func() error {
		_, err := w.Write(chunk)
		chunk = chunk[:0]
		return err
	}
	for i, t := range sorted {
		data := t.Data
		for len(data) > 0 {
			n := min(len(data), cap(chunk)/4)
			switch dtypes[i] {
			case "F32":
				for _, v := range data[:n] {
					chunk = binary.LittleEndian.AppendUint32(chunk, math.Float32bits(v))
				}
			case "BF16":
				for _, v := range data[:n] {
					chunk = binary.LittleEndian.AppendUint16(chunk, Float32ToBF16(v))
				}
			case "F16":
				for _, v := range data[:n] {
					chunk = binary.LittleEndian.AppendUint16(chunk, Float32ToF16(v))
				}
			}
			data = data[n:]
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteSafetensors writes a safetensors file (see EncodeSafetensors) through
// WriteFileAtomic, so an interrupted write leaves any previous file intact.
func WriteSafetensors(path string, tensors []WriteTensor, metadata map[string]string) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		return EncodeSafetensors(w, tensors, metadata)
	})
}

// stLayout checks tensors and lays the file out: the tensors in file order
// with their dtypes, the header as written (length, JSON, padding) and the
// size of the data section. withData also checks each tensor's data length
// against its shape; without it only shapes count (SafetensorsSize).
func stLayout(tensors []WriteTensor, metadata map[string]string, withData bool) (sorted []*WriteTensor, dtypes []string, header []byte, dataLen int64, err error) {
	sorted = make([]*WriteTensor, len(tensors))
	for i := range tensors {
		sorted[i] = &tensors[i]
	}
	slices.SortFunc(sorted, func(a, b *WriteTensor) int { return strings.Compare(a.Name, b.Name) })

	entries := make(map[string]any, len(tensors)+1)
	if metadata != nil {
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, nil, 0, fmt.Errorf("safetensors: metadata %q: not valid UTF-8", k)
			}
		}
		entries[stMetadataKey] = metadata
	}
	dtypes = make([]string, len(sorted))
	var off int64
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q appears twice", t.Name)
		}
		if t.Name == stMetadataKey {
			return nil, nil, nil, 0, fmt.Errorf("safetensors: a tensor cannot be called %q", stMetadataKey)
		}
		if !utf8.ValidString(t.Name) {
			return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q: name is not valid UTF-8", t.Name)
		}
		dt := t.DType
		if dt == "" {
			dt = "F32"
		}
		if dt != "F32" && dt != "BF16" && dt != "F16" {
			return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q: cannot write dtype %q (writable: F32, BF16, F16)", t.Name, t.DType)
		}
		dtypes[i] = dt
		numel := int64(1)
		ok := true
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q: shape %s has a negative dimension", t.Name, ShapeString(t.Shape))
			}
			if numel, ok = mulInt64(numel, int64(d)); !ok {
				return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q: shape %s overflows", t.Name, ShapeString(t.Shape))
			}
		}
		if withData && int64(len(t.Data)) != numel {
			return nil, nil, nil, 0, fmt.Errorf("safetensors: tensor %q: %d values, but shape %s needs %d", t.Name, len(t.Data), ShapeString(t.Shape), numel)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{} // a scalar is [], never null
		}
		n := numel * stDTypeSize[dt]
		entries[t.Name] = stEntry{dt, shape, []int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(entries)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("safetensors: header: %w", err)
	}
	padded := (len(js) + 7) / 8 * 8
	buf := make([]byte, 8, 8+padded)
	binary.LittleEndian.PutUint64(buf, uint64(padded))
	buf = append(buf, js...)
	for len(buf) < 8+padded {
		buf = append(buf, ' ')
	}
	return sorted, dtypes, buf, off, nil
}

// SafetensorsSize is the size in bytes of the file EncodeSafetensors writes
// for tensors of these names, shapes and dtypes (Data is not read).
func SafetensorsSize(tensors []WriteTensor, metadata map[string]string) (int64, error) {
	_, _, header, dataLen, err := stLayout(tensors, metadata, false)
	return int64(len(header)) + dataLen, err
}
