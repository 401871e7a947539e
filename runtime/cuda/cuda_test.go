package cuda

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestResultNames(t *testing.T) {
	for r, want := range map[Result]string{0: "CUDA_SUCCESS", 2: "CUDA_ERROR_OUT_OF_MEMORY", 100: "CUDA_ERROR_NO_DEVICE",
		218: "CUDA_ERROR_INVALID_PTX", 700: "CUDA_ERROR_ILLEGAL_ADDRESS", 12345: "CUDA_ERROR_12345"} {
		if got := r.String(); got != want {
			t.Errorf("Result(%d) = %s, want %s", uint32(r), got, want)
		}
	}
	if err := check("cuInit", 0); err != nil {
		t.Errorf("check(0) = %v", err)
	}
	err := check("cuMemAlloc_v2", 2)
	var ce *Error
	if !errors.As(err, &ce) || ce.Result != ErrOutOfMemory || ce.Call != "cuMemAlloc_v2" {
		t.Fatalf("check(2) = %#v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "cuda: cuMemAlloc_v2: CUDA_ERROR_OUT_OF_MEMORY (2)") || !strings.Contains(msg, "too little free memory") {
		t.Errorf("message %q", msg)
	}
}

// TestMissingDriver: no library, or a library without the driver's
// symbols, is an error wrapping ErrNoDriver, not a crash.
func TestMissingDriver(t *testing.T) {
	_, err := openLibrary("/nonexistent/libcuda.so.1")
	if !errors.Is(err, ErrNoDriver) || !strings.HasPrefix(err.Error(), "no CUDA driver found: ") {
		t.Fatalf("openLibrary(missing) = %v, want an error starting %q", err, "no CUDA driver found: ")
	}
	if !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("error %q should say how to point at a driver (%s)", err, LibraryEnv)
	}
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		return // the stub driver: no library is opened at all
	}
	// The C library loads but has no cuInit.
	_, err = openLibrary("libc.so.6")
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("openLibrary(libc) = %v, want a missing-symbol error", err)
	}
}

// TestOpenWithoutGPU: whatever this machine has, Devices and Open return
// (no driver, no device) errors or a working device; never a panic.
func TestOpenWithoutGPU(t *testing.T) {
	n, err := Devices()
	if err != nil {
		t.Logf("Devices: %v (expected on a machine without a GPU)", err)
		if _, err2 := Open(0); err2 == nil {
			t.Error("Open succeeded where Devices failed")
		}
		return
	}
	t.Logf("%d CUDA devices", n)
}

func TestParseSignatures(t *testing.T) {
	for _, arch := range []string{"sm_80", "sm_90"} {
		ptx, err := PTX(arch)
		if err != nil {
			t.Fatal(err)
		}
		sigs, err := ParseSignatures(ptx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for n := range sigs {
			names = append(names, n)
		}
		slices.Sort(names)
		want := slices.Clone(Entries)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%s entries %v, want %v", arch, names, want)
		}
		g := sigs["lorac_gemm_bf16_nt"]
		if got := strings.Join(g.Names, ","); got != "c,a1,b1,bias,a2,b2,N,M,K1,K2,alpha1,alpha2" {
			t.Errorf("bf16 GEMM params %s", got)
		}
		if g.Types[0] != ParamU64 || g.Types[6] != ParamU32 || g.Types[11] != ParamF32 {
			t.Errorf("bf16 GEMM types %v", g.Types)
		}
		if a := sigs["lorac_adamw"]; a.Types[len(a.Types)-1] != ParamF64 {
			t.Errorf("AdamW's last parameter is %v, want f64", a.Types[len(a.Types)-1])
		}
	}
	if _, err := PTX("sm_70"); err == nil {
		t.Error("PTX(sm_70) succeeded")
	}
	if _, err := ParseSignatures([]byte("// nothing")); err == nil {
		t.Error("a module without entries parsed")
	}
	if _, err := ParseSignatures([]byte(".visible .entry k(\n\t.param .f16 k_x\n)\n")); err == nil {
		t.Error("an unsupported parameter type parsed")
	}
}

