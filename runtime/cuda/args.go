package cuda

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// ParamType is the type of one kernel parameter as the PTX declares it.
type ParamType uint8

const (
	ParamU64 ParamType = iota + 1 // pointers (Ptr) and 64-bit integers
	ParamU32
	ParamS32
	ParamF32
	ParamF64
)

func (t ParamType) String() string {
	return map[ParamType]string{ParamU64: "u64", ParamU32: "u32", ParamS32: "s32", ParamF32: "f32", ParamF64: "f64"}[t]
}

// Signature is an entry's parameters, in order.
type Signature struct {
	Names []string
	Types []ParamType
}

// ParseSignatures reads each .entry and its .param lines from PTX text: the
// host packs launches against what the module itself declares.
func ParseSignatures(ptx []byte) (map[string]Signature, error) {
	sigs := map[string]Signature{}
	sc := bufio.NewScanner(bytes.NewReader(ptx))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	cur := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, ".visible .entry "); ok {
			name, _, found := strings.Cut(rest, "(")
			if !found || name == "" {
				return nil, fmt.Errorf("cuda: malformed entry line %q", line)
			}
			cur = name
			sigs[cur] = Signature{}
			continue
		}
		if cur == "" {
			continue
		}
		if strings.HasPrefix(line, ")") || strings.HasPrefix(line, "{") {
			cur = ""
			continue
		}
		if rest, ok := strings.CutPrefix(line, ".param ."); ok {
			f := strings.Fields(strings.TrimSuffix(rest, ","))
			if len(f) != 2 {
				return nil, fmt.Errorf("cuda: %s: malformed parameter %q", cur, line)
			}
			var t ParamType
			switch f[0] {
			case "u64", "b64", "s64":
				t = ParamU64
			case "u32", "b32":
				t = ParamU32
			case "s32":
				t = ParamS32
			case "f32":
				t = ParamF32
			case "f64":
				t = ParamF64
			default:
				return nil, fmt.Errorf("cuda: %s: unsupported parameter type .%s", cur, f[0])
			}
			s := sigs[cur]
			s.Names = append(s.Names, strings.TrimPrefix(f[1], cur+"_"))
			s.Types = append(s.Types, t)
			sigs[cur] = s
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("cuda: no .entry in the module")
	}
	return sigs, nil
}

// Ptr is a device address (CUdeviceptr). The zero Ptr is the null pointer
// kernels read as "absent" (no bias, no mask).
type Ptr uint64

// Packed is a launch's kernelParams array: one 8-byte slot per argument,
// holding the value in its low bytes (little-endian), and the array of
// pointers to the slots that cuLaunchKernel reads.
type Packed struct {
	slots []uint64
	ptrs  []unsafe.Pointer
}

// Pack checks args against the signature and packs them. Accepted Go
// types: Ptr or uint64 for u64; uint32, or int in [0, 2³²), for u32;
// int32, or int in the int32 range, for s32; float32 for f32; float64 for
// f64. Anything else is an error naming the parameter.
func Pack(entry string, sig Signature, args ...any) (*Packed, error) {
	if len(args) != len(sig.Types) {
		return nil, fmt.Errorf("cuda: %s takes %d arguments (%s), got %d", entry, len(sig.Types), strings.Join(sig.Names, ", "), len(args))
	}
	p := &Packed{slots: make([]uint64, len(args)), ptrs: make([]unsafe.Pointer, len(args))}
	for i, a := range args {
		bad := func() error {
			return fmt.Errorf("cuda: %s argument %d (%s) wants %s, got %T(%v)", entry, i, sig.Names[i], sig.Types[i], a, a)
		}
		var v uint64
		switch sig.Types[i] {
		case ParamU64:
			switch x := a.(type) {
			case Ptr:
				v = uint64(x)
			case uint64:
				v = x
			default:
				return nil, bad()
			}
		case ParamU32:
			switch x := a.(type) {
			case uint32:
				v = uint64(x)
			case int:
				if x < 0 || uint64(x) > math.MaxUint32 {
					return nil, bad()
				}
				v = uint64(x)
			default:
				return nil, bad()
			}
		case ParamS32:
			switch x := a.(type) {
			case int32:
				v = uint64(uint32(x))
			case int:
				if int64(x) < math.MinInt32 || int64(x) > math.MaxInt32 {
					return nil, bad()
				}
				v = uint64(uint32(int32(x)))
			default:
				return nil, bad()
			}
		case ParamF32:
			x, ok := a.(float32)
			if !ok {
				return nil, bad()
			}
			v = uint64(math.Float32bits(x))
		case ParamF64:
			x, ok := a.(float64)
			if !ok {
				return nil, bad()
			}
			v = math.Float64bits(x)
		default:
			return nil, bad()
		}
		p.slots[i] = v
		p.ptrs[i] = unsafe.Pointer(&p.slots[i])
	}
	return p, nil
}

// params is the void** cuLaunchKernel takes (nil for a kernel without
// parameters).
func (p *Packed) params() unsafe.Pointer {
	if len(p.ptrs) == 0 {
		return nil
	}
	return unsafe.Pointer(&p.ptrs[0])
}
