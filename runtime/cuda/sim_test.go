package cuda

// A PTX interpreter behind the driver table, for tests on machines without
// a GPU: simDriver implements the api struct (memory, modules, launches) by
// interpreting the module text — the subset of PTX backends/ptx emits — so
// the kernels, the argument packing and the launch helpers run end to end
// against the CPU reference. It is a semantic model, not a timing one:
// threads run one at a time between collective operations (bar.sync per
// block; shfl.sync, mma.sync and ldmatrix per warp), which is what those
// operations guarantee, and each warp runs ahead of the others up to the
// block barrier; cp.async lands in shared memory only at the wait that
// completes its group. f32 arithmetic rounds as IEEE float32; ex2/lg2.approx are
// computed exactly (the hardware is within 2 ulp); mma accumulates in
// float64. An opcode it does not know fails the launch, so a new kernel
// instruction needs a line here before its tests run.

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"
)

type simOperandKind uint8

const (
	opReg simOperandKind = iota
	opImm
	opSpecial
	opSym
	opAddr
	opVec
	opLabel
)

type simOperand struct {
	kind simOperandKind
	reg  int
	imm  uint64
	name string // special, symbol, label
	base *simOperand
	off  int64
	vec  []int
}

type simInst struct {
	guard int // register index, or -1
	neg   bool
	op    string
	ops   []simOperand
	line  string
}

type simEntry struct {
	name   string
	params []string // full symbol names, in order
	sig    Signature
	shared map[string]int // symbol → offset in the block's shared memory
	smem   int
	nregs  int
	code   []simInst
	labels map[string]int
}

func parseSimModule(ptx string) (map[string]*simEntry, error) {
	entries := map[string]*simEntry{}
	sigs, err := ParseSignatures([]byte(ptx))
	if err != nil {
		return nil, err
	}
	var e *simEntry
	regs := map[string]int{}
	inBody := false
	for _, raw := range strings.Split(ptx, "\n") {
		line := strings.TrimSpace(raw)
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, ".visible .entry "):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, ".visible .entry "), "(")
			e = &simEntry{name: name, sig: sigs[name], shared: map[string]int{}, labels: map[string]int{}}
			entries[name] = e
			regs = map[string]int{}
		case e == nil:
		case strings.HasPrefix(line, ".param "):
			f := strings.Fields(strings.TrimSuffix(line, ","))
			e.params = append(e.params, f[len(f)-1])
		case line == "{":
			inBody = true
		case line == "}":
			inBody = false
			e.nregs = len(regs)
		case !inBody:
		case strings.HasPrefix(line, ".reg "):
		case strings.HasPrefix(line, ".shared "):
			f := strings.Fields(strings.TrimSuffix(line, ";"))
			decl := f[len(f)-1]
			name, n, _ := strings.Cut(strings.TrimSuffix(decl, "]"), "[")
			count, err := strconv.Atoi(n)
			if err != nil {
				return nil, fmt.Errorf("sim: %s: %q", e.name, line)
			}
			size := 4
			if strings.Contains(line, ".f64") || strings.Contains(line, ".u64") {
				size = 8
			}
			e.smem = (e.smem + 15) &^ 15
			e.shared[name] = e.smem
			e.smem += count * size
		case strings.HasSuffix(line, ":"):
			e.labels[strings.TrimSuffix(line, ":")] = len(e.code)
		default:
			in, err := parseSimInst(line, regs)
			if err != nil {
				return nil, fmt.Errorf("sim: %s: %w", e.name, err)
			}
			e.code = append(e.code, in)
		}
	}
	return entries, nil
}

func parseSimInst(line string, regs map[string]int) (simInst, error) {
	in := simInst{guard: -1, line: line}
	s := strings.TrimSuffix(line, ";")
	if strings.HasPrefix(s, "@") {
		g, rest, _ := strings.Cut(s[1:], " ")
		if strings.HasPrefix(g, "!") {
			in.neg, g = true, g[1:]
		}
		in.guard = simReg(regs, g)
		s = rest
	}
	op, rest, _ := strings.Cut(s, " ")
	in.op = op
	rest = strings.TrimSpace(rest)
	// Split operands on commas outside braces and brackets.
	var parts []string
	depth, start := 0, 0
	for i, c := range rest {
		switch c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(rest[start:i]))
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(rest[start:]) != "" {
		parts = append(parts, strings.TrimSpace(rest[start:]))
	}
	for _, p := range parts {
		o, err := parseSimOperand(p, regs)
		if err != nil {
			return in, fmt.Errorf("%q: %w", line, err)
		}
		in.ops = append(in.ops, o)
	}
	return in, nil
}

