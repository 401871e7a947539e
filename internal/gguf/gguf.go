package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"lorac.dev/lorac/runtime/format"
)

// GGUF is ggml's model file format (docs/gguf.md in ggml-org/ggml), which
// llama.cpp and Ollama load models and LoRA adapters from. Version 3,
// little-endian:
//
//	"GGUF"  u32 version  u64 tensor_count  u64 kv_count
//	kv_count × { string key, u32 value_type, value }
//	tensor_count × { string name, u32 n_dims, n_dims × u64 ne, u32 ggml_type, u64 offset }
//	zero padding up to a multiple of general.alignment (32 when absent)
//	tensor data
//
// A string is a u64 byte length and the bytes, unterminated. An array value
// is a u32 element type, a u64 element count and the elements; an element
// may itself be an array, written the same way. ne lists the dimensions
// innermost first (ggml order), so a row-major torch [rows, cols] tensor has
// ne = [cols, rows]. offset is relative to the start of the tensor data and
// a multiple of the alignment.
const (
	ggufMagic            = "GGUF"
	ggufVersion          = 3
	ggufDefaultAlignment = 32
	// ggufMaxDims is GGML_MAX_DIMS: ggml refuses tensors with more.
	ggufMaxDims = 4
	// ggufMaxName is the longest tensor name ggml accepts: GGML_MAX_NAME
	// (64) bytes including the terminating NUL.
	ggufMaxName = 63
	// ggufMaxDepth bounds nested arrays, so a crafted file cannot recurse
	// the reader into a stack overflow. ggml itself allows no nesting.
	ggufMaxDepth = 8
	// ggufQuantVersion is GGML_QUANT_VERSION, which llama.cpp's converter
	// stores in general.quantization_version of every file it writes.
	ggufQuantVersion = 2
)

// GGUF metadata value types (gguf_metadata_value_type).
const (
	ggufUint8 uint32 = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
)

var ggufTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

// ggufMinSize is the fewest bytes a value of each type occupies: the fixed
// size of a number, a string's length field, an array's type and count.
// Counts read from a file are checked against it before anything is
// allocated.
var ggufMinSize = [...]uint64{1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8}