// TestPack checks the kernelParams layout cuLaunchKernel reads: pointer i
// points at argument i's value in the PTX type's width.
func TestPack(t *testing.T) {
	if v := uint16(1); *(*byte)(unsafe.Pointer(&v)) != 1 {
		t.Skip("argument slots are laid out for little-endian machines, the only ones with a CUDA driver lorac binds")
	}
	sig := Signature{Names: []string{"p", "n", "s", "x", "y"}, Types: []ParamType{ParamU64, ParamU32, ParamS32, ParamF32, ParamF64}}
	p, err := Pack("k", sig, Ptr(0xdeadbeef00), 7, int32(-3), float32(1.5), 2.25)
	if err != nil {
		t.Fatal(err)
	}
	ptrs := unsafe.Slice((*unsafe.Pointer)(p.params()), 5)
	if got := *(*uint64)(ptrs[0]); got != 0xdeadbeef00 {
		t.Errorf("u64 %#x", got)
	}
	if got := *(*uint32)(ptrs[1]); got != 7 {
		t.Errorf("u32 %d", got)
	}
	if got := *(*int32)(ptrs[2]); got != -3 {
		t.Errorf("s32 %d", got)
	}
	if got := *(*float32)(ptrs[3]); got != 1.5 {
		t.Errorf("f32 %v", got)
	}
	if got := *(*float64)(ptrs[4]); got != 2.25 {
		t.Errorf("f64 %v", got)
	}
	for _, c := range []struct {
		args []any
		want string
	}{
		{[]any{Ptr(1), 7, int32(0), float32(0)}, "takes 5 arguments (p, n, s, x, y), got 4"},
		{[]any{1.0, 7, int32(0), float32(0), 0.0}, "argument 0 (p) wants u64, got float64"},
		{[]any{Ptr(1), -1, int32(0), float32(0), 0.0}, "argument 1 (n) wants u32"},
		{[]any{Ptr(1), 1 << 33, int32(0), float32(0), 0.0}, "argument 1 (n) wants u32"},
		{[]any{Ptr(1), 1, 1 << 40, float32(0), 0.0}, "argument 2 (s) wants s32"},
		{[]any{Ptr(1), 1, 1, 1.5, 0.0}, "argument 3 (x) wants f32, got float64"},
		{[]any{Ptr(1), 1, 1, float32(1), float32(0)}, "argument 4 (y) wants f64, got float32"},
	} {
		if _, err := Pack("k", sig, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Pack(%v) = %v, want %q", c.args, err, c.want)
		}
	}
	empty, err := Pack("k", Signature{})
	if err != nil || empty.params() != nil {
		t.Errorf("Pack of no arguments = %v, %v", empty, err)
	}
}

func TestShapes(t *testing.T) {
	s, err := gemmShape(false, 100, 130, 64, 8)
	if err != nil || s.Grid != (Dim3{3, 2, 1}) || s.Block != (Dim3{256, 1, 1}) {
		t.Errorf("fp32 GEMM shape %+v %v", s, err)
	}
	s, err = gemmShape(true, 100, 130, 64, 8)
	if err != nil || s.Grid != (Dim3{3, 2, 1}) || s.Block != (Dim3{128, 1, 1}) {
		t.Errorf("bf16 GEMM shape %+v %v", s, err)
	}
	if _, err := gemmShape(true, 4, 4, 7, 0); err == nil || !strings.Contains(err.Error(), "even") {
		t.Errorf("odd K for bf16: %v", err)
	}
	if _, err := gemmShape(false, 1<<20, 1<<13, 8, 0); err == nil {
		t.Error("a GEMM past 32-bit indexing was accepted")
	}
	if _, err := gemmShape(false, 0, 4, 4, 0); err == nil {
		t.Error("N = 0 was accepted")
	}
	if s, err := elementwiseShape(1 << 30); err != nil || s.Grid.X != 4096 {
		t.Errorf("elementwise shape %+v %v", s, err)
	}
	if s, err := elementwiseShape(300); err != nil || s.Grid.X != 2 {
		t.Errorf("elementwise shape %+v %v", s, err)
	}
	if _, err := elementwiseShape(0); err == nil {
		t.Error("0 elements accepted")
	}
	if s, err := rowsShape(5, 1000); err != nil || s.Grid.X != 5 {
		t.Errorf("rows shape %+v %v", s, err)
	}
	if s, err := gemvShape(17, 64); err != nil || s.Grid.X != 3 {
		t.Errorf("gemv shape %+v %v", s, err)
	}
	if a, err := ArchFor(9, 0); a != "sm_90" || err != nil {
		t.Errorf("ArchFor(9.0) = %s %v", a, err)
	}
	if a, err := ArchFor(8, 6); a != "sm_80" || err != nil {
		t.Errorf("ArchFor(8.6) = %s %v", a, err)
	}
	if _, err := ArchFor(7, 5); err == nil {
		t.Error("ArchFor(7.5) accepted")
	}
}