func simReg(regs map[string]int, name string) int {
	if i, ok := regs[name]; ok {
		return i
	}
	regs[name] = len(regs)
	return regs[name]
}

func parseSimOperand(p string, regs map[string]int) (simOperand, error) {
	switch {
	case strings.HasPrefix(p, "{"):
		var v []int
		for _, r := range strings.Split(strings.Trim(p, "{}"), ",") {
			v = append(v, simReg(regs, strings.TrimSpace(r)))
		}
		return simOperand{kind: opVec, vec: v}, nil
	case strings.HasPrefix(p, "["):
		inner := strings.Trim(p, "[]")
		off := int64(0)
		if b, o, ok := strings.Cut(inner, "+"); ok {
			n, err := strconv.ParseInt(o, 10, 64)
			if err != nil {
				return simOperand{}, err
			}
			inner, off = b, n
		}
		base, err := parseSimOperand(inner, regs)
		if err != nil {
			return simOperand{}, err
		}
		return simOperand{kind: opAddr, base: &base, off: off}, nil
	case strings.HasPrefix(p, "%tid") || strings.HasPrefix(p, "%ctaid") || strings.HasPrefix(p, "%ntid") || strings.HasPrefix(p, "%nctaid") || p == "%laneid":
		return simOperand{kind: opSpecial, name: p}, nil
	case strings.HasPrefix(p, "%"):
		return simOperand{kind: opReg, reg: simReg(regs, p)}, nil
	case strings.HasPrefix(p, "0f"):
		v, err := strconv.ParseUint(p[2:], 16, 32)
		return simOperand{kind: opImm, imm: v}, err
	case strings.HasPrefix(p, "0d"):
		v, err := strconv.ParseUint(p[2:], 16, 64)
		return simOperand{kind: opImm, imm: v}, err
	case strings.HasPrefix(p, "0x"):
		v, err := strconv.ParseUint(p[2:], 16, 64)
		return simOperand{kind: opImm, imm: v}, err
	case strings.HasPrefix(p, "$"):
		return simOperand{kind: opLabel, name: p}, nil
	case p[0] == '-' || (p[0] >= '0' && p[0] <= '9'):
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			u, err2 := strconv.ParseUint(p, 10, 64)
			return simOperand{kind: opImm, imm: u}, err2
		}
		return simOperand{kind: opImm, imm: uint64(v)}, nil
	}
	return simOperand{kind: opSym, name: p}, nil
}

// simDevice is the simulated GPU: one flat global memory (address 0 is
// never allocated, so the null pointer stays null) and loaded modules.
type simDevice struct {
	mem     []byte
	modules map[uintptr]map[string]*simEntry
	funcs   []*simEntry
	// Instructions counts what the launches executed.
	Instructions int
	// Launched counts the launches per entry.
	Launched map[string]int
	// SharedConflicts counts the extra shared-memory wavefronts of
	// ldmatrix and cp.async (bank conflicts): a 16-byte-per-thread access
	// is served 8 threads (128 bytes) per phase, and a phase takes as many
	// wavefronts as the most distinct 16-byte rows falling in one group of
	// four banks.
	SharedConflicts struct{ Ldmatrix, CpAsync int }
}

// conflicts returns the extra wavefronts of one phase of 16-byte
// accesses (identical addresses are one broadcast).
func conflicts(addrs []uint64) int {
	rows := map[uint64]map[uint64]bool{}
	worst := 1
	for _, a := range addrs {
		g := a / 16 % 8
		if rows[g] == nil {
			rows[g] = map[uint64]bool{}
		}
		rows[g][a/16] = true
		worst = max(worst, len(rows[g]))
	}
	return worst - 1
}

type simThread struct {
	regs     []uint64
	pc       int
	done     bool
	waiting  bool // at a collective (bar, shfl, mma, ldmatrix)
	tid, cta [3]uint32
	// cp.async copies issued and not yet committed, and the committed
	// groups not yet waited for, oldest first. A copy reads global memory
	// when issued and writes shared memory only when a wait completes its
	// group, so a kernel that reads its tile before waiting (or before the
	// barrier that follows the other threads' waits) reads stale data.
	pending []simCopy
	groups  [][]simCopy
	// cpCount counts the thread's cp.async executions, so the lanes of a
	// warp executing the same one can be matched for conflict counting.
	cpCount int
}