func ggufTypeName(t uint32) string {
	if t < uint32(len(ggufTypeNames)) {
		return ggufTypeNames[t]
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// ggml tensor types that convert to float32.
const (
	GGMLTypeF32  uint32 = 0
	GGMLTypeF16  uint32 = 1
	GGMLTypeBF16 uint32 = 30
)

// ggmlType is a ggml tensor type's storage: blocks of block elements, bytes
// bytes each.
type ggmlType struct {
	name          string
	block, nbytes uint64
}

// ggmlTypes is every type gguf-py 0.19.0 knows (GGML_QUANT_SIZES). A tensor
// of another type still parses, but its size is unknown, so its data range
// cannot be checked and it cannot be read.
var ggmlTypes = map[uint32]ggmlType{
	0: {"F32", 1, 4}, 1: {"F16", 1, 2}, 2: {"Q4_0", 32, 18}, 3: {"Q4_1", 32, 20},
	6: {"Q5_0", 32, 22}, 7: {"Q5_1", 32, 24}, 8: {"Q8_0", 32, 34}, 9: {"Q8_1", 32, 40},
	10: {"Q2_K", 256, 84}, 11: {"Q3_K", 256, 110}, 12: {"Q4_K", 256, 144}, 13: {"Q5_K", 256, 176},
	14: {"Q6_K", 256, 210}, 15: {"Q8_K", 256, 292}, 16: {"IQ2_XXS", 256, 66}, 17: {"IQ2_XS", 256, 74},
	18: {"IQ3_XXS", 256, 98}, 19: {"IQ1_S", 256, 50}, 20: {"IQ4_NL", 32, 18}, 21: {"IQ3_S", 256, 110},
	22: {"IQ2_S", 256, 82}, 23: {"IQ4_XS", 256, 136}, 24: {"I8", 1, 1}, 25: {"I16", 1, 2},
	26: {"I32", 1, 4}, 27: {"I64", 1, 8}, 28: {"F64", 1, 8}, 29: {"IQ1_M", 256, 56},
	30: {"BF16", 1, 2}, 34: {"TQ1_0", 256, 54}, 35: {"TQ2_0", 256, 66}, 39: {"MXFP4", 32, 17},
	40: {"NVFP4", 64, 36}, 41: {"Q1_0", 128, 18},
}

func ggmlTypeName(t uint32) string {
	if tt, ok := ggmlTypes[t]; ok {
		return tt.name
	}
	return "ggml type " + strconv.FormatUint(uint64(t), 10)
}

// ggmlNBytes is the byte size of a tensor of type t with dimensions dims,
// false when t is unknown, the innermost dimension is not a whole number of
// blocks, or the count overflows an int64 (which ggml refuses too).
func ggmlNBytes(t uint32, dims []uint64) (uint64, bool) {
	tt, ok := ggmlTypes[t]
	if !ok {
		return 0, false
	}
	n, ok := ggufElements(dims)
	if !ok {
		return 0, false
	}
	inner := uint64(1)
	if len(dims) > 0 {
		inner = dims[0]
	}
	if inner%tt.block != 0 {
		return 0, false
	}
	hi, size := bits.Mul64(n/tt.block, tt.nbytes)
	if hi != 0 || size > math.MaxInt64 {
		return 0, false
	}
	return size, true
}

// ggufElements is the product of dims, false past math.MaxInt64.
func ggufElements(dims []uint64) (uint64, bool) {
	n := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

func ggufAlign(n, alignment uint64) uint64 {
	return (n + alignment - 1) / alignment * alignment
}

// GGUF is a parsed GGUF file: its metadata and tensor directory. Tensor data
// stays in the file and is read on demand by Float32.
type GGUF struct {
	Path    string
	Version uint32
	// Metadata maps each key to its value as the Go type of its GGUF type
	// (uint8 … float64, bool, string); an array is a slice of that type
	// ([]uint32, []string, …), and an array of arrays is []any.
	Metadata map[string]any
	Keys     []string // metadata keys in file order
	Tensors  []GGUFTensor
	// Alignment is general.alignment, or 32 when the file has none.
	Alignment uint64
	// DataOffset is where tensor data starts in the file; each tensor's
	// Offset counts from here.
	DataOffset uint64
}

// GGUFTensor is one entry of a GGUF file's tensor directory.
type GGUFTensor struct {
	Name   string
	Dims   []uint64 // ggml order: innermost (contiguous) dimension first
	Type   uint32   // ggml type: GGMLTypeF32, GGMLTypeF16, …
	Offset uint64   // from GGUF.DataOffset
}

// Tensor looks a tensor up by name.
func (g *GGUF) Tensor(name string) (GGUFTensor, bool) {
	for _, t := range g.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return GGUFTensor{}, false
}

// ReadGGUF parses the metadata and tensor directory of the GGUF file at path
// (version 3, or 2, whose layout is the same) and checks that every tensor
// of a known type lies inside the file at an aligned offset. Any malformed
// input is an error that names the file and says what is wrong where.
// Big-endian files are refused. Tensor data is not read; see Float32.
//
// It checks what the spec requires, not everything ggml's loader adds:
// tensors may lie in any order with gaps, and names may exceed ggml's 63
// bytes. ExportGGUF's files meet ggml's rules too.
func ReadGGUF(path string) (*GGUF, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	d := &ggufDecoder{r: bufio.NewReaderSize(f, 64<<10), size: uint64(fi.Size())}
	g, err := d.file()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	g.Path = path
	return g, nil
}

// ggufDecoder reads a GGUF header, knowing the file size so that every
// length and count is checked against the bytes left before it is trusted.
type ggufDecoder struct {
	r    *bufio.Reader
	pos  uint64
	size uint64
	buf  [8]byte
}

// take reads n bytes, into the decoder's buffer when n ≤ 8.
func (d *ggufDecoder) take(n uint64) ([]byte, error) {
	if n > d.size-d.pos {
		return nil, fmt.Errorf("unexpected end of file: %d bytes needed at byte %d, the file has %d", n, d.pos, d.size)
	}
	var b []byte
	if n <= uint64(len(d.buf)) {
		b = d.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("unexpected end of file at byte %d; did the file shrink while being read?", d.pos)
		}
		return nil, err
	}
	d.pos += n
	return b, nil
}

func (d *ggufDecoder) u32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *ggufDecoder) u64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (d *ggufDecoder) str() (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > d.size-d.pos {
		return "", fmt.Errorf("string of %d bytes at byte %d runs past the end of the file (%d bytes)", n, d.pos-8, d.size)
	}
	b, err := d.take(n)
	return string(b), err
}

// fixed reads n little-endian values of a fixed-size type.
func ggufFixed[T any](d *ggufDecoder, n, size uint64) ([]T, error) {
	b, err := d.take(n * size) // the caller checked n against the bytes left
	if err != nil {
		return nil, err
	}
	v := make([]T, n)
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		return nil, err
	}
	return v, nil
}