// fakeAPI is a driver that succeeds at everything, with one device of
// compute capability 9.0, recording launches; tests override calls to
// make them fail.
func fakeAPI() (*api, *[]launchRecord) {
	var launches []launchRecord
	a := &api{
		cuInit:           func(uint32) uint32 { return 0 },
		cuDeviceGetCount: func(n *int32) uint32 { *n = 1; return 0 },
		cuDeviceGet:      func(d *int32, o int32) uint32 { *d = o; return 0 },
		cuDeviceGetName: func(name *byte, n int32, _ int32) uint32 {
			copy(unsafe.Slice(name, n), "Fake GPU\x00")
			return 0
		},
		cuDeviceGetAttribute: func(v *int32, attr int32, _ int32) uint32 {
			*v = map[int32]int32{75: 9, 76: 0}[attr]
			return 0
		},
		cuDevicePrimaryCtxRetain:  func(c *uintptr, _ int32) uint32 { *c = 1; return 0 },
		cuDevicePrimaryCtxRelease: func(int32) uint32 { return 0 },
		cuCtxSetCurrent:           func(uintptr) uint32 { return 0 },
		cuCtxSynchronize:          func() uint32 { return 0 },
		cuModuleLoadDataEx:        func(m *uintptr, _ *byte, _ uint32, _ *int32, _ *uintptr) uint32 { *m = 1; return 0 },
		cuModuleUnload:            func(uintptr) uint32 { return 0 },
		cuModuleGetFunction:       func(f *uintptr, _ uintptr, _ *byte) uint32 { *f = 1; return 0 },
		cuMemAlloc:                func(p *uint64, _ uint64) uint32 { *p = 0x1000; return 0 },
		cuMemFree:                 func(uint64) uint32 { return 0 },
		cuMemcpyHtoD:              func(uint64, unsafe.Pointer, uint64) uint32 { return 0 },
		cuMemcpyDtoH:              func(unsafe.Pointer, uint64, uint64) uint32 { return 0 },
		cuMemsetD32:               func(uint64, uint32, uint64) uint32 { return 0 },
		cuStreamCreate:            func(s *uintptr, _ uint32) uint32 { *s = 1; return 0 },
		cuStreamSynchronize:       func(uintptr) uint32 { return 0 },
		cuStreamDestroy:           func(uintptr) uint32 { return 0 },
		cuEventCreate:             func(e *uintptr, _ uint32) uint32 { *e = 1; return 0 },
		cuEventRecord:             func(_, _ uintptr) uint32 { return 0 },
		cuEventSynchronize:        func(uintptr) uint32 { return 0 },
		cuEventElapsedTime:        func(ms *float32, _, _ uintptr) uint32 { *ms = 1.5; return 0 },
		cuEventDestroy:            func(uintptr) uint32 { return 0 },
	}
	a.cuLaunchKernel = func(fn uintptr, gx, gy, gz, bx, by, bz, sh uint32, s uintptr, params, _ unsafe.Pointer) uint32 {
		launches = append(launches, launchRecord{[6]uint32{gx, gy, gz, bx, by, bz}, params})
		return 0
	}
	return a, &launches
}

