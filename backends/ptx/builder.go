package ptx

import (
	"fmt"
	"math"
	"strings"
)

// Type is a PTX instruction or parameter type.
type Type uint8

const (
	Pred Type = iota
	B16
	B32
	B64
	U32
	U64
	S32
	F32
	F64
	BF16
)

var typeNames = [...]string{Pred: "pred", B16: "b16", B32: "b32", B64: "b64", U32: "u32", U64: "u64", S32: "s32", F32: "f32", F64: "f64", BF16: "bf16"}

func (t Type) String() string { return typeNames[t] }

// Size is the type's width in bytes (a predicate counts as 1).
func (t Type) Size() int {
	switch t {
	case B16, BF16:
		return 2
	case B32, U32, S32, F32:
		return 4
	case B64, U64, F64:
		return 8
	}
	return 1
}

// class is a register class: one register bank per width and kind, as
// ptxas names them in its own output.
type class uint8

const (
	classP  class = iota // predicates
	classH               // 16-bit
	classR               // 32-bit integers and bit patterns
	classRD              // 64-bit integers and addresses
	classF               // f32
	classFD              // f64
	nClasses
)

var classPrefix = [nClasses]string{"%p", "%h", "%r", "%rd", "%f", "%fd"}
var classDecl = [nClasses]Type{Pred, B16, B32, B64, F32, F64}

func classOf(t Type) class {
	switch t {
	case Pred:
		return classP
	case B16, BF16:
		return classH
	case B32, U32, S32:
		return classR
	case B64, U64:
		return classRD
	case F32:
		return classF
	}
	return classFD
}

// Operand is anything an instruction reads or writes.
type Operand interface{ text() string }

// Reg is a virtual register of one class.
type Reg struct {
	c class
	n int
}

func (r Reg) text() string { return fmt.Sprintf("%s%d", classPrefix[r.c], r.n) }

// Special is a special register (%tid.x, %ctaid.y, …), read as u32.
type Special string

func (s Special) text() string { return string(s) }

const (
	TidX   Special = "%tid.x"
	TidY   Special = "%tid.y"
	CtaX   Special = "%ctaid.x"
	CtaY   Special = "%ctaid.y"
	NtidX  Special = "%ntid.x"
	NctaX  Special = "%nctaid.x"
	LaneID Special = "%laneid"
)

// Int is an integer immediate.
type Int int64

func (i Int) text() string { return fmt.Sprint(int64(i)) }

// F32Imm is a float32 immediate, written as its exact bit pattern.
type F32Imm float32

func (f F32Imm) text() string { return fmt.Sprintf("0f%08X", math.Float32bits(float32(f))) }

// F64Imm is a float64 immediate, written as its exact bit pattern.
type F64Imm float64

func (f F64Imm) text() string { return fmt.Sprintf("0d%016X", math.Float64bits(float64(f))) }

// Addr is a memory operand: a 64-bit register or a symbol plus a byte offset.
type Addr struct {
	Base Operand
	Off  int
}

func (a Addr) text() string {
	if a.Off == 0 {
		return "[" + a.Base.text() + "]"
	}
	return fmt.Sprintf("[%s+%d]", a.Base.text(), a.Off)
}

// Sym is a named symbol (a parameter or a shared array).
type Sym string

func (s Sym) text() string { return string(s) }

// Vec is a vector operand {a, b, …} (mma fragments).
type Vec []Reg

func (v Vec) text() string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = r.text()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Label is a branch target.
type Label string

func (l Label) text() string { return string(l) }

// Param is a kernel parameter.
type Param struct {
	Name string
	Type Type
}

// Func builds one kernel (.visible .entry).
type Func struct {
	Name    string
	Params  []Param
	Doc     string
	regs    [nClasses]int
	shared  []string
	body    []string
	labels  int
	maxNtid int
	err     error
}

// NewFunc starts a kernel with the given launch block size (.maxntid).
func NewFunc(name, doc string, threads int) *Func {
	return &Func{Name: name, Doc: doc, maxNtid: threads}
}

// fail records the first builder error; Text reports it.
func (f *Func) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("ptx: %s: %s", f.Name, fmt.Sprintf(format, args...))
	}
}

// Param declares a parameter and loads it into a fresh register.
func (f *Func) Param(name string, t Type) Reg {
	f.Params = append(f.Params, Param{name, t})
	r := f.Reg(t)
	f.emit("", "ld.param."+t.String(), r, Addr{Base: Sym(f.Name + "_" + name)})
	return r
}

// Reg allocates a register for values of type t.
func (f *Func) Reg(t Type) Reg {
	c := classOf(t)
	f.regs[c]++
	return Reg{c, f.regs[c]}
}