// values reads n values of type t as a slice ([]uint8 … []any). depth
// counts the arrays around them.
func (d *ggufDecoder) values(t uint32, n uint64, depth int) (any, error) {
	if t >= uint32(len(ggufMinSize)) {
		return nil, fmt.Errorf("unknown value type %d (known: 0 to %d)", t, len(ggufMinSize)-1)
	}
	if left := d.size - d.pos; n > left/ggufMinSize[t] {
		return nil, fmt.Errorf("%d %s value(s) at byte %d cannot fit in the %d bytes left", n, ggufTypeName(t), d.pos, left)
	}
	var v any
	var err error
	switch t {
	case ggufUint8:
		v, err = ggufFixed[uint8](d, n, 1)
	case ggufInt8:
		v, err = ggufFixed[int8](d, n, 1)
	case ggufUint16:
		v, err = ggufFixed[uint16](d, n, 2)
	case ggufInt16:
		v, err = ggufFixed[int16](d, n, 2)
	case ggufUint32:
		v, err = ggufFixed[uint32](d, n, 4)
	case ggufInt32:
		v, err = ggufFixed[int32](d, n, 4)
	case ggufFloat32:
		v, err = ggufFixed[float32](d, n, 4)
	case ggufUint64:
		v, err = ggufFixed[uint64](d, n, 8)
	case ggufInt64:
		v, err = ggufFixed[int64](d, n, 8)
	case ggufFloat64:
		v, err = ggufFixed[float64](d, n, 8)
	case ggufBool:
		start := d.pos
		var raw []uint8
		if raw, err = ggufFixed[uint8](d, n, 1); err != nil {
			return nil, err
		}
		bs := make([]bool, n)
		for i, b := range raw {
			if b > 1 {
				// The spec calls anything but 0 and 1 invalid.
				return nil, fmt.Errorf("bool at byte %d is %d, expected 0 or 1", start+uint64(i), b)
			}
			bs[i] = b == 1
		}
		v = bs
	case ggufString:
		ss := make([]string, n)
		for i := range ss {
			if ss[i], err = d.str(); err != nil {
				return nil, err
			}
		}
		v = ss
	case ggufArray:
		if depth >= ggufMaxDepth {
			return nil, fmt.Errorf("arrays nested more than %d deep at byte %d", ggufMaxDepth, d.pos)
		}
		as := make([]any, n)
		for i := range as {
			if as[i], err = d.array(depth + 1); err != nil {
				return nil, err
			}
		}
		v = as
	}
	return v, err
}

// array reads an array's element type, count and elements.
func (d *ggufDecoder) array(depth int) (any, error) {
	t, err := d.u32()
	if err != nil {
		return nil, err
	}
	n, err := d.u64()
	if err != nil {
		return nil, err
	}
	return d.values(t, n, depth)
}

// value reads a metadata value of type t.
func (d *ggufDecoder) value(t uint32) (any, error) {
	switch t {
	case ggufArray:
		return d.array(1)
	case ggufString:
		return d.str()
	}
	v, err := d.values(t, 1, 0)
	if err != nil {
		return nil, err
	}
	return reflect.ValueOf(v).Index(0).Interface(), nil
}