type launchRecord struct {
	dims   [6]uint32
	params unsafe.Pointer
}

// TestFakeDriver drives the whole host path — open, module load, kernel
// lookup, launch with packed arguments — against a fake driver, and the
// error paths each driver failure takes.
func TestFakeDriver(t *testing.T) {
	a, launches := fakeAPI()
	d, err := open(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "Fake GPU" || d.Major != 9 {
		t.Errorf("device %q %d.%d", d.Name, d.Major, d.Minor)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.GemmBF16(Ptr(1), Ptr(2), Ptr(3), 0, 0, 0, 100, 130, 64, 0, 1, 0); err != nil {
		t.Fatal(err)
	}
	if len(*launches) != 1 || (*launches)[0].dims != [6]uint32{3, 2, 1, 128, 1, 1} {
		t.Fatalf("launches %+v", *launches)
	}
	// The arguments the driver would read: c, a1, b1 … N, M.
	ptrs := unsafe.Slice((*unsafe.Pointer)((*launches)[0].params), 12)
	if *(*uint64)(ptrs[2]) != 3 || *(*uint32)(ptrs[6]) != 100 || *(*uint32)(ptrs[7]) != 130 || *(*float32)(ptrs[10]) != 1 {
		t.Error("packed GEMM arguments differ from the call's")
	}
	// Host-side checks fail before any launch.
	if err := l.GemmF32("xx", 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1); err == nil {
		t.Error("unknown layout accepted")
	}
	if err := l.GemmBF16(0, 0, 0, 0, 0, 0, 4, 4, 3, 0, 1, 1); err == nil {
		t.Error("odd K accepted")
	}
	if err := l.AdamW(0, 0, 0, 0, 10, 0.9, 0.999, 1e-8, 0, 1e-3, 0); err == nil {
		t.Error("AdamW step 0 accepted")
	}
	if len(*launches) != 1 {
		t.Errorf("%d launches after rejected calls, want 1", len(*launches))
	}
	// Driver failures become errors naming the call.
	a.cuMemAlloc = func(*uint64, uint64) uint32 { return 2 }
	if _, err := d.Alloc(1 << 40); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_OUT_OF_MEMORY") || !strings.Contains(err.Error(), "allocating 1099511627776 bytes") {
		t.Errorf("Alloc under OOM = %v", err)
	}
	a.cuLaunchKernel = func(uintptr, uint32, uint32, uint32, uint32, uint32, uint32, uint32, uintptr, unsafe.Pointer, unsafe.Pointer) uint32 {
		return 701
	}
	if err := l.Softmax(1, 2, 4, 4); err == nil || !strings.Contains(err.Error(), "lorac_softmax: cuda: cuLaunchKernel: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES") {
		t.Errorf("failed launch = %v", err)
	}
	a.cuModuleLoadDataEx = func(_ *uintptr, _ *byte, n uint32, opts *int32, vals *uintptr) uint32 {
		// Write the JIT log where the options say.
		o := unsafe.Slice(opts, n)
		v := unsafe.Slice(vals, n)
		if o[0] == 5 && o[1] == 6 && v[1] > 10 {
			logp := *(*unsafe.Pointer)(unsafe.Pointer(&v[0]))
			copy(unsafe.Slice((*byte)(logp), v[1]), "ptxas fatal: bad\x00")
		}
		return 218
	}
	if _, err := d.LoadLorac(); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_INVALID_PTX") || !strings.Contains(err.Error(), "ptxas fatal: bad") {
		t.Errorf("failed module load = %v", err)
	}
	buf := Buffer{Ptr: 1, Len: 8}
	if err := Upload(d, buf, []float32{1, 2, 3}); err == nil {
		t.Error("uploading 12 bytes into 8 succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Alloc(4); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Alloc after Close = %v", err)
	}
	// No devices.
	b, _ := fakeAPI()
	b.cuDeviceGetCount = func(n *int32) uint32 { *n = 0; return 0 }
	if _, err := open(b, 0); err == nil || !strings.Contains(err.Error(), "no GPU 0 (the driver sees 0)") {
		t.Errorf("open with no devices = %v", err)
	}
	b.cuInit = func(uint32) uint32 { return 100 }
	if _, err := open(b, 0); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("open when cuInit fails = %v", err)
	}
}

