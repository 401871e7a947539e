package cuda

import (
	"bytes"
	"embed"
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

//go:embed ptx/*.ptx
var modules embed.FS

// PTX returns the embedded module for an arch (sm_80, sm_90).
func PTX(arch string) ([]byte, error) {
	b, err := modules.ReadFile("ptx/lorac_" + arch + ".ptx")
	if err != nil {
		return nil, fmt.Errorf("cuda: no PTX module for %s (lorac emits sm_80 and sm_90)", arch)
	}
	return b, nil
}

// ArchFor picks the newest embedded module a device of compute capability
// major.minor runs: sm_90 on 9.x and later, sm_80 on 8.x (the driver JITs
// PTX forward); older devices lack bf16 mma.sync and are refused.
func ArchFor(major, minor int) (string, error) {
	switch {
	case major >= 9:
		return "sm_90", nil
	case major == 8:
		return "sm_80", nil
	}
	return "", fmt.Errorf("cuda: compute capability %d.%d is older than lorac's oldest target, sm_80", major, minor)
}

// Device is one GPU with its primary context. Its methods may be called
// from any goroutine: each binds the context to the calling thread first.
type Device struct {
	api          *api
	dev          int32
	ctx          uintptr
	Ordinal      int
	Name         string
	Major, Minor int
}

// Devices returns the number of GPUs the driver sees.
func Devices() (int, error) {
	a, err := driverAPI()
	if err != nil {
		return 0, err
	}
	return deviceCount(a)
}

func deviceCount(a *api) (int, error) {
	if err := check("cuInit", a.cuInit(0)); err != nil {
		return 0, err
	}
	var n int32
	if err := check("cuDeviceGetCount", a.cuDeviceGetCount(&n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// Open opens GPU ordinal.
func Open(ordinal int) (*Device, error) {
	a, err := driverAPI()
	if err != nil {
		return nil, err
	}
	return open(a, ordinal)
}

func open(a *api, ordinal int) (*Device, error) {
	n, err := deviceCount(a)
	if err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: no GPU %d (the driver sees %d)", ordinal, n)
	}
	d := &Device{api: a, Ordinal: ordinal}
	if err := check("cuDeviceGet", a.cuDeviceGet(&d.dev, int32(ordinal))); err != nil {
		return nil, err
	}
	name := make([]byte, 256)
	if err := check("cuDeviceGetName", a.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	d.Name = string(name)
	var major, minor int32
	const ccMajor, ccMinor = 75, 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_{MAJOR,MINOR}
	if err := check("cuDeviceGetAttribute", a.cuDeviceGetAttribute(&major, ccMajor, d.dev)); err != nil {
		return nil, err
	}
	if err := check("cuDeviceGetAttribute", a.cuDeviceGetAttribute(&minor, ccMinor, d.dev)); err != nil {
		return nil, err
	}
	d.Major, d.Minor = int(major), int(minor)
	if err := check("cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	return d, nil
}

// Arch is the embedded module's arch for this device.
func (d *Device) Arch() (string, error) { return ArchFor(d.Major, d.Minor) }

// do runs f with the device's context current on a locked OS thread.
func (d *Device) do(f func() error) error {
	if d == nil || d.api == nil {
		return fmt.Errorf("cuda: device is closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check("cuCtxSetCurrent", d.api.cuCtxSetCurrent(d.ctx)); err != nil {
		return err
	}
	return f()
}

// Close releases the primary context; the Device is unusable after.
func (d *Device) Close() error {
	if d == nil || d.api == nil {
		return nil
	}
	err := check("cuDevicePrimaryCtxRelease_v2", d.api.cuDevicePrimaryCtxRelease(d.dev))
	d.api = nil
	return err
}

// Sync waits for all work on the device.
func (d *Device) Sync() error {
	return d.do(func() error { return check("cuCtxSynchronize", d.api.cuCtxSynchronize()) })
}

// Buffer is device memory holding Len bytes.
type Buffer struct {
	Ptr Ptr
	Len int
}

// Alloc allocates n bytes (n > 0).
func (d *Device) Alloc(n int) (Buffer, error) {
	if n <= 0 {
		return Buffer{}, fmt.Errorf("cuda: Alloc(%d): size must be positive", n)
	}
	var p uint64
	err := d.do(func() error { return check("cuMemAlloc_v2", d.api.cuMemAlloc(&p, uint64(n))) })
	if err != nil {
		return Buffer{}, fmt.Errorf("allocating %d bytes: %w", n, err)
	}
	return Buffer{Ptr(p), n}, nil
}

// Free frees b; freeing the zero Buffer does nothing.
func (d *Device) Free(b Buffer) error {
	if b.Ptr == 0 {
		return nil
	}
	return d.do(func() error { return check("cuMemFree_v2", d.api.cuMemFree(uint64(b.Ptr))) })
}

// bytesOf views a slice of fixed-size elements as bytes.
func bytesOf[T float32 | float64 | int32 | uint16 | uint32](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// Upload copies src into b, which must be large enough.
func Upload[T float32 | float64 | int32 | uint16 | uint32](d *Device, b Buffer, src []T) error {
	return d.CopyIn(b, bytesOf(src))
}

// Download copies b's first len(dst) elements into dst.
func Download[T float32 | float64 | int32 | uint16 | uint32](d *Device, dst []T, b Buffer) error {
	return d.CopyOut(bytesOf(dst), b)
}

// CopyIn copies src to the start of b.
func (d *Device) CopyIn(b Buffer, src []byte) error {
	if len(src) > b.Len {
		return fmt.Errorf("cuda: copying %d bytes into a %d-byte buffer", len(src), b.Len)
	}
	if len(src) == 0 {
		return nil
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&src[0])
	return d.do(func() error {
		return check("cuMemcpyHtoD_v2", d.api.cuMemcpyHtoD(uint64(b.Ptr), unsafe.Pointer(&src[0]), uint64(len(src))))
	})
}

// CopyOut copies the start of b into dst.
func (d *Device) CopyOut(dst []byte, b Buffer) error {
	if len(dst) > b.Len {
		return fmt.Errorf("cuda: copying %d bytes out of a %d-byte buffer", len(dst), b.Len)
	}
	if len(dst) == 0 {
		return nil
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&dst[0])
	return d.do(func() error {
		return check("cuMemcpyDtoH_v2", d.api.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), uint64(b.Ptr), uint64(len(dst))))
	})
}

// Zero sets b to zero bytes (b.Len a multiple of 4).
func (d *Device) Zero(b Buffer) error {
	if b.Len%4 != 0 {
		return fmt.Errorf("cuda: Zero: %d bytes is not a whole number of words", b.Len)
	}
	return d.do(func() error { return check("cuMemsetD32_v2", d.api.cuMemsetD32(uint64(b.Ptr), 0, uint64(b.Len/4))) })
}

// Module is a loaded PTX module and the signatures of its entries.
type Module struct {
	d    *Device
	mod  uintptr
	sigs map[string]Signature
}

// LoadModule JIT-compiles PTX text; a compile failure carries the JIT log.
func (d *Device) LoadModule(ptx []byte) (*Module, error) {
	sigs, err := ParseSignatures(ptx)
	if err != nil {
		return nil, err
	}
	img := append(bytes.Clone(ptx), 0)
	logBuf := make([]byte, 8192)
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&img[0])
	pin.Pin(&logBuf[0])
	const jitErrorLog, jitErrorLogSize = 5, 6 // CU_JIT_ERROR_LOG_BUFFER{,_SIZE_BYTES}
	opts := []int32{jitErrorLog, jitErrorLogSize}
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	pin.Pin(&opts[0])
	pin.Pin(&vals[0])
	m := &Module{d: d, sigs: sigs}
	err = d.do(func() error {
		return check("cuModuleLoadDataEx", d.api.cuModuleLoadDataEx(&m.mod, &img[0], uint32(len(opts)), &opts[0], &vals[0]))
	})
	if err != nil {
		if e, ok := err.(*Error); ok {
			if i := bytes.IndexByte(logBuf, 0); i >= 0 {
				logBuf = logBuf[:i]
			}
			e.Detail = strings.TrimSpace(string(logBuf))
		}
		return nil, err
	}
	return m, nil
}

// LoadLorac loads lorac's embedded kernels for this device.
func (d *Device) LoadLorac() (*Module, error) {
	arch, err := d.Arch()
	if err != nil {
		return nil, err
	}
	ptx, err := PTX(arch)
	if err != nil {
		return nil, err
	}
	return d.LoadModule(ptx)
}

// Unload frees the module.
func (m *Module) Unload() error {
	return m.d.do(func() error { return check("cuModuleUnload", m.d.api.cuModuleUnload(m.mod)) })
}

// Kernel is one entry of a module.
type Kernel struct {
	m    *Module
	Name string
	Sig  Signature
	fn   uintptr
}

// Kernel looks up an entry.
func (m *Module) Kernel(name string) (*Kernel, error) {
	sig, ok := m.sigs[name]
	if !ok {
		return nil, fmt.Errorf("cuda: the module has no kernel %s", name)
	}
	k := &Kernel{m: m, Name: name, Sig: sig}
	cname := append([]byte(name), 0)
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&cname[0])
	err := m.d.do(func() error {
		return check("cuModuleGetFunction", m.d.api.cuModuleGetFunction(&k.fn, m.mod, &cname[0]))
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z int }

func (g Dim3) valid() bool { return g.X > 0 && g.Y > 0 && g.Z > 0 }

// Stream is a CUDA stream; the zero Stream is the legacy default stream.
type Stream struct{ s uintptr }

// Launch packs args against the kernel's PTX signature and launches it on
// stream. Launches are asynchronous: errors of the kernel itself surface
// at the next synchronisation.
func (k *Kernel) Launch(grid, block Dim3, shared int, stream Stream, args ...any) error {
	if !grid.valid() || !block.valid() {
		return fmt.Errorf("cuda: %s: launch shape grid %v block %v must be positive", k.Name, grid, block)
	}
	p, err := Pack(k.Name, k.Sig, args...)
	if err != nil {
		return err
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	if len(p.slots) > 0 {
		pin.Pin(&p.slots[0])
		pin.Pin(&p.ptrs[0])
	}
	d := k.m.d
	err = d.do(func() error {
		return check("cuLaunchKernel", d.api.cuLaunchKernel(k.fn, uint32(grid.X), uint32(grid.Y), uint32(grid.Z),
			uint32(block.X), uint32(block.Y), uint32(block.Z), uint32(shared), stream.s, p.params(), nil))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", k.Name, err)
	}
	return nil
}

// NewStream creates a stream.
func (d *Device) NewStream() (Stream, error) {
	var s uintptr
	err := d.do(func() error { return check("cuStreamCreate", d.api.cuStreamCreate(&s, 0)) })
	return Stream{s}, err
}

// SyncStream waits for a stream's work.
func (d *Device) SyncStream(s Stream) error {
	return d.do(func() error { return check("cuStreamSynchronize", d.api.cuStreamSynchronize(s.s)) })
}

// DestroyStream destroys a stream made by NewStream.
func (d *Device) DestroyStream(s Stream) error {
	if s.s == 0 {
		return nil
	}
	return d.do(func() error { return check("cuStreamDestroy_v2", d.api.cuStreamDestroy(s.s)) })
}

// Event marks a point in a stream, for timing.
type Event struct{ e uintptr }

// NewEvent creates a timing event.
func (d *Device) NewEvent() (Event, error) {
	var e uintptr
	err := d.do(func() error { return check("cuEventCreate", d.api.cuEventCreate(&e, 0)) })
	return Event{e}, err
}

// Record records e on stream s.
func (d *Device) Record(e Event, s Stream) error {
	return d.do(func() error { return check("cuEventRecord", d.api.cuEventRecord(e.e, s.s)) })
}

// Elapsed waits for end and returns the milliseconds between two recorded
// events.
func (d *Device) Elapsed(start, end Event) (float32, error) {
	var ms float32
	err := d.do(func() error {
		if err := check("cuEventSynchronize", d.api.cuEventSynchronize(end.e)); err != nil {
			return err
		}
		return check("cuEventElapsedTime", d.api.cuEventElapsedTime(&ms, start.e, end.e))
	})
	return ms, err
}

// DestroyEvent destroys an event.
func (d *Device) DestroyEvent(e Event) error {
	if e.e == 0 {
		return nil
	}
	return d.do(func() error { return check("cuEventDestroy_v2", d.api.cuEventDestroy(e.e)) })
}