// file decodes everything up to the tensor data.
func (d *ggufDecoder) file() (*GGUF, error) {
	if d.size < 4 {
		return nil, fmt.Errorf("not a GGUF file: %d bytes, too short for the magic %q", d.size, ggufMagic)
	}
	magic, err := d.take(4)
	if err != nil {
		return nil, err
	}
	if string(magic) != ggufMagic {
		return nil, fmt.Errorf("not a GGUF file: starts with %q, expected %q", magic, ggufMagic)
	}
	g := &GGUF{Metadata: map[string]any{}, Alignment: ggufDefaultAlignment}
	if g.Version, err = d.u32(); err != nil {
		return nil, err
	}
	switch {
	case g.Version != 0 && g.Version&0xffff == 0:
		return nil, fmt.Errorf("version field %#08x: a big-endian GGUF file, which is not supported", g.Version)
	case g.Version != 2 && g.Version != 3:
		return nil, fmt.Errorf("GGUF version %d is not supported (only 2 and 3)", g.Version)
	}
	nTensors, err := d.u64()
	if err != nil {
		return nil, err
	}
	nKV, err := d.u64()
	if err != nil {
		return nil, err
	}
	// A key-value pair takes at least 14 bytes (a one-byte key, a type and a
	// one-byte value) and a tensor entry 24, so larger counts are lies.
	left := d.size - d.pos
	if nKV > left/14 {
		return nil, fmt.Errorf("%d metadata entries cannot fit in the %d bytes left", nKV, left)
	}
	if nTensors > (left-nKV*14)/24 {
		return nil, fmt.Errorf("%d tensors (after %d metadata entries) cannot fit in the %d bytes left", nTensors, nKV, left)
	}

	for i := range nKV {
		at := d.pos
		key, err := d.str()
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d: key: %v", i, err)
		}
		if key == "" {
			return nil, fmt.Errorf("metadata entry %d at byte %d: empty key", i, at)
		}
		if _, dup := g.Metadata[key]; dup {
			return nil, fmt.Errorf("metadata key %q at byte %d appears twice", key, at)
		}
		t, err := d.u32()
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %v", key, err)
		}
		v, err := d.value(t)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %v", key, err)
		}
		g.Metadata[key] = v
		g.Keys = append(g.Keys, key)
	}
	if v, ok := g.Metadata["general.alignment"]; ok {
		a, ok := v.(uint32)
		if !ok {
			return nil, fmt.Errorf("general.alignment is a %T, expected a uint32", v)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("general.alignment is %d, expected a power of two", a)
		}
		g.Alignment = uint64(a)
	}

	g.Tensors = make([]GGUFTensor, 0, nTensors)
	names := make(map[string]bool, nTensors)
	sizes := make([]uint64, 0, nTensors)
	known := make([]bool, 0, nTensors)
	for i := range nTensors {
		at := d.pos
		var t GGUFTensor
		if t.Name, err = d.str(); err != nil {
			return nil, fmt.Errorf("tensor %d: name: %v", i, err)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("tensor %q at byte %d appears twice", t.Name, at)
		}
		nDims, err := d.u32()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if nDims > ggufMaxDims {
			return nil, fmt.Errorf("tensor %q has %d dimensions; ggml allows at most %d", t.Name, nDims, ggufMaxDims)
		}
		t.Dims = make([]uint64, nDims)
		for j := range t.Dims {
			if t.Dims[j], err = d.u64(); err != nil {
				return nil, fmt.Errorf("tensor %q: %v", t.Name, err)
			}
		}
		if _, ok := ggufElements(t.Dims); !ok {
			return nil, fmt.Errorf("tensor %q: dimensions %v have more than 2⁶³-1 elements", t.Name, t.Dims)
		}
		if t.Type, err = d.u32(); err != nil {
			return nil, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		if t.Offset, err = d.u64(); err != nil {
			return nil, fmt.Errorf("tensor %q: %v", t.Name, err)
		}
		size, ok := ggmlNBytes(t.Type, t.Dims)
		if _, isKnown := ggmlTypes[t.Type]; isKnown && !ok {
			return nil, fmt.Errorf("tensor %q: dimensions %v do not fit type %s (the innermost must be a multiple of its %d-element block, and the size must fit an int64)",
				t.Name, t.Dims, ggmlTypeName(t.Type), ggmlTypes[t.Type].block)
		}
		names[t.Name] = true
		g.Tensors = append(g.Tensors, t)
		sizes = append(sizes, size)
		known = append(known, ok)
	}

	g.DataOffset = ggufAlign(d.pos, g.Alignment)
	for i, t := range g.Tensors {
		if t.Offset%g.Alignment != 0 {
			return nil, fmt.Errorf("tensor %q: data offset %d is not a multiple of the alignment %d", t.Name, t.Offset, g.Alignment)
		}
		start, carry := bits.Add64(g.DataOffset, t.Offset, 0)
		end, carry2 := bits.Add64(start, sizes[i], 0)
		if carry|carry2 != 0 || end > d.size {
			if known[i] {
				return nil, fmt.Errorf("tensor %q: %d bytes of data at offset %d (byte %d of the file) run past the end of the file (%d bytes)",
					t.Name, sizes[i], t.Offset, g.DataOffset+t.Offset, d.size)
			}
			return nil, fmt.Errorf("tensor %q: data offset %d (byte %d of the file) is past the end of the file (%d bytes)",
				t.Name, t.Offset, g.DataOffset+t.Offset, d.size)
		}
	}
	return g, nil
}