// TestGemmBF16Selection: GemmBF16 launches the pipelined kernel (128×128
// tiles, 256 threads) when every operand row starts on 16 bytes, else
// the 64×64 kernel (128 threads), and either one's shape errors before a
// launch.
func TestGemmBF16Selection(t *testing.T) {
	a, launches := fakeAPI()
	d, err := open(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	const c, x, w, tt, b = Ptr(0x1000), Ptr(0x2000), Ptr(0x3000), Ptr(0x4000), Ptr(0x5000)
	for _, cs := range []struct {
		a1, b1, a2, b2 Ptr
		N, M, K1, K2   int
		dims           [6]uint32
	}{
		{x, w, tt, b, 100, 130, 64, 8, [6]uint32{2, 1, 1, 256, 1, 1}},     // pipelined
		{x, w, 0, 0, 300, 129, 4096, 0, [6]uint32{2, 3, 1, 256, 1, 1}},    // no LoRA segment: a2, b2 unused
		{x, w, tt + 2, b, 100, 130, 0, 16, [6]uint32{3, 2, 1, 128, 1, 1}}, // A2 off 16 bytes (K1 = 0: the LoRA segment alone)
		{x, w, tt, b, 100, 130, 36, 8, [6]uint32{3, 2, 1, 128, 1, 1}},     // K1 % 8 != 0
		{x, w, tt, b, 100, 130, 64, 6, [6]uint32{3, 2, 1, 128, 1, 1}},     // K2 % 8 != 0
		{x + 8, w, tt, b, 100, 130, 64, 8, [6]uint32{3, 2, 1, 128, 1, 1}}, // A1 off 16 bytes
		{x, w, tt, b + 4, 100, 130, 64, 8, [6]uint32{3, 2, 1, 128, 1, 1}}, // B2 off 16 bytes
		{x, w, tt, b, 1, 8, 8, 8, [6]uint32{1, 1, 1, 256, 1, 1}},          // one row
	} {
		*launches = nil
		if err := l.GemmBF16(c, cs.a1, cs.b1, 0, cs.a2, cs.b2, cs.N, cs.M, cs.K1, cs.K2, 1, 1); err != nil {
			t.Fatalf("%+v: %v", cs, err)
		}
		if len(*launches) != 1 || (*launches)[0].dims != cs.dims {
			t.Errorf("%+v: launches %+v, want dims %v", cs, *launches, cs.dims)
		}
	}
	*launches = nil
	for _, bad := range [][4]int{{0, 4, 8, 0}, {4, 4, 8, -8}, {1 << 20, 1 << 13, 8, 0}} {
		if err := l.GemmBF16(c, x, w, 0, tt, b, bad[0], bad[1], bad[2], bad[3], 1, 1); err == nil {
			t.Errorf("GemmBF16 %v accepted", bad)
		}
	}
	if len(*launches) != 0 {
		t.Errorf("%d launches after rejected calls", len(*launches))
	}
	if s, err := gemmAsyncShape(257, 129, 64, 16); err != nil || s.Grid != (Dim3{2, 3, 1}) || s.Block != (Dim3{256, 1, 1}) {
		t.Errorf("pipelined shape %+v %v", s, err)
	}
	if _, err := gemmAsyncShape(1<<23, 4, 8, 0); err == nil {
		t.Error("a grid past 65535 rows of tiles was accepted")
	}
}
