package cuda

import (
	"os"
	"sync"
	"unsafe"
)

// api is the part of the driver API lorac calls. Load fills it from
// libcuda; tests fill it with fakes to exercise the error paths without a
// GPU.
type api struct {
	cuInit                    func(flags uint32) uint32
	cuDeviceGetCount          func(n *int32) uint32
	cuDeviceGet               func(dev *int32, ordinal int32) uint32
	cuDeviceGetName           func(name *byte, n int32, dev int32) uint32
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) uint32
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) uint32
	cuDevicePrimaryCtxRelease func(dev int32) uint32
	cuCtxSetCurrent           func(ctx uintptr) uint32
	cuCtxSynchronize          func() uint32
	cuModuleLoadDataEx        func(mod *uintptr, image *byte, n uint32, opts *int32, vals *uintptr) uint32
	cuModuleUnload            func(mod uintptr) uint32
	cuModuleGetFunction       func(fn *uintptr, mod uintptr, name *byte) uint32
	cuMemAlloc                func(p *uint64, size uint64) uint32
	cuMemFree                 func(p uint64) uint32
	cuMemcpyHtoD              func(dst uint64, src unsafe.Pointer, n uint64) uint32
	cuMemcpyDtoH              func(dst unsafe.Pointer, src uint64, n uint64) uint32
	cuMemsetD32               func(dst uint64, v uint32, n uint64) uint32
	cuLaunchKernel            func(fn uintptr, gx, gy, gz, bx, by, bz, shmem uint32, stream uintptr, params, extra unsafe.Pointer) uint32
	cuStreamCreate            func(s *uintptr, flags uint32) uint32
	cuStreamSynchronize       func(s uintptr) uint32
	cuStreamDestroy           func(s uintptr) uint32
	cuEventCreate             func(e *uintptr, flags uint32) uint32
	cuEventRecord             func(e, s uintptr) uint32
	cuEventSynchronize        func(e uintptr) uint32
	cuEventElapsedTime        func(ms *float32, start, end uintptr) uint32
	cuEventDestroy            func(e uintptr) uint32
}

// symbols maps each api field to its exported name in libcuda (the _v2
// names are the 64-bit-size entry points the headers alias).
func (a *api) symbols() map[string]any {
	return map[string]any{
		"cuInit":                       &a.cuInit,
		"cuDeviceGetCount":             &a.cuDeviceGetCount,
		"cuDeviceGet":                  &a.cuDeviceGet,
		"cuDeviceGetName":              &a.cuDeviceGetName,
		"cuDeviceGetAttribute":         &a.cuDeviceGetAttribute,
		"cuDevicePrimaryCtxRetain":     &a.cuDevicePrimaryCtxRetain,
		"cuDevicePrimaryCtxRelease_v2": &a.cuDevicePrimaryCtxRelease,
		"cuCtxSetCurrent":              &a.cuCtxSetCurrent,
		"cuCtxSynchronize":             &a.cuCtxSynchronize,
		"cuModuleLoadDataEx":           &a.cuModuleLoadDataEx,
		"cuModuleUnload":               &a.cuModuleUnload,
		"cuModuleGetFunction":          &a.cuModuleGetFunction,
		"cuMemAlloc_v2":                &a.cuMemAlloc,
		"cuMemFree_v2":                 &a.cuMemFree,
		"cuMemcpyHtoD_v2":              &a.cuMemcpyHtoD,
		"cuMemcpyDtoH_v2":              &a.cuMemcpyDtoH,
		"cuMemsetD32_v2":               &a.cuMemsetD32,
		"cuLaunchKernel":               &a.cuLaunchKernel,
		"cuStreamCreate":               &a.cuStreamCreate,
		"cuStreamSynchronize":          &a.cuStreamSynchronize,
		"cuStreamDestroy_v2":           &a.cuStreamDestroy,
		"cuEventCreate":                &a.cuEventCreate,
		"cuEventRecord":                &a.cuEventRecord,
		"cuEventSynchronize":           &a.cuEventSynchronize,
		"cuEventElapsedTime":           &a.cuEventElapsedTime,
		"cuEventDestroy_v2":            &a.cuEventDestroy,
	}
}

// LibraryEnv names the driver library to open instead of libcuda.so.1.
const LibraryEnv = "LORAC_CUDA_LIB"

var (
	loadOnce sync.Once
	loaded   *api
	loadErr  error
)

// driverAPI opens the driver once per process.
func driverAPI() (*api, error) {
	loadOnce.Do(func() { loaded, loadErr = openLibrary(libraryPath()) })
	return loaded, loadErr
}

func libraryPath() string {
	if p := os.Getenv(LibraryEnv); p != "" {
		return p
	}
	return "libcuda.so.1"
}