// Float32 reads the tensor called name, which must be F32, F16 or BF16, as
// float32 in its stored order (ggml's: innermost dimension fastest, which is
// row-major for the reversed dimensions).
func (g *GGUF) Float32(name string) ([]float32, error) {
	t, ok := g.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", g.Path, name)
	}
	if t.Type != GGMLTypeF32 && t.Type != GGMLTypeF16 && t.Type != GGMLTypeBF16 {
		return nil, fmt.Errorf("%s: tensor %q is %s; only F32, F16 and BF16 read as float32", g.Path, name, ggmlTypeName(t.Type))
	}
	size, ok := ggmlNBytes(t.Type, t.Dims)
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: dimensions %v overflow", g.Path, name, t.Dims)
	}
	f, err := os.Open(g.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start, carry := bits.Add64(g.DataOffset, t.Offset, 0)
	end, carry2 := bits.Add64(start, size, 0)
	if carry|carry2 != 0 || end > uint64(fi.Size()) {
		return nil, fmt.Errorf("%s: tensor %q: its %d bytes at byte %d lie past the end of the file (%d bytes)", g.Path, name, size, start, fi.Size())
	}
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, int64(start)); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", g.Path, name, err)
	}
	switch t.Type {
	case GGMLTypeF32:
		out := make([]float32, size/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case GGMLTypeF16:
		out := make([]float32, size/2)
		for i := range out {
			out[i] = format.F16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	default:
		out := make([]float32, size/2)
		for i := range out {
			out[i] = format.BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	}
}

// ggufKV is one metadata entry to write. value is any Go type that ReadGGUF
// returns: a number, bool or string, a slice of one, or []any of slices.
type ggufKV struct {
	key   string
	value any
}

// ggufTensorData is one tensor to write: its dims in ggml order, its ggml
// type and its stored bytes.
type ggufTensorData struct {
	name string
	dims []uint64
	typ  uint32
	data []byte
}

// ggufGoTypes maps the Go type of each scalar value to its GGUF type.
var ggufGoTypes = map[reflect.Type]uint32{
	reflect.TypeFor[uint8](): ggufUint8, reflect.TypeFor[int8](): ggufInt8,
	reflect.TypeFor[uint16](): ggufUint16, reflect.TypeFor[int16](): ggufInt16,
	reflect.TypeFor[uint32](): ggufUint32, reflect.TypeFor[int32](): ggufInt32,
	reflect.TypeFor[float32](): ggufFloat32, reflect.TypeFor[bool](): ggufBool,
	reflect.TypeFor[string](): ggufString, reflect.TypeFor[uint64](): ggufUint64,
	reflect.TypeFor[int64](): ggufInt64, reflect.TypeFor[float64](): ggufFloat64,
}

// ggufValueType is the GGUF type of a Go value, for writing: a scalar's
// own, or ggufArray for a slice of scalars or a []any of such slices.
func ggufValueType(v any) (uint32, error) {
	t := reflect.TypeOf(v)
	if gt, ok := ggufGoTypes[t]; ok {
		return gt, nil
	}
	if t != nil && t.Kind() == reflect.Slice {
		if _, ok := ggufGoTypes[t.Elem()]; ok {
			return ggufArray, nil
		}
		if elems, ok := v.([]any); ok {
			for _, e := range elems {
				if et, err := ggufValueType(e); err != nil || et != ggufArray {
					return 0, fmt.Errorf("an element of []any is a %T; only arrays may be nested", e)
				}
			}
			return ggufArray, nil
		}
	}
	return 0, fmt.Errorf("no GGUF type for a %T", v)
}

func ggufAppendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// ggufAppendValue appends v's encoding, without its type, which the caller
// got from ggufValueType.
func ggufAppendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return ggufAppendString(b, v), nil
	case []string:
		b = binary.LittleEndian.AppendUint32(b, ggufString)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
		for _, s := range v {
			b = ggufAppendString(b, s)
		}
		return b, nil
	case []any:
		b = binary.LittleEndian.AppendUint32(b, ggufArray)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
		var err error
		for _, e := range v {
			if b, err = ggufAppendValue(b, e); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	t, err := ggufValueType(v)
	if err != nil {
		return nil, err
	}
	if t == ggufArray {
		// A slice of numbers or bools: its element type, count, values.
		zero := reflect.Zero(reflect.TypeOf(v).Elem()).Interface()
		et, _ := ggufValueType(zero)
		b = binary.LittleEndian.AppendUint32(b, et)
		b = binary.LittleEndian.AppendUint64(b, uint64(reflect.ValueOf(v).Len()))
	}
	// encoding/binary writes numbers, bools (as one byte, 0 or 1) and
	// slices of them exactly as GGUF stores them.
	return binary.Append(b, binary.LittleEndian, v)
}

// writeGGUF writes a GGUF version 3 file: the metadata in the order given,
// then the tensors' directory and data in the order given. Tensors are
// packed as ggml's reader requires: each at the next multiple of the
// alignment (general.alignment when kvs sets it, else 32), the data
// section padded after every tensor, the last included.
func writeGGUF(w io.Writer, kvs []ggufKV, tensors []ggufTensorData) error {
	alignment := uint64(ggufDefaultAlignment)
	b := []byte(ggufMagic)
	b = binary.LittleEndian.AppendUint32(b, ggufVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(kvs)))
	seen := map[string]bool{}
	for _, kv := range kvs {
		if kv.key == "" {
			return errors.New("gguf: empty metadata key")
		}
		if seen[kv.key] {
			return fmt.Errorf("gguf: metadata key %q appears twice", kv.key)
		}
		seen[kv.key] = true
		if kv.key == "general.alignment" {
			a, ok := kv.value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("gguf: general.alignment must be a uint32 power of two, not %v (%T)", kv.value, kv.value)
			}
			alignment = uint64(a)
		}
		t, err := ggufValueType(kv.value)
		if err != nil {
			return fmt.Errorf("gguf: metadata %q: %v", kv.key, err)
		}
		b = ggufAppendString(b, kv.key)
		b = binary.LittleEndian.AppendUint32(b, t)
		if b, err = ggufAppendValue(b, kv.value); err != nil {
			return fmt.Errorf("gguf: metadata %q: %v", kv.key, err)
		}
	}
	var off uint64
	names := map[string]bool{}
	for _, t := range tensors {
		if len(t.name) > ggufMaxName {
			return fmt.Errorf("gguf: tensor name %q is longer than the %d bytes ggml allows", t.name, ggufMaxName)
		}
		if names[t.name] {
			return fmt.Errorf("gguf: tensor %q appears twice", t.name)
		}
		names[t.name] = true
		if len(t.dims) > ggufMaxDims {
			return fmt.Errorf("gguf: tensor %q has %d dimensions; ggml allows at most %d", t.name, len(t.dims), ggufMaxDims)
		}
		if size, ok := ggmlNBytes(t.typ, t.dims); !ok || size != uint64(len(t.data)) {
			return fmt.Errorf("gguf: tensor %q: %d bytes of data do not match %s dimensions %v", t.name, len(t.data), ggmlTypeName(t.typ), t.dims)
		}
		b = ggufAppendString(b, t.name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.dims)))
		for _, d := range t.dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, t.typ)
		b = binary.LittleEndian.AppendUint64(b, off)
		off = ggufAlign(off+uint64(len(t.data)), alignment)
	}
	b = append(b, make([]byte, ggufAlign(uint64(len(b)), alignment)-uint64(len(b)))...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	pad := make([]byte, alignment)
	for _, t := range tensors {
		if _, err := w.Write(t.data); err != nil {
			return err
		}
		if _, err := w.Write(pad[:ggufAlign(uint64(len(t.data)), alignment)-uint64(len(t.data))]); err != nil {
			return err
		}
	}
	return nil
}