// simCopy is one cp.async in flight: the bytes read and where they land.
type simCopy struct {
	dst  uint64 // shared address
	data []byte
}

var errSimIllegal = fmt.Errorf("illegal address")

func (d *simDevice) global(addr uint64, n int) ([]byte, error) {
	if addr == 0 || addr+uint64(n) > uint64(len(d.mem)) {
		return nil, fmt.Errorf("%w %#x (+%d)", errSimIllegal, addr, n)
	}
	return d.mem[addr : addr+uint64(n)], nil
}

// launch runs every block of the grid.
func (d *simDevice) launch(e *simEntry, params []uint64, grid, block [3]uint32) error {
	if block[1] != 1 || block[2] != 1 || grid[2] != 1 {
		return fmt.Errorf("sim: %s: only 1-D blocks and 2-D grids", e.name)
	}
	for cy := range grid[1] {
		for cx := range grid[0] {
			if err := d.runBlock(e, params, [3]uint32{cx, cy, 0}, grid, block); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *simDevice) runBlock(e *simEntry, params []uint64, cta, grid, block [3]uint32) error {
	n := int(block[0])
	smem := make([]byte, e.smem)
	threads := make([]*simThread, n)
	for i := range threads {
		threads[i] = &simThread{regs: make([]uint64, e.nregs), tid: [3]uint32{uint32(i), 0, 0}, cta: cta}
	}
	ctx := &simCtx{d: d, e: e, params: params, smem: smem, grid: grid, block: block}
	for {
		progressed := false
		// Each warp in turn runs as far as it can: its lanes to their next
		// collective, the warp collective when every live lane is at it,
		// and on, until it ends or waits at the block barrier. A warp thus
		// runs ahead of the others up to the barrier, as the hardware may
		// let it, so a missing barrier (or a read of another warp's
		// cp.async copies before one) reads stale shared memory.
		for w := 0; w < n; w += 32 {
			lanes := threads[w:min(w+32, n)]
			for {
				for _, t := range lanes {
					if t.done || t.waiting {
						continue
					}
					if err := ctx.run(t); err != nil {
						return fmt.Errorf("%s block %v thread %d: %w", e.name, cta, t.tid[0], err)
					}
					progressed = true
				}
				ok, err := ctx.warpCollective(lanes)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				progressed = true
			}
		}
		// The block barrier.
		all, live := true, 0
		for _, t := range threads {
			if t.done {
				continue
			}
			live++
			all = all && t.waiting && e.code[t.pc].op == "bar.sync"
		}
		if live == 0 {
			return nil
		}
		if all {
			for _, t := range threads {
				if !t.done {
					t.waiting = false
					t.pc++
				}
			}
			progressed = true
		}
		if !progressed {
			return fmt.Errorf("%s block %v: deadlock (threads wait at different collectives)", e.name, cta)
		}
	}
}

// warpCollective runs the warp collective (shfl, mma, ldmatrix) that every
// live lane of the warp waits at, if they do; it reports whether it ran.
func (c *simCtx) warpCollective(lanes []*simThread) (bool, error) {
	var live []*simThread
	for _, t := range lanes {
		if !t.done {
			live = append(live, t)
		}
	}
	if len(live) == 0 || !live[0].waiting {
		return false, nil
	}
	pc := live[0].pc
	in := c.e.code[pc]
	if !warpCollective(in.op) {
		return false, nil
	}
	for _, t := range live {
		if !t.waiting || t.pc != pc {
			return false, nil
		}
	}
	if len(live) != 32 {
		return false, fmt.Errorf("%s: %s with %d live lanes; lorac's kernels use full warps", c.e.name, in.op, len(live))
	}
	if err := c.warpOp(in, live); err != nil {
		return false, err
	}
	for _, t := range live {
		t.waiting = false
		t.pc++
	}
	return true, nil
}

type simCtx struct {
	d           *simDevice
	e           *simEntry
	params      []uint64
	smem        []byte
	grid, block [3]uint32
	// cpWarp gathers the destinations of one cp.async across a warp's
	// lanes: key warp, pc and the lane's count of cp.async executions.
	cpWarp map[[3]int][]uint64
}

func (c *simCtx) val(t *simThread, o simOperand) uint64 {
	switch o.kind {
	case opReg:
		return t.regs[o.reg]
	case opImm:
		return o.imm
	case opSpecial:
		switch o.name {
		case "%tid.x":
			return uint64(t.tid[0])
		case "%ctaid.x":
			return uint64(t.cta[0])
		case "%ctaid.y":
			return uint64(t.cta[1])
		case "%ntid.x":
			return uint64(c.block[0])
		case "%nctaid.x":
			return uint64(c.grid[0])
		case "%laneid":
			return uint64(t.tid[0] % 32)
		}
	case opSym:
		if off, ok := c.e.shared[o.name]; ok {
			return uint64(off)
		}
	}
	panic(fmt.Sprintf("sim: operand %+v has no value", o))
}

func f32(v uint64) float32      { return math.Float32frombits(uint32(v)) }
func f64(v uint64) float64      { return math.Float64frombits(v) }
func bf32(x float32) uint64     { return uint64(math.Float32bits(x)) }
func bf64(x float64) uint64     { return math.Float64bits(x) }
func suffix(op string) string   { return op[strings.LastIndex(op, ".")+1:] }
func hasPart(op, p string) bool { return strings.Contains(op+".", "."+p+".") }

// mem returns the bytes an address operand names in the instruction's space.
func (c *simCtx) mem(t *simThread, op string, a simOperand, n int) ([]byte, error) {
	addr := c.val(t, *a.base) + uint64(a.off)
	if hasPart(op, "shared") {
		if addr+uint64(n) > uint64(len(c.smem)) {
			return nil, fmt.Errorf("%w: shared %#x", errSimIllegal, addr)
		}
		return c.smem[addr : addr+uint64(n)], nil
	}
	return c.d.global(addr, n)
}

func width(typ string) int {
	switch typ {
	case "u64", "b64", "s64", "f64":
		return 8
	case "b16", "bf16", "u16":
		return 2
	}
	return 4
}

// run executes t until it ends or reaches a collective.
func (c *simCtx) run(t *simThread) error {
	for {
		if t.pc >= len(c.e.code) {
			return fmt.Errorf("ran off the end")
		}
		in := c.e.code[t.pc]
		c.d.Instructions++
		if in.guard >= 0 && (t.regs[in.guard] != 0) == in.neg {
			t.pc++
			continue
		}
		if in.op == "bar.sync" || warpCollective(in.op) {
			t.waiting = true
			return nil
		}
		jump, err := c.exec(t, in)
		if err != nil {
			return fmt.Errorf("%s: %w", in.line, err)
		}
		if t.done {
			return nil
		}
		if jump >= 0 {
			t.pc = jump
		} else {
			t.pc++
		}
	}
}

// exec runs one non-collective instruction; it returns the branch target
// or −1.
func (c *simCtx) exec(t *simThread, in simInst) (int, error) {
	o := in.ops
	set := func(v uint64) { t.regs[o[0].reg] = v }
	v := func(i int) uint64 { return c.val(t, o[i]) }
	typ := suffix(in.op)
	switch {
	case in.op == "ret":
		t.done = true
		return -1, nil
	case in.op == "bra.uni":
		return c.e.labels[o[0].name], nil
	case strings.HasPrefix(in.op, "ld.param."):
		name := o[1].base.name
		for i, p := range c.e.params {
			if p == name {
				set(c.params[i])
				return -1, nil
			}
		}
		return -1, fmt.Errorf("no parameter %s", name)
	case strings.HasPrefix(in.op, "ld."):
		b, err := c.mem(t, in.op, o[1], width(typ))
		if err != nil {
			return -1, err
		}
		switch len(b) {
		case 8:
			set(binary.LittleEndian.Uint64(b))
		case 2:
			set(uint64(binary.LittleEndian.Uint16(b)))
		default:
			x := binary.LittleEndian.Uint32(b)
			if typ == "s32" {
				set(uint64(int64(int32(x))))
			} else {
				set(uint64(x))
			}
		}
	case strings.HasPrefix(in.op, "st."):
		b, err := c.mem(t, in.op, o[0], width(typ))
		if err != nil {
			return -1, err
		}
		x := v(1)
		switch len(b) {
		case 8:
			binary.LittleEndian.PutUint64(b, x)
		case 2:
			binary.LittleEndian.PutUint16(b, uint16(x))
		default:
			binary.LittleEndian.PutUint32(b, uint32(x))
		}
	case strings.HasPrefix(in.op, "mov."):
		set(v(1))
	case strings.HasPrefix(in.op, "setp."):
		cmp := strings.Split(in.op, ".")[1]
		a, b := v(1), v(2)
		var lt, eq bool
		switch typ {
		case "u32":
			lt, eq = uint32(a) < uint32(b), uint32(a) == uint32(b)
		case "s32":
			lt, eq = int32(a) < int32(b), int32(a) == int32(b)
		case "u64":
			lt, eq = a < b, a == b
		case "f32":
			lt, eq = f32(a) < f32(b), f32(a) == f32(b)
		default:
			return -1, fmt.Errorf("setp type %s", typ)
		}
		r := map[string]bool{"lt": lt, "eq": eq, "ne": !eq, "ge": !lt, "gt": !lt && !eq, "le": lt || eq}[cmp]
		set(b2u(r))
	case in.op == "or.pred":
		set(b2u(v(1) != 0 || v(2) != 0))
	case in.op == "div.u32":
		if uint32(v(2)) == 0 {
			return -1, fmt.Errorf("integer division by zero")
		}
		set(uint64(uint32(v(1)) / uint32(v(2))))
	case in.op == "rem.u32":
		if uint32(v(2)) == 0 {
			return -1, fmt.Errorf("integer division by zero")
		}
		set(uint64(uint32(v(1)) % uint32(v(2))))
	case in.op == "and.pred":
		set(b2u(v(1) != 0 && v(2) != 0))
	case strings.HasPrefix(in.op, "selp."):
		if v(3) != 0 {
			set(v(1))
		} else {
			set(v(2))
		}
	case in.op == "add.u32":
		set(uint64(uint32(v(1)) + uint32(v(2))))
	case in.op == "sub.u32":
		set(uint64(uint32(v(1)) - uint32(v(2))))
	case in.op == "add.u64":
		set(v(1) + v(2))
	case in.op == "mul.lo.u32":
		set(uint64(uint32(v(1)) * uint32(v(2))))
	case in.op == "mad.lo.u32":
		set(uint64(uint32(v(1))*uint32(v(2)) + uint32(v(3))))
	case in.op == "mul.lo.u64":
		set(v(1) * v(2))
	case in.op == "mad.lo.u64":
		set(v(1)*v(2) + v(3))
	case in.op == "xor.b64":
		set(v(1) ^ v(2))
	case in.op == "shr.u64":
		set(v(1) >> uint32(v(2)))
	case in.op == "mul.wide.u32":
		set(uint64(uint32(v(1))) * uint64(uint32(v(2))))
	case in.op == "and.b32":
		set(uint64(uint32(v(1)) & uint32(v(2))))
	case in.op == "xor.b32":
		set(uint64(uint32(v(1)) ^ uint32(v(2))))
	case in.op == "shl.b32":
		set(uint64(uint32(v(1)) << uint32(v(2))))
	case in.op == "cvt.u64.u32":
		set(uint64(uint32(v(1))))
	case in.op == "cp.async.cg.shared.global":
		return -1, c.cpAsync(t, in)
	case in.op == "cp.async.commit_group":
		t.groups = append(t.groups, t.pending)
		t.pending = nil
	case in.op == "cp.async.wait_group":
		c.completeGroups(t, int(v(0)))
	case in.op == "cp.async.wait_all":
		t.groups = append(t.groups, t.pending)
		t.pending = nil
		c.completeGroups(t, 0)
	case in.op == "shr.u32":
		set(uint64(uint32(v(1)) >> uint32(v(2))))
	case in.op == "cvt.f64.f32":
		set(bf64(float64(f32(v(1)))))
	case in.op == "cvt.rn.f32.f64":
		set(bf32(float32(f64(v(1)))))
	case in.op == "cvt.rn.f32.u32":
		set(bf32(float32(uint32(v(1)))))
	case in.op == "cvt.rn.f64.s32":
		set(bf64(float64(int32(v(1)))))
	case in.op == "cvt.rni.f64.f64":
		set(bf64(math.RoundToEven(f64(v(1)))))
	case in.op == "fma.rn.f64":
		set(bf64(math.FMA(f64(v(1)), f64(v(2)), f64(v(3)))))
	case in.op == "sin.approx.f32":
		set(bf32(float32(math.Sin(float64(f32(v(1)))))))
	case in.op == "cos.approx.f32":
		set(bf32(float32(math.Cos(float64(f32(v(1)))))))
	case in.op == "cvt.rn.bf16.f32":
		b := uint32(v(1))
		b += 0x7fff + (b>>16)&1
		set(uint64(b >> 16))
	case typ == "f32":
		a := f32(v(1))
		var r float32
		switch strings.TrimSuffix(in.op, ".f32") {
		case "add.rn":
			r = a + f32(v(2))
		case "sub.rn":
			r = a - f32(v(2))
		case "mul.rn":
			r = a * f32(v(2))
		case "div.rn":
			r = a / f32(v(2))
		case "fma.rn":
			r = float32(math.FMA(float64(a), float64(f32(v(2))), float64(f32(v(3)))))
		case "max":
			r = float32(math.Max(float64(a), float64(f32(v(2)))))
		case "min":
			r = float32(math.Min(float64(a), float64(f32(v(2)))))
		case "neg":
			r = -a
		case "sqrt.rn":
			r = float32(math.Sqrt(float64(a)))
		case "ex2.approx.ftz":
			r = float32(math.Exp2(float64(a)))
		case "lg2.approx.ftz":
			r = float32(math.Log2(float64(a)))
		default:
			return -1, fmt.Errorf("unknown f32 op %s", in.op)
		}
		set(bf32(r))
	case typ == "f64":
		a := f64(v(1))
		var r float64
		switch strings.TrimSuffix(in.op, ".f64") {
		case "add.rn":
			r = a + f64(v(2))
		case "sub.rn":
			r = a - f64(v(2))
		case "mul.rn":
			r = a * f64(v(2))
		case "div.rn":
			r = a / f64(v(2))
		case "sqrt.rn":
			r = math.Sqrt(a)
		default:
			return -1, fmt.Errorf("unknown f64 op %s", in.op)
		}
		set(bf64(r))
	default:
		return -1, fmt.Errorf("the simulator does not know %s", in.op)
	}
	return -1, nil
}

// cpAsync issues cp.async.cg.shared.global [dst], [src], 16, src-size: the
// first src-size bytes come from global memory (read now), the rest of the
// 16 are zeros; with src-size 0 nothing is read. Both addresses must be
// 16-byte aligned.
func (c *simCtx) cpAsync(t *simThread, in simInst) error {
	if len(in.ops) != 4 || in.ops[2].kind != opImm || in.ops[2].imm != 16 {
		return fmt.Errorf("cp.async.cg copies 16 bytes: want [dst], [src], 16, src-size")
	}
	dst := c.val(t, *in.ops[0].base) + uint64(in.ops[0].off)
	src := c.val(t, *in.ops[1].base) + uint64(in.ops[1].off)
	n := c.val(t, in.ops[3])
	if n > 16 {
		return fmt.Errorf("cp.async src-size %d > 16", n)
	}
	if dst%16 != 0 || src%16 != 0 {
		return fmt.Errorf("cp.async addresses %#x, %#x not 16-byte aligned", dst, src)
	}
	if dst+16 > uint64(len(c.smem)) {
		return fmt.Errorf("%w: cp.async to shared %#x", errSimIllegal, dst)
	}
	data := make([]byte, 16)
	if n > 0 {
		b, err := c.d.global(src, int(n))
		if err != nil {
			return err
		}
		copy(data, b)
	}
	t.pending = append(t.pending, simCopy{dst, data})
	if c.cpWarp == nil {
		c.cpWarp = map[[3]int][]uint64{}
	}
	key := [3]int{int(t.tid[0] / 32), t.pc, t.cpCount}
	t.cpCount++
	c.cpWarp[key] = append(c.cpWarp[key], dst)
	if lanes := c.cpWarp[key]; len(lanes) == 32 {
		for p := 0; p < 32; p += 8 {
			c.d.SharedConflicts.CpAsync += conflicts(lanes[p : p+8])
		}
		delete(c.cpWarp, key)
	}
	return nil
}

// completeGroups lands every committed group of t but the newest n.
func (c *simCtx) completeGroups(t *simThread, n int) {
	for len(t.groups) > n {
		for _, cp := range t.groups[0] {
			copy(c.smem[cp.dst:cp.dst+16], cp.data)
		}
		t.groups = t.groups[1:]
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func warpCollective(op string) bool {
	return strings.HasPrefix(op, "shfl") || strings.HasPrefix(op, "mma") || strings.HasPrefix(op, "ldmatrix") || op == "bar.warp.sync"
}

// warpOp runs a shuffle, an mma or a warp barrier for the 32 lanes.
func (c *simCtx) warpOp(in simInst, lanes []*simThread) error {
	switch in.op {
	case "bar.warp.sync":
		return nil
	case "shfl.sync.idx.b32":
		src := make([]uint64, 32)
		for i, t := range lanes {
			src[i] = c.val(t, in.ops[1])
		}
		for _, t := range lanes {
			j := int(c.val(t, in.ops[2]) & 31)
			t.regs[in.ops[0].reg] = src[j]
		}
		return nil
	case "shfl.sync.bfly.b32":
		src := make([]uint64, 32)
		for i, t := range lanes {
			src[i] = c.val(t, in.ops[1])
		}
		for i, t := range lanes {
			j := i ^ int(c.val(t, in.ops[2]))
			if j > 31 {
				j = i
			}
			t.regs[in.ops[0].reg] = src[j]
		}
		return nil
	case "ldmatrix.sync.aligned.m8n8.x1.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.shared.b16", "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
		"ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16", "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16":
		return c.ldmatrix(in, lanes)
	case "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32":
		var A [16][16]float64
		var B [16][8]float64
		var C [16][8]float64
		bf := func(h uint64) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }
		for lane, t := range lanes {
			g, tq := lane/4, lane%4
			a, b, cc := in.ops[1].vec, in.ops[2].vec, in.ops[3].vec
			for r := range 4 {
				x := t.regs[a[r]]
				row, col := g+8*(r%2), 2*tq+8*(r/2)
				A[row][col], A[row][col+1] = bf(x&0xffff), bf(x>>16&0xffff)
			}
			for r := range 2 {
				x := t.regs[b[r]]
				k := 2*tq + 8*r
				B[k][g], B[k+1][g] = bf(x&0xffff), bf(x>>16&0xffff)
			}
			for r := range 4 {
				C[g+8*(r/2)][2*tq+r%2] = float64(f32(t.regs[cc[r]]))
			}
		}
		for lane, t := range lanes {
			g, tq := lane/4, lane%4
			for r := range 4 {
				row, col := g+8*(r/2), 2*tq+r%2
				s := C[row][col]
				for k := range 16 {
					s += A[row][k] * B[k][col]
				}
				t.regs[in.ops[0].vec[r]] = bf32(float32(s))
			}
		}
		return nil
	}
	return fmt.Errorf("unknown warp op %s", in.op)
}

// ldmatrix loads 1, 2 or 4 8×8 matrices of b16 from shared memory: row r
// of matrix m starts at the address lane 8m + r gives (16 bytes, 16-byte
// aligned). Lane l receives in register m the pair at row l/4, columns
// 2(l%4) and 2(l%4)+1 (the lower column in the low half) — or, with
// .trans, the pair at rows 2(l%4) and 2(l%4)+1 of column l/4.
func (c *simCtx) ldmatrix(in simInst, lanes []*simThread) error {
	dst := in.ops[0].vec
	want := b2i(strings.Contains(in.op, ".x1.")) + 2*b2i(strings.Contains(in.op, ".x2.")) + 4*b2i(strings.Contains(in.op, ".x4."))
	if len(dst) != want {
		return fmt.Errorf("%s: %d destination registers, want %d", in.op, len(dst), want)
	}
	trans := strings.Contains(in.op, ".trans.")
	elem := make([][8][8]uint16, len(dst)) // [matrix][row][col]
	for m := range dst {
		var rows []uint64
		for r := range 8 {
			t := lanes[8*m+r]
			addr := c.val(t, *in.ops[1].base) + uint64(in.ops[1].off)
			if addr%16 != 0 || addr+16 > uint64(len(c.smem)) {
				return fmt.Errorf("%s: lane %d row address %#x is not a 16-byte aligned shared row", in.op, 8*m+r, addr)
			}
			rows = append(rows, addr)
			for col := range 8 {
				elem[m][r][col] = binary.LittleEndian.Uint16(c.smem[addr+uint64(2*col):])
			}
		}
		c.d.SharedConflicts.Ldmatrix += conflicts(rows)
	}
	for l, t := range lanes {
		for m, reg := range dst {
			var lo, hi uint16
			if trans {
				lo, hi = elem[m][2*(l%4)][l/4], elem[m][2*(l%4)+1][l/4]
			} else {
				lo, hi = elem[m][l/4][2*(l%4)], elem[m][l/4][2*(l%4)+1]
			}
			t.regs[reg] = uint64(lo) | uint64(hi)<<16
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// simAPI returns a driver table backed by the simulator: one device of
// compute capability 9.0 named "lorac PTX simulator".
func simAPI(dev *simDevice) *api {
	a, _ := fakeAPI()
	dev.mem = make([]byte, 256)
	dev.modules = map[uintptr]map[string]*simEntry{}
	a.cuDeviceGetName = func(name *byte, n int32, _ int32) uint32 {
		copy(unsafe.Slice(name, n), "lorac PTX simulator\x00")
		return 0
	}
	a.cuMemAlloc = func(p *uint64, size uint64) uint32 {
		base := (uint64(len(dev.mem)) + 255) &^ 255
		dev.mem = append(dev.mem, make([]byte, base+size-uint64(len(dev.mem)))...)
		*p = base
		return 0
	}
	a.cuMemcpyHtoD = func(dst uint64, src unsafe.Pointer, n uint64) uint32 {
		b, err := dev.global(dst, int(n))
		if err != nil {
			return uint32(ErrInvalidValue)
		}
		copy(b, unsafe.Slice((*byte)(src), n))
		return 0
	}
	a.cuMemcpyDtoH = func(dst unsafe.Pointer, src uint64, n uint64) uint32 {
		b, err := dev.global(src, int(n))
		if err != nil {
			return uint32(ErrInvalidValue)
		}
		copy(unsafe.Slice((*byte)(dst), n), b)
		return 0
	}
	a.cuMemsetD32 = func(dst uint64, v uint32, n uint64) uint32 {
		b, err := dev.global(dst, int(4*n))
		if err != nil {
			return uint32(ErrInvalidValue)
		}
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
		return 0
	}
	a.cuModuleLoadDataEx = func(m *uintptr, image *byte, _ uint32, _ *int32, _ *uintptr) uint32 {
		var text []byte
		for p := unsafe.Pointer(image); *(*byte)(p) != 0; p = unsafe.Add(p, 1) {
			text = append(text, *(*byte)(p))
		}
		entries, err := parseSimModule(string(text))
		if err != nil {
			return uint32(ErrInvalidPTX)
		}
		*m = uintptr(len(dev.modules) + 1)
		dev.modules[*m] = entries
		return 0
	}
	a.cuModuleGetFunction = func(f *uintptr, m uintptr, name *byte) uint32 {
		var n []byte
		for p := unsafe.Pointer(name); *(*byte)(p) != 0; p = unsafe.Add(p, 1) {
			n = append(n, *(*byte)(p))
		}
		e, ok := dev.modules[m][string(n)]
		if !ok {
			return uint32(ErrNotFound)
		}
		dev.funcs = append(dev.funcs, e)
		*f = uintptr(len(dev.funcs))
		return 0
	}
	a.cuLaunchKernel = func(fn uintptr, gx, gy, gz, bx, by, bz, _ uint32, _ uintptr, params, _ unsafe.Pointer) uint32 {
		e := dev.funcs[fn-1]
		if dev.Launched == nil {
			dev.Launched = map[string]int{}
		}
		dev.Launched[e.name]++
		ptrs := unsafe.Slice((*unsafe.Pointer)(params), len(e.sig.Types))
		vals := make([]uint64, len(ptrs))
		for i, t := range e.sig.Types {
			switch t {
			case ParamU64, ParamF64:
				vals[i] = *(*uint64)(ptrs[i])
			case ParamS32:
				vals[i] = uint64(int64(*(*int32)(ptrs[i])))
			default:
				vals[i] = uint64(*(*uint32)(ptrs[i]))
			}
		}
		if err := dev.launch(e, vals, [3]uint32{gx, gy, gz}, [3]uint32{bx, by, bz}); err != nil {
			simLastError = err
			return uint32(ErrIllegalAddress)
		}
		return 0
	}
	return a
}

// simLastError keeps the simulator's account of the last failed launch,
// which the driver's result code cannot carry.
var simLastError error
