package graph

import (
	"math"
	"strconv"
	"strings"
)

// DType is the element type of a tensor.
type DType uint8

//go:generate go tool stringer -type=DType,Role,Init,Mode -linecomment -output=names_string.go

const (
	Invalid DType = iota // invalid
	F32                  // f32
	BF16                 // bf16
	F16                  // f16
	I32                  // i32
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// Shape lists the extent of each dimension, outermost first. A nil Shape is
// unknown (not yet inferred); an empty non-nil Shape is a scalar.
type Shape []int

// Numel is the number of elements.
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// MaxBytes bounds one tensor and the total memory of one run: 2⁴⁷ bytes
// (128 TiB), the user address space of amd64 and arm64 with 4-level page
// tables. Nothing larger can be allocated, and sums of a few thousand such
// sizes stay far from int64 overflow.
const MaxBytes = 1 << 47

// CheckedNumel is Numel, or false when an extent is negative or the product
// overflows int64.
func (s Shape) CheckedNumel() (int64, bool) {
	n := int64(1)
	for _, d := range s {
		var ok bool
		if n, ok = MulInt64(n, int64(d)); !ok || d < 0 {
			return 0, false
		}
	}
	return n, true
}

// CheckedBytes is the storage size of n elements of dt, or false when it is
// over MaxBytes (or the shape is invalid).
func (s Shape) CheckedBytes(dt DType) (int64, bool) {
	n, ok := s.CheckedNumel()
	if !ok {
		return 0, false
	}
	b, ok := MulInt64(n, int64(max(dt.Size(), 1)))
	return b, ok && b <= MaxBytes
}

// AddInt64 is a+b for non-negative a and b, or false on overflow.
func AddInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}

// MulInt64 is a·b for non-negative a and b, or false on overflow.
func MulInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || (a != 0 && b > math.MaxInt64/a) {
		return 0, false
	}
	return a * b, true
}

// Equal reports whether s and t have the same rank and extents.
func (s Shape) Equal(t Shape) bool {
	if len(s) != len(t) || (s == nil) != (t == nil) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

// Last is the innermost extent (1 for a scalar).
func (s Shape) Last() int {
	if len(s) == 0 {
		return 1
	}
	return s[len(s)-1]
}

// Rows is the product of all but the innermost extent.
func (s Shape) Rows() int {
	if len(s) == 0 {
		return 1
	}
	return s[:len(s)-1].Numel()
}

// WithLast returns a copy of s whose innermost extent is n.
func (s Shape) WithLast(n int) Shape {
	t := append(Shape{}, s...)
	if len(t) == 0 {
		return Shape{n}
	}
	t[len(t)-1] = n
	return t
}

func (s Shape) String() string {
	if s == nil {
		return "[?]"
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteByte(']')
	return b.String()
}

// Role says which file a parameter belongs to.
type Role uint8

const (
	// Base parameters come from the pretrained model file.
	Base Role = iota // base
	// LoRA parameters are the A and B matrices of an adapter.
	LoRA // lora
)

// Init says how a parameter is initialised when it is not loaded from a file.
type Init uint8

// Base weights use InitDefault, normal(0, 0.02); norm gains InitOnes; biases
// InitZeros. LoRA A uses InitKaiming (kaiming-uniform with a=√5, bound
// 1/√in, PEFT's default) or InitGaussian (normal(0, 1/r)); LoRA B uses
// InitZeros, so an adapted model starts equal to its base, or in tests
// InitSmallNormal, so the branch is visible.
const (
	InitDefault     Init = iota // default
	InitKaiming                 // kaiming-uniform
	InitZeros                   // zeros
	InitGaussian                // gaussian
	InitOnes                    // ones
	InitSmallNormal             // small-normal
)

// Param is a named parameter tensor. Names follow Hugging Face so that files
// interoperate: "transformer.h.0.attn.c_attn.weight", or for an adapter
// "transformer.h.0.attn.c_attn.lora_A.weight".
type Param struct {
	Name      string
	Role      Role
	Trainable bool
	Shape     Shape
	DType     DType
	Init      Init
	// Module is the Hugging Face module the parameter belongs to
	// ("transformer.h.0.attn.c_attn"); for LoRA parameters, the adapted module.
	Module string
}

// Bytes is the parameter's storage size.
func (p *Param) Bytes() int64 { return int64(p.Shape.Numel()) * int64(p.DType.Size()) }

// Value is a tensor: a parameter, a graph input, or the output of a node.
type Value struct {
	ID    int
	Name  string // optional, for dumps
	Shape Shape
	DType DType
	// Param is set for parameter values.
	Param *Param
	// Input is set for values fed at run time (token ids, positions, targets).
	Input bool
	// Producer is the node that computes the value; nil for params and inputs.
	Producer *Node
	// GradOf is set on the gradient of a parameter.
	GradOf *Param
}

// Bytes is the value's storage size (0 while the shape is unknown).
func (v *Value) Bytes() int64 {
	if v.Shape == nil {
		return 0
	}
	return int64(v.Shape.Numel()) * int64(v.DType.Size())
}

// Ref is how dumps name the value.
func (v *Value) Ref() string {
	switch {
	case v.Param != nil:
		return v.Param.Name
	case v.Name != "":
		return "%" + v.Name
	}
	return "%" + strconv.Itoa(v.ID)
}

// Attrs are the static attributes of a node. Each op reads the ones its table
// entry names; the rest stay zero.
type Attrs struct {
	Eps     float64 // layernorm, rmsnorm
	Offset  float64 // rmsnorm: the gain is Offset + weight (Gemma: 1; 0 otherwise)
	Heads   int     // attention, rope: query heads; rmsnorm: normalise each of Heads equal parts of a row (0: the whole row)
	KVHeads int     // attention: key/value heads (grouped-query when < Heads)
	Window  int     // attention: sliding window, the keys t−Window+1..t a query t sees (0: all of 0..t)
	// AttnScale multiplies attention scores (0: 1/√head size); Softcap > 0
	// soft-caps them, or on a softcap node its input, as Softcap·tanh(x/Softcap) (Gemma 2).
	AttnScale float64
	Softcap   float64
	Theta     float64     // rope base
	Rope      RoPEScaling // rope: scaling of the frequencies (none when Kind is "")
	Scale     float64     // lora: alpha/r (or alpha/√r with rsLoRA); scale: the factor
	Dropout   float64     // lora: dropout probability on the branch input
	Seed      uint64      // lora: dropout stream, fixed per module
	Conv1D    bool        // linear: weight stored [in, out] (GPT-2 Conv1D)
	Sizes     []int       // split: extents of the innermost dimension
	Value     float64     // fill
	Shape     Shape       // fill
}

// RoPEScaling is transformers' rope_parameters beyond rope_theta: Kind ""
// (none), "linear" (Factor) or "llama3" (Factor, LowFreq, HighFreq,
// OrigContext).
type RoPEScaling struct {
	Kind              string
	Factor            float64
	LowFreq, HighFreq float64
	OrigContext       int
}

// Node is one operation.
type Node struct {
	ID   int
	Op   Op
	In   []*Value
	Out  []*Value
	Attr Attrs
	// Module is the Hugging Face module the node belongs to, if any.
	Module string
}

// String prints the node as the text dump does, on one line.
func (n *Node) String() string { return nodeLine(n) }