// ggufLoRATarget is how llama.cpp names the weights a PEFT adapter may
// target in one architecture: Hugging Face module names are prefix + "N." +
// a key of modules, and llama.cpp's tensor is "blk.N." + the value +
// ".weight" (gguf-py's tensor_mapping.py and constants.py). order lists the
// values in the order lorac writes them within a block.
type ggufLoRATarget struct {
	prefix  string
	modules map[string]string
	order   []string
}

// llamaLoRATarget names the linears of llama.cpp's llama, qwen2 and qwen3
// architectures alike.
var llamaLoRATarget = ggufLoRATarget{
	prefix: "model.layers.",
	modules: map[string]string{
		"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
		"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
		"mlp.down_proj": "ffn_down",
	},
	order: []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"},
}

// ggufLoRATargets are the architectures lorac exports, by llama.cpp's
// name: llama (Llama 2 and 3, and Mistral, which llama.cpp's converter
// maps to llama), qwen2, qwen3, gemma, gemma2, gemma3 and gpt2.
var ggufLoRATargets = map[string]ggufLoRATarget{
	"llama":  llamaLoRATarget,
	"qwen2":  llamaLoRATarget,
	"qwen3":  llamaLoRATarget,
	"gemma":  llamaLoRATarget,
	"gemma2": llamaLoRATarget,
	"gemma3": llamaLoRATarget,
	"gpt2": {
		prefix: "transformer.h.",
		modules: map[string]string{
			"attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down",
		},
		order: []string{"attn_qkv", "attn_output", "ffn_up", "ffn_down"},
	},
}

// ggufLoRAName maps a PEFT module name to its llama.cpp base tensor name
// ("blk.N.attn_q.weight"), returning also the block and the tensor's kind.
func ggufLoRAName(arch, module string) (name string, block int, kind string, err error) {
	tgt := ggufLoRATargets[arch]
	rest, ok1 := strings.CutPrefix(module, tgt.prefix)
	num, sub, ok2 := strings.Cut(rest, ".")
	kind, ok3 := tgt.modules[sub]
	// Only plain decimal block numbers, as Hugging Face writes them, so two
	// spellings ("1", "01") cannot name one tensor.
	digits := num != "" && strings.Trim(num, "0123456789") == "" && (num == "0" || num[0] != '0')
	block, aerr := strconv.Atoi(num)
	if !ok1 || !ok2 || !ok3 || !digits || aerr != nil {
		subs := slices.Sorted(maps.Keys(tgt.modules))
		return "", 0, "", fmt.Errorf("module %q has no llama.cpp tensor in a %s model; LoRA can target %sN.{%s}",
			module, arch, tgt.prefix, strings.Join(subs, ","))
	}
	return "blk." + num + "." + kind + ".weight", block, kind, nil
}

