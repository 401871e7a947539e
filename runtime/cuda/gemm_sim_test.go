package cuda

// The simulator's cp.async and ldmatrix on hand-checked cases, and the
// pipelined bf16 GEMM on it: both kernels against the CPU reference, and
// mutants of the pipelined one (a wait or a barrier removed) that must
// fail, so the simulator's asynchronous copies really are asynchronous.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unsafe"
)

// simModule loads hand-written PTX into a fresh simulator.
func simModule(t *testing.T, body string) (*Device, *Module, *simDevice) {
	t.Helper()
	dev := &simDevice{}
	d, err := open(simAPI(dev), 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.LoadModule([]byte(".version 7.0\n.target sm_80\n.address_size 64\n\n" + body))
	if err != nil {
		t.Fatalf("%v (%v)", err, simLastError)
	}
	return d, m, dev
}

func simRun(t *testing.T, d *Device, m *Module, entry string, threads int, args ...any) {
	t.Helper()
	k, err := m.Kernel(entry)
	if err != nil {
		t.Fatal(err)
	}
	simLastError = nil
	if err := k.Launch(Dim3{1, 1, 1}, Dim3{threads, 1, 1}, 0, Stream{}, args...); err != nil {
		t.Fatalf("%v: %v", err, simLastError)
	}
}

func simBuffer[T float32 | uint16 | uint32](t *testing.T, d *Device, s []T) Buffer {
	t.Helper()
	b, err := d.Alloc(len(s) * int(unsafe.Sizeof(s[0])))
	if err != nil {
		t.Fatal(err)
	}
	if err := Upload(d, b, s); err != nil {
		t.Fatal(err)
	}
	return b
}

// ldmatrixPTX: 32 threads copy 256 b16 values (32 rows of 8) into shared
// memory; lane l then gives row address 16·(31 − l) to ldmatrix .x4, .x2
// with .trans, and .x1, and stores the 7 registers to out[8l …].
const ldmatrixPTX = `.visible .entry ldm(
	.param .u64 ldm_out,
	.param .u64 ldm_in
)
.maxntid 32, 1, 1
{
	.reg .b32 %r<20>;
	.reg .b64 %rd<20>;
	.shared .align 16 .b32 ldm_s[128];
	ld.param.u64 %rd1, [ldm_out];
	ld.param.u64 %rd2, [ldm_in];
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %rd3, %r1, 16;
	add.u64 %rd4, %rd2, %rd3;
	mov.u64 %rd5, ldm_s;
	add.u64 %rd6, %rd5, %rd3;
	ld.global.b32 %r2, [%rd4];
	st.shared.b32 [%rd6], %r2;
	ld.global.b32 %r2, [%rd4+4];
	st.shared.b32 [%rd6+4], %r2;
	ld.global.b32 %r2, [%rd4+8];
	st.shared.b32 [%rd6+8], %r2;
	ld.global.b32 %r2, [%rd4+12];
	st.shared.b32 [%rd6+12], %r2;
	bar.sync 0;
	mov.u32 %r11, 31;
	sub.u32 %r3, %r11, %r1;
	mul.wide.u32 %rd7, %r3, 16;
	add.u64 %rd8, %rd5, %rd7;
	ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r4, %r5, %r6, %r7}, [%rd8];
	ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%r8, %r9}, [%rd8];
	ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r10}, [%rd8];
	mul.wide.u32 %rd9, %r1, 32;
	add.u64 %rd10, %rd1, %rd9;
	st.global.b32 [%rd10], %r4;
	st.global.b32 [%rd10+4], %r5;
	st.global.b32 [%rd10+8], %r6;
	st.global.b32 [%rd10+12], %r7;
	st.global.b32 [%rd10+16], %r8;
	st.global.b32 [%rd10+20], %r9;
	st.global.b32 [%rd10+24], %r10;
	ret;
}
`

// TestSimLdmatrix: element (row R, column C) of the shared array holds
// 8R + C. Matrix m's row r is addressed by lane 8m + r, here memory row
// 31 − 8m − r. Lane l's register m holds (row l/4, columns 2(l%4), +1) of
// matrix m; with .trans (rows 2(l%4), +1 of column l/4).
func TestSimLdmatrix(t *testing.T) {
	d, m, dev := simModule(t, ldmatrixPTX)
	in := make([]uint16, 256)
	for i := range in {
		in[i] = uint16(i)
	}
	bin, bout := simBuffer(t, d, in), simBuffer(t, d, make([]uint32, 32*8))
	simRun(t, d, m, "ldm", 32, bout.Ptr, bin.Ptr)
	out := make([]uint32, 32*8)
	if err := Download(d, out, bout); err != nil {
		t.Fatal(err)
	}
	pair := func(lo, hi int) uint32 { return uint32(lo) | uint32(hi)<<16 }
	// Hand-checked lanes.
	for _, c := range []struct {
		lane, reg int
		want      uint32
		why       string
	}{
		{0, 0, pair(248, 249), "x4 matrix 0 row 0 = memory row 31, columns 0, 1"},
		{13, 2, pair(98, 99), "x4 matrix 2 row 3 = memory row 12, columns 2, 3"},
		{31, 3, pair(6, 7), "x4 matrix 3 row 7 = memory row 0, columns 6, 7"},
		{5, 5, pair(169, 161), ".trans matrix 1 rows 2, 3 (memory rows 21, 20) of column 1"},
		{0, 4, pair(248, 240), ".trans matrix 0 rows 0, 1 (memory rows 31, 30) of column 0"},
		{9, 6, pair(234, 235), "x1 row 2 = memory row 29, columns 2, 3"},
	} {
		if got := out[8*c.lane+c.reg]; got != c.want {
			t.Errorf("lane %d register %d = %#08x, want %#08x (%s)", c.lane, c.reg, got, c.want, c.why)
		}
	}
	// Every lane and register.
	row := func(m, r int) int { return 31 - 8*m - r } // memory row of matrix m's row r
	for l := range 32 {
		for mm := range 4 {
			R := row(mm, l/4)
			if got, want := out[8*l+mm], pair(8*R+2*(l%4), 8*R+2*(l%4)+1); got != want {
				t.Errorf("x4: lane %d matrix %d = %#08x, want %#08x", l, mm, got, want)
			}
		}
		for mm := range 2 {
			r0, r1 := row(mm, 2*(l%4)), row(mm, 2*(l%4)+1)
			if got, want := out[8*l+4+mm], pair(8*r0+l/4, 8*r1+l/4); got != want {
				t.Errorf(".trans x2: lane %d matrix %d = %#08x, want %#08x", l, mm, got, want)
			}
		}
		R := row(0, l/4)
		if got, want := out[8*l+6], pair(8*R+2*(l%4), 8*R+2*(l%4)+1); got != want {
			t.Errorf("x1: lane %d = %#08x, want %#08x", l, got, want)
		}
	}
	// Rows 16 bytes apart: each matrix's 8 rows cover all 32 banks once.
	if dev.SharedConflicts.Ldmatrix != 0 {
		t.Errorf("%d bank conflicts counted for consecutive rows", dev.SharedConflicts.Ldmatrix)
	}
	// Rows 64 bytes apart (an unswizzled 32-wide bf16 tile): rows r and
	// r+2 share banks, 4 rows per group of four banks, 3 extra wavefronts
	// per matrix, 7 matrices.
	strided := strings.NewReplacer("mul.wide.u32 %rd7, %r3, 16;", "mul.wide.u32 %rd7, %r3, 64;", "ldm_s[128]", "ldm_s[512]").Replace(ldmatrixPTX)
	d, m, dev = simModule(t, strided)
	bin, bout = simBuffer(t, d, in), simBuffer(t, d, make([]uint32, 32*8))
	simRun(t, d, m, "ldm", 32, bout.Ptr, bin.Ptr)
	if dev.SharedConflicts.Ldmatrix != 7*3 {
		t.Errorf("%d extra wavefronts for rows 64 bytes apart, want 21", dev.SharedConflicts.Ldmatrix)
	}
}

// cpAsyncPTX: each of 32 threads owns 16 bytes of two shared regions,
// prefilled with 0xff. It issues a cp.async of 16 bytes with src-size
// tid%17 from in[16·tid] into region 1, commits, then a full one from
// in2 into region 2, commits; it snapshots its region 1 before the
// commit, after it, after wait_group 1 (region 2 as well) and region 2
// after wait_group 0 — five snapshots of 4 words at out[20·tid].
func cpAsyncPTX() string {
	var b strings.Builder
	b.WriteString(`.visible .entry cpa(
	.param .u64 cpa_out,
	.param .u64 cpa_in,
	.param .u64 cpa_in2
)
.maxntid 32, 1, 1
{
	.reg .pred %p<4>;
	.reg .b32 %r<20>;
	.reg .b64 %rd<20>;
	.shared .align 16 .b32 cpa_s1[128];
	.shared .align 16 .b32 cpa_s2[128];
	ld.param.u64 %rd1, [cpa_out];
	ld.param.u64 %rd2, [cpa_in];
	ld.param.u64 %rd3, [cpa_in2];
	mov.u32 %r1, %tid.x;
	mul.wide.u32 %rd4, %r1, 16;
	add.u64 %rd5, %rd2, %rd4;
	add.u64 %rd6, %rd3, %rd4;
	mov.u64 %rd7, cpa_s1;
	add.u64 %rd7, %rd7, %rd4;
	mov.u64 %rd8, cpa_s2;
	add.u64 %rd8, %rd8, %rd4;
	mul.wide.u32 %rd9, %r1, 80;
	add.u64 %rd9, %rd1, %rd9;
	rem.u32 %r2, %r1, 17;
	mov.u32 %r3, -1;
`)
	for w := range 4 {
		fmt.Fprintf(&b, "\tst.shared.b32 [%%rd7+%d], %%r3;\n\tst.shared.b32 [%%rd8+%d], %%r3;\n", 4*w, 4*w)
	}
	snap := func(n int, region string) {
		for w := range 4 {
			fmt.Fprintf(&b, "\tld.shared.b32 %%r4, [%s+%d];\n\tst.global.b32 [%%rd9+%d], %%r4;\n", region, 4*w, 16*n+4*w)
		}
	}
	b.WriteString("\tcp.async.cg.shared.global [%rd7], [%rd5], 16, %r2;\n")
	snap(0, "%rd7")
	b.WriteString("\tcp.async.commit_group;\n")
	snap(1, "%rd7")
	b.WriteString("\tcp.async.cg.shared.global [%rd8], [%rd6], 16, 16;\n\tcp.async.commit_group;\n\tcp.async.wait_group 1;\n")
	snap(2, "%rd7")
	snap(3, "%rd8")
	b.WriteString("\tcp.async.wait_group 0;\n")
	snap(4, "%rd8")
	b.WriteString("\tret;\n}\n")
	return b.String()
}

// TestSimCpAsync: shared memory changes only when a wait completes the
// copy's group; wait_group 1 lands the older group and not the newer; the
// src-size bytes are copied and the rest of the 16 zero-filled.
func TestSimCpAsync(t *testing.T) {
	d, m, dev := simModule(t, cpAsyncPTX())
	in, in2 := make([]uint32, 128), make([]uint32, 128)
	for i := range in {
		in[i], in2[i] = 0x03020100+uint32(i)*0x04040404, 0xa0000000+uint32(i)
	}
	bin, bin2, bout := simBuffer(t, d, in), simBuffer(t, d, in2), simBuffer(t, d, make([]uint32, 32*20))
	simRun(t, d, m, "cpa", 32, bout.Ptr, bin.Ptr, bin2.Ptr)
	out := make([]uint32, 32*20)
	if err := Download(d, out, bout); err != nil {
		t.Fatal(err)
	}
	if dev.SharedConflicts.CpAsync != 0 {
		t.Errorf("%d bank conflicts counted for consecutive 16-byte destinations", dev.SharedConflicts.CpAsync)
	}
	// Thread 5 copies 5 bytes of in[20..23]: bytes 0x50..0x54, then zeros.
	if got := out[5*20+8 : 5*20+12]; got[0] != 0x53525150 || got[1] != 0x54 || got[2] != 0 || got[3] != 0 {
		t.Errorf("thread 5 after wait_group 1: % x, want 53525150 54 0 0", got)
	}
	for tid := range 32 {
		o := out[20*tid : 20*tid+20]
		src := make([]byte, 16)
		for w := range 4 {
			x := in[4*tid+w]
			src[4*w], src[4*w+1], src[4*w+2], src[4*w+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
		}
		n := tid % 17
		for i := n; i < 16; i++ {
			src[i] = 0
		}
		for w := range 4 {
			landed := uint32(src[4*w]) | uint32(src[4*w+1])<<8 | uint32(src[4*w+2])<<16 | uint32(src[4*w+3])<<24
			for _, c := range []struct {
				snap int
				want uint32
				what string
			}{
				{0, 0xffffffff, "region 1 right after cp.async"},
				{1, 0xffffffff, "region 1 after commit_group, before any wait"},
				{2, landed, "region 1 after wait_group 1"},
				{3, 0xffffffff, "region 2 (the newest group) after wait_group 1"},
				{4, in2[4*tid+w], "region 2 after wait_group 0"},
			} {
				if got := o[4*c.snap+w]; got != c.want {
					t.Errorf("thread %d word %d, %s: %#08x, want %#08x", tid, w, c.what, got, c.want)
				}
			}
		}
	}
}

// TestSimGemmBF16Paths runs the bf16 GEMM checks on the simulator and
// checks both kernels ran: the pipelined one where operands allow, the
// 64×64 one for the others.
func TestSimGemmBF16Paths(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	dev := &simDevice{}
	d, err := open(simAPI(dev), 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	simLastError = nil
	checkGemmBF16(t, l, true)
	if simLastError != nil {
		t.Errorf("simulator: %v", simLastError)
	}
	if dev.Launched["lorac_gemm_bf16_nt_async"] < 5 || dev.Launched["lorac_gemm_bf16_nt"] < 5 {
		t.Errorf("launches %v: want both bf16 kernels exercised", dev.Launched)
	}
	// The swizzled layout: neither the cp.async stores nor the ldmatrix
	// reads conflict (the 64×64 kernel uses neither instruction).
	if dev.SharedConflicts != (struct{ Ldmatrix, CpAsync int }{}) {
		t.Errorf("shared-memory bank conflicts %+v, want none", dev.SharedConflicts)
	}
}

// TestSimGemmAsyncMutants: the pipelined GEMM without its cp.async
// waits, or without the barrier that follows them, must give wrong
// results on the simulator (copies land only at a wait; a thread runs
// alone until its next collective) — the unmutated kernel is right
// (TestSimGemmBF16Paths).
func TestSimGemmAsyncMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	const entry = "lorac_gemm_bf16_nt_async"
	text, err := PTX("sm_90")
	if err != nil {
		t.Fatal(err)
	}
	mod := string(text)
	begin := strings.Index(mod, ".visible .entry "+entry+"(")
	if begin < 0 {
		t.Fatalf("no %s", entry)
	}
	end := begin + strings.Index(mod[begin:], "\n}\n")
	body := mod[begin:end]
	for _, m := range []struct {
		name, from, to string
		wrong          bool // the results must be wrong
	}{
		{"unmutated", "", "", false},
		{"no wait_group", `\tcp\.async\.wait_group 1;\n`, "", true},
		{"no barrier", `\tbar\.sync 0;\n`, "", true},
		{"wait_group 2", `cp\.async\.wait_group 1;`, "cp.async.wait_group 2;", true},
		// Unswizzled (chunk ^ s becomes chunk): the same layout for the
		// copies and the reads, so right results, but ldmatrix conflicts.
		{"no swizzle", `xor\.b32 (%r\d+), (%r\d+), %r\d+;`, "and.b32 $1, $2, -1;", false},
	} {
		t.Run(m.name, func(t *testing.T) {
			mutant := body
			if m.from != "" {
				re := regexp.MustCompile(m.from)
				if !re.MatchString(body) {
					t.Fatalf("%s has no %q", entry, m.from)
				}
				mutant = re.ReplaceAllString(body, m.to)
			}
			dev := &simDevice{}
			d, err := open(simAPI(dev), 0)
			if err != nil {
				t.Fatal(err)
			}
			mm, err := d.LoadModule([]byte(mod[:begin] + mutant + mod[end:]))
			if err != nil {
				t.Fatal(err)
			}
			k, err := mm.Kernel(entry)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			N, M, K1, K2 := 40, 24, 96, 16
			up := func(n int) (Ptr, []float32) {
				x := random(rng, n, 1)
				h := make([]uint16, n)
				for i, v := range x {
					h[i] = bf16(v)
					x[i] = fromBF16(h[i])
				}
				return simBuffer(t, d, h).Ptr, x
			}
			pa1, a1 := up(N * K1)
			pb1, b1 := up(M * K1)
			pa2, a2 := up(N * K2)
			pb2, b2 := up(M * K2)
			bias := random(rng, M, 1)
			pc := simBuffer(t, d, make([]float32, N*M))
			s, err := gemmAsyncShape(N, M, K1, K2)
			if err != nil {
				t.Fatal(err)
			}
			simLastError = nil
			if err := k.Launch(s.Grid, s.Block, 0, Stream{}, pc.Ptr, pa1, pb1, simBuffer(t, d, bias).Ptr, pa2, pb2, N, M, K1, K2, float32(0.5), float32(2)); err != nil {
				t.Fatalf("%v: %v", err, simLastError)
			}
			got := make([]float32, N*M)
			if err := Download(d, got, pc); err != nil {
				t.Fatal(err)
			}
			want, mag := gemmRef("nt", a1, b1, bias, nil, a2, b2, N, M, K1, K2, 0.5, 2)
			bad := 0
			for i := range want {
				if d := float64(got[i] - want[i]); d > 1e-5*float64(mag[i])+1e-6 || -d > 1e-5*float64(mag[i])+1e-6 {
					bad++
				}
			}
			if !m.wrong && bad > 0 {
				t.Errorf("%s: wrong in %d of %d elements", m.name, bad, N*M)
			}
			if m.wrong && bad == 0 {
				t.Errorf("the mutant (%s) matches the reference: the simulator would not catch it", m.name)
			}
			conflicted := dev.SharedConflicts != (struct{ Ldmatrix, CpAsync int }{})
			// Unswizzled, the copies still store 8 threads' 128 contiguous
			// bytes a phase, but each ldmatrix matrix reads rows 64 bytes
			// apart: 4-way, 3 extra wavefronts for every matrix.
			if m.name == "no swizzle" && (dev.SharedConflicts.Ldmatrix == 0 || dev.SharedConflicts.CpAsync != 0) {
				t.Errorf("unswizzled: conflicts %+v, want ldmatrix's alone", dev.SharedConflicts)
			}
			if m.name == "unmutated" && conflicted {
				t.Errorf("conflicts %+v, want none", dev.SharedConflicts)
			}
			t.Logf("%s: %d of %d elements wrong, bank conflicts %+v", m.name, bad, N*M, dev.SharedConflicts)
		})
	}
}

// TestSimTiming runs the GPU timing harness (bench/gpu_check.sh's lorac
// column) on the simulator at a small shape, so a GPU session does not
// find it broken: the fake events time 1.5 ms each.
func TestSimTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("the PTX simulator is slow; skipped with -short")
	}
	var b strings.Builder
	timeGemms(t, sim(t), [][4]int{{40, 32, 24, 8}}, &b)
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("report %q: %v", b.String(), err)
	}
	for _, k := range []string{"lorac_f32_ms", "lorac_bf16_ms", "lorac_bf16_base_ms", "lorac_bf16_fused_ms", "lorac_bf16_fused_tflops", "lorac_bf16_simple_base_ms"} {
		if _, ok := rec[k].(float64); !ok {
			t.Errorf("report lacks %s: %v", k, rec)
		}
	}
	if rec["bf16_kernel"] != "lorac_gemm_bf16_nt_async" {
		t.Errorf("bf16_kernel = %v, want the pipelined kernel", rec["bf16_kernel"])
	}
}