// Regs allocates n registers.
func (f *Func) Regs(t Type, n int) []Reg {
	rs := make([]Reg, n)
	for i := range rs {
		rs[i] = f.Reg(t)
	}
	return rs
}

// Shared declares a shared array of n elements of t and returns its symbol.
func (f *Func) Shared(name string, t Type, n int) Sym {
	f.shared = append(f.shared, fmt.Sprintf(".shared .align 16 .%s %s_%s[%d];", t, f.Name, name, n))
	return Sym(f.Name + "_" + name)
}

// NewLabel returns a fresh label.
func (f *Func) NewLabel(hint string) Label {
	f.labels++
	return Label(fmt.Sprintf("$L_%s_%d", hint, f.labels))
}

// Place puts a label at the current position.
func (f *Func) Place(l Label) { f.body = append(f.body, string(l)+":") }

// Comment adds a comment line to the body.
func (f *Func) Comment(s string) { f.body = append(f.body, "\t// "+s) }

// check verifies that register operands fit the instruction's type.
func (f *Func) check(op string, t Type, ops ...Operand) {
	for _, o := range ops {
		if r, ok := o.(Reg); ok && r.c != classOf(t) {
			f.fail("%s: operand %s is not a %s register", op, r.text(), t)
		}
	}
}

func (f *Func) emit(guard, op string, ops ...Operand) {
	parts := make([]string, len(ops))
	for i, o := range ops {
		if o == nil {
			f.fail("%s: nil operand %d", op, i)
			return
		}
		parts[i] = o.text()
	}
	line := "\t" + guard + op
	if len(parts) > 0 {
		line += " " + strings.Join(parts, ", ")
	}
	f.body = append(f.body, line+";")
}

// If returns an emitter whose instructions run only where p holds (or,
// with not, where it does not).
func (f *Func) If(p Reg, not bool) Emitter {
	if p.c != classP {
		f.fail("guard %s is not a predicate", p.text())
	}
	g := "@" + p.text() + " "
	if not {
		g = "@!" + p.text() + " "
	}
	return Emitter{f, g}
}

// E is the unguarded emitter.
func (f *Func) E() Emitter { return Emitter{f, ""} }

// Emitter writes instructions, optionally under a predicate guard.
type Emitter struct {
	f     *Func
	guard string
}

// Op emits an instruction whose operands all have type t: op.t d, a, ….
func (e Emitter) Op(op string, t Type, ops ...Operand) {
	e.f.check(op, t, ops...)
	e.f.emit(e.guard, op+"."+t.String(), ops...)
}

// Raw emits an instruction with a complete opcode and no type checks
// (conversions, mma, shuffles, whose operands mix types).
func (e Emitter) Raw(op string, ops ...Operand) { e.f.emit(e.guard, op, ops...) }

func (e Emitter) Mov(t Type, d, a Operand) { e.Op("mov", t, d, a) }

// Add and Sub round to nearest on floats (.rn, which ptxas never contracts
// into an fma with a neighbouring mul).
func (e Emitter) Add(t Type, d, a, b Operand) { e.Op(rn("add", t), t, d, a, b) }
func (e Emitter) Sub(t Type, d, a, b Operand) { e.Op(rn("sub", t), t, d, a, b) }

func rn(op string, t Type) string {
	if t == F32 || t == F64 {
		return op + ".rn"
	}
	return op
}
func (e Emitter) Max(t Type, d, a, b Operand)    { e.Op("max", t, d, a, b) }
func (e Emitter) Min(t Type, d, a, b Operand)    { e.Op("min", t, d, a, b) }
func (e Emitter) And(t Type, d, a, b Operand)    { e.Op("and", t, d, a, b) }
func (e Emitter) Shr(t Type, d, a, b Operand)    { e.Op("shr", t, d, a, b) }
func (e Emitter) Fma(t Type, d, a, b, c Operand) { e.Op("fma.rn", t, d, a, b, c) }

// Mul is mul.lo for integers, mul.rn for floats.
func (e Emitter) Mul(t Type, d, a, b Operand) {
	if t == F32 || t == F64 {
		e.Op("mul.rn", t, d, a, b)
		return
	}
	e.Op("mul.lo", t, d, a, b)
}

// MadLo is d = a·b + c (low half) for integers.
func (e Emitter) MadLo(t Type, d, a, b, c Operand) { e.Op("mad.lo", t, d, a, b, c) }

// Div is the IEEE division.
func (e Emitter) Div(t Type, d, a, b Operand) { e.Op("div.rn", t, d, a, b) }