// ggufRoPEPermute reorders the rows of a q or k projection's lora_B (out
// rows of rank values) as llama.cpp's converter reorders the base weight's
// rows (LlamaModel.permute in convert_hf_to_gguf.py): within each of groups
// heads of hd rows, Hugging Face stores the two rotary halves one after the
// other and llama.cpp interleaves them, so row h·hd + i·hd/2 + j moves to
// h·hd + 2j + i. Permuting B's rows permutes the rows of B·A identically.
func ggufRoPEPermute(b []float32, out, rank, groups int) []float32 {
	hd := out / groups
	p := make([]float32, len(b))
	for h := range groups {
		for i := range 2 {
			for j := range hd / 2 {
				src := h*hd + i*hd/2 + j
				dst := h*hd + 2*j + i
				copy(p[dst*rank:(dst+1)*rank], b[src*rank:(src+1)*rank])
			}
		}
	}
	return p
}

// ggufLlamaScale is the factor llama.cpp multiplies a LoRA product by
// (llama_adapter_lora_weight::get_scale in llama-adapter.h, at the default
// adapter scale 1): alpha / rank in float32, rank being lora_b's ne[0], or
// 1 when alpha is 0.
func ggufLlamaScale(alpha float32, rank int) float32 {
	if alpha == 0 {
		return 1
	}
	return float32(alpha / float32(rank))
}

// ExportGGUF writes a PEFT LoRA adapter as a llama.cpp LoRA adapter GGUF
// file (atomically), the file llama.cpp's --lora and Ollama's ADAPTER load.
// arch is llama.cpp's architecture name: "llama" (Llama 2 and 3, Mistral),
// "qwen2", "qwen3", "gemma", "gemma2", "gemma3" or "gpt2"; heads and kvHeads are llama's attention and
// key-value head counts, needed to reorder q and k (the others ignore them).
//
// The file is laid out as llama.cpp's convert_lora_to_gguf.py lays it out
// at --outtype f32, and as llama_adapter_lora_init checks it:
//   - metadata general.architecture = arch, general.type = "adapter",
//     adapter.type = "lora", adapter.lora.alpha (float32) and
//     general.quantization_version = 2;
//   - per module, F32 tensors "blk.N.<tensor>.weight.lora_a" with ggml
//     dims [in, r] (PEFT's lora_A [r, in], bytes unchanged) and
//     ".lora_b" with dims [r, out] (lora_B [out, r]), where <tensor> is
//     attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
//     (llama, qwen2, qwen3, gemma, gemma2, gemma3) or attn_qkv, attn_output, ffn_up, ffn_down
//     (gpt2);
//   - llama's q_proj and k_proj lora_B rows reordered as the converter
//     reorders the base q and k weights for llama.cpp's RoPE (k with the
//     key-value head count). qwen2, qwen3 and the gemmas run RoPE in Hugging Face's
//     rotate_half order (llama.cpp's NEOX mode), so the converter keeps
//     their rows, and so does lorac.
//
// gpt2's lora_A and lora_B are written as they are, whatever
// fan_in_fan_out says: PEFT keeps them [r, in] and [out, r] for Conv1D
// layers too, and llama.cpp checks them against its base tensor, which is
// [in, out] in ggml order once the converter has transposed Conv1D.
//
// Scale. llama.cpp applies one alpha per file and each module's own rank:
// y += (alpha / r) · B·(A·x). adapter.lora.alpha is the config's
// lora_alpha, so an adapter whose modules all use it without rsLoRA is
// written bit for bit, rank_pattern included (the rank is per tensor). A
// module whose PEFT scale s differs from lora_alpha / r (alpha_pattern, or
// rsLoRA's alpha / √r) has s / (lora_alpha / r) folded into its lora_B, so
// llama.cpp reproduces PEFT's update s·B·A to float32 rounding; with
// lora_alpha 0, where llama.cpp uses scale 1, all of s goes into lora_B.
// llama.cpp's own converter ignores alpha_pattern and use_rslora.
//
// Errors name the module: one with no llama.cpp tensor in arch, sizes that
// do not fit its rank, a q or k whose rows do not split into heads of even
// size, or a config lorac or llama.cpp cannot honour.
func ExportGGUF(path string, a *format.PEFTAdapter, arch string, heads, kvHeads int) error {
	kvs, tensors, err := ggufLoRA(a, arch, heads, kvHeads)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return format.WriteFileAtomic(path, func(w io.Writer) error { return writeGGUF(w, kvs, tensors) })
}

// ggufLoRA lays out an adapter's GGUF metadata and tensors (see ExportGGUF).
func ggufLoRA(a *format.PEFTAdapter, arch string, heads, kvHeads int) ([]ggufKV, []ggufTensorData, error) {
	tgt, ok := ggufLoRATargets[arch]
	switch {
	case a == nil:
		return nil, nil, errors.New("no adapter")
	case !ok:
		return nil, nil, fmt.Errorf("architecture %q: expected one of %s", arch, strings.Join(slices.Sorted(maps.Keys(ggufLoRATargets)), ", "))
	case arch == "llama" && (heads <= 0 || kvHeads <= 0):
		return nil, nil, fmt.Errorf("llama needs positive head counts to reorder q and k, got heads %d, kv_heads %d", heads, kvHeads)
	case len(a.Modules) == 0:
		return nil, nil, errors.New("the adapter has no LoRA modules")
	}
	cfg := &a.Config
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	alpha := float32(cfg.LoraAlpha)
	if math.IsNaN(cfg.LoraAlpha) || math.IsInf(float64(alpha), 0) {
		return nil, nil, fmt.Errorf("lora_alpha %v is not a float32 number", cfg.LoraAlpha)
	}

	type entry struct {
		block, kind int
		a, b        ggufTensorData
	}
	entries := make([]entry, 0, len(a.Modules))
	seen := map[string]string{}
	for _, m := range a.Modules {
		// The config selects the module as PEFT would, as ReadPEFT checks:
		// an adapter built in Go gets the same check as one read from disk.
		if err := cfg.CheckModule(m.Module); err != nil {
			return nil, nil, err
		}
		name, block, kind, err := ggufLoRAName(arch, m.Module)
		if err != nil {
			return nil, nil, err
		}
		if prev, dup := seen[name]; dup {
			return nil, nil, fmt.Errorf("modules %q and %q both map to %s", prev, m.Module, name)
		}
		seen[name] = m.Module
		switch {
		case m.Rank <= 0 || m.In <= 0 || m.Out <= 0:
			return nil, nil, fmt.Errorf("module %q: rank %d, in %d, out %d; expected positive sizes", m.Module, m.Rank, m.In, m.Out)
		case len(m.A) != m.Rank*m.In:
			return nil, nil, fmt.Errorf("module %q: A has %d values, but (rank, in) = (%d, %d) needs %d", m.Module, len(m.A), m.Rank, m.In, m.Rank*m.In)
		case len(m.B) != m.Out*m.Rank:
			return nil, nil, fmt.Errorf("module %q: B has %d values, but (out, rank) = (%d, %d) needs %d", m.Module, len(m.B), m.Out, m.Rank, m.Out*m.Rank)
		case m.Rank != cfg.RankFor(m.Module):
			return nil, nil, fmt.Errorf("module %q: rank %d, but the config gives rank %d", m.Module, m.Rank, cfg.RankFor(m.Module))
		}

		b := m.B
		groups := 0
		switch {
		case arch != "llama":
		case kind == "attn_q":
			groups = heads
		case kind == "attn_k":
			groups = kvHeads
		}
		if groups > 0 {
			if m.Out%(2*groups) != 0 {
				return nil, nil, fmt.Errorf("module %q: %d output rows do not split into %d heads of an even size, which RoPE needs", m.Module, m.Out, groups)
			}
			b = ggufRoPEPermute(b, m.Out, m.Rank, groups)
		}

		s := cfg.Scale(m.Module)
		have := ggufLlamaScale(alpha, m.Rank)
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, nil, fmt.Errorf("module %q: scale %v is not a number", m.Module, s)
		}
		// PEFT multiplies float32 activations by s rounded to float32, so
		// when that equals llama.cpp's scale B needs no change at all.
		if float32(s) != have {
			if have == 0 {
				return nil, nil, fmt.Errorf("lora_alpha %v / rank %d underflows llama.cpp's float32 scale", cfg.LoraAlpha, m.Rank)
			}
			f := s / float64(have)
			folded := make([]float32, len(b))
			for i, v := range b {
				folded[i] = float32(float64(v) * f)
				if math.IsInf(float64(folded[i]), 0) && !math.IsInf(float64(v), 0) {
					return nil, nil, fmt.Errorf("module %q: folding its scale %v into lora_B (×%v against llama.cpp's %v) overflows float32", m.Module, s, f, have)
				}
			}
			b = folded
		}

		entries = append(entries, entry{
			block: block,
			kind:  slices.Index(tgt.order, kind),
			a:     ggufTensorData{name + ".lora_a", []uint64{uint64(m.In), uint64(m.Rank)}, GGMLTypeF32, ggufF32Bytes(m.A)},
			b:     ggufTensorData{name + ".lora_b", []uint64{uint64(m.Rank), uint64(m.Out)}, GGMLTypeF32, ggufF32Bytes(b)},
		})
	}
	slices.SortFunc(entries, func(x, y entry) int {
		if x.block != y.block {
			return x.block - y.block
		}
		return x.kind - y.kind
	})
	tensors := make([]ggufTensorData, 0, 2*len(entries))
	for _, e := range entries {
		tensors = append(tensors, e.a, e.b)
	}
	kvs := []ggufKV{
		{"general.architecture", arch},
		{"general.type", "adapter"},
		{"adapter.type", "lora"},
		{"adapter.lora.alpha", alpha},
		{"general.quantization_version", uint32(ggufQuantVersion)},
	}
	return kvs, tensors, nil
}

func ggufF32Bytes(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}