// Sqrt is the IEEE square root.
func (e Emitter) Sqrt(t Type, d, a Operand) { e.Op("sqrt.rn", t, d, a) }

// Ld loads t from space (global, shared, param).
func (e Emitter) Ld(space string, t Type, d Reg, a Addr) {
	e.f.check("ld", t, d)
	e.f.emit(e.guard, "ld."+space+"."+t.String(), d, a)
}

// St stores t to space.
func (e Emitter) St(space string, t Type, a Addr, v Operand) {
	e.f.check("st", t, v)
	e.f.emit(e.guard, "st."+space+"."+t.String(), a, v)
}

// Setp sets p to a cmp b (cmp: lt, ge, ne, …).
func (e Emitter) Setp(cmp string, t Type, p Reg, a, b Operand) {
	if p.c != classP {
		e.f.fail("setp: %s is not a predicate", p.text())
	}
	e.f.check("setp", t, a, b)
	e.f.emit(e.guard, "setp."+cmp+"."+t.String(), p, a, b)
}

// Selp is d = p ? a : b.
func (e Emitter) Selp(t Type, d, a, b Operand, p Reg) {
	e.f.check("selp", t, d, a, b)
	e.f.emit(e.guard, "selp."+t.String(), d, a, b, p)
}

// Bra branches to l.
func (e Emitter) Bra(l Label) { e.f.emit(e.guard, "bra.uni", l) }

// Ret ends the thread.
func (e Emitter) Ret() { e.f.emit(e.guard, "ret") }

// Bar is a block-wide barrier.
func (e Emitter) Bar() { e.f.emit(e.guard, "bar.sync", Int(0)) }

// Special reads a special register into a fresh u32 register.
func (f *Func) Special(s Special) Reg {
	r := f.Reg(U32)
	f.E().Mov(U32, r, s)
	return r
}

// asciiDoc writes the notation of the kernels' docs in ASCII: ptxas
// accepts nothing else, comments included.
var asciiDoc = strings.NewReplacer("·", "*", "⊙", ".*", "′", "'", "σ", "sigmoid", "ᵀ", "^T", "−", "-",
	"←", "<-", "β₁", "beta1", "β₂", "beta2", "ᵗ", "^t", "√", "sqrt", "ε", "eps", "⌈", "ceil(", "⌉", ")", "×", "x", "²", "^2")

// Text renders the kernel.
func (f *Func) Text() (string, error) {
	if f.err != nil {
		return "", f.err
	}
	var b strings.Builder
	doc := asciiDoc.Replace(strings.TrimSpace(f.Doc))
	for _, r := range doc {
		if r > 127 {
			return "", fmt.Errorf("ptx: %s: doc has %q, which ptxas rejects (PTX is ASCII)", f.Name, r)
		}
	}
	for _, l := range strings.Split(doc, "\n") {
		fmt.Fprintf(&b, "// %s\n", l)
	}
	fmt.Fprintf(&b, ".visible .entry %s(\n", f.Name)
	for i, p := range f.Params {
		sep := ","
		if i == len(f.Params)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "\t.param .%s %s_%s%s\n", p.Type, f.Name, p.Name, sep)
	}
	fmt.Fprintf(&b, ")\n.maxntid %d, 1, 1\n{\n", f.maxNtid)
	for c := range nClasses {
		if n := f.regs[c]; n > 0 {
			fmt.Fprintf(&b, "\t.reg .%s %s<%d>;\n", classDecl[c], classPrefix[c], n+1)
		}
	}
	for _, s := range f.shared {
		fmt.Fprintf(&b, "\t%s\n", s)
	}
	for _, l := range f.body {
		b.WriteString(l + "\n")
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// Common address arithmetic.

// Index returns base + 4·i (or size·i) as a 64-bit address register.
func (f *Func) Index(base Reg, i Operand, size int) Reg {
	off := f.Reg(U64)
	f.E().Raw("mul.wide.u32", off, i, Int(size))
	a := f.Reg(U64)
	f.E().Add(U64, a, base, off)
	return a
}

// GlobalIndex returns blockIdx.x·blockDim.x + threadIdx.x and the grid
// stride blockDim.x·gridDim.x.
func (f *Func) GlobalIndex() (i, stride Reg) {
	tid, cta, ntid, ncta := f.Special(TidX), f.Special(CtaX), f.Special(NtidX), f.Special(NctaX)
	i, stride = f.Reg(U32), f.Reg(U32)
	f.E().MadLo(U32, i, cta, ntid, tid)
	f.E().Mul(U32, stride, ntid, ncta)
	return i, stride
}
