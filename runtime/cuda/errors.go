package cuda

import (
	"errors"
	"fmt"
)

// Result is a CUresult, the status every driver call returns.
type Result uint32

// The results lorac names. Values are the driver API's.
const (
	Success              Result = 0
	ErrInvalidValue      Result = 1
	ErrOutOfMemory       Result = 2
	ErrNotInitialized    Result = 3
	ErrStubLibrary       Result = 34
	ErrNoDevice          Result = 100
	ErrInvalidDevice     Result = 101
	ErrInvalidImage      Result = 200
	ErrInvalidContext    Result = 201
	ErrNoBinaryForGPU    Result = 209
	ErrInvalidPTX        Result = 218
	ErrUnsupportedPTX    Result = 222
	ErrInvalidHandle     Result = 400
	ErrNotFound          Result = 500
	ErrIllegalAddress    Result = 700
	ErrLaunchOutOfRes    Result = 701
	ErrMisalignedAddress Result = 716
	ErrLaunchFailed      Result = 719
	ErrUnknown           Result = 999
)

var resultNames = map[Result]string{
	Success:              "CUDA_SUCCESS",
	ErrInvalidValue:      "CUDA_ERROR_INVALID_VALUE",
	ErrOutOfMemory:       "CUDA_ERROR_OUT_OF_MEMORY",
	ErrNotInitialized:    "CUDA_ERROR_NOT_INITIALIZED",
	4:                    "CUDA_ERROR_DEINITIALIZED",
	ErrStubLibrary:       "CUDA_ERROR_STUB_LIBRARY",
	46:                   "CUDA_ERROR_DEVICE_UNAVAILABLE",
	ErrNoDevice:          "CUDA_ERROR_NO_DEVICE",
	ErrInvalidDevice:     "CUDA_ERROR_INVALID_DEVICE",
	ErrInvalidImage:      "CUDA_ERROR_INVALID_IMAGE",
	ErrInvalidContext:    "CUDA_ERROR_INVALID_CONTEXT",
	ErrNoBinaryForGPU:    "CUDA_ERROR_NO_BINARY_FOR_GPU",
	ErrInvalidPTX:        "CUDA_ERROR_INVALID_PTX",
	ErrUnsupportedPTX:    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	ErrInvalidHandle:     "CUDA_ERROR_INVALID_HANDLE",
	ErrNotFound:          "CUDA_ERROR_NOT_FOUND",
	600:                  "CUDA_ERROR_NOT_READY",
	ErrIllegalAddress:    "CUDA_ERROR_ILLEGAL_ADDRESS",
	ErrLaunchOutOfRes:    "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	702:                  "CUDA_ERROR_LAUNCH_TIMEOUT",
	715:                  "CUDA_ERROR_ILLEGAL_INSTRUCTION",
	ErrMisalignedAddress: "CUDA_ERROR_MISALIGNED_ADDRESS",
	ErrLaunchFailed:      "CUDA_ERROR_LAUNCH_FAILED",
	ErrUnknown:           "CUDA_ERROR_UNKNOWN",
}

// String is the driver's name for the result, or CUDA_ERROR_<n>.
func (r Result) String() string {
	if n, ok := resultNames[r]; ok {
		return n
	}
	return fmt.Sprintf("CUDA_ERROR_%d", uint32(r))
}

// Error is a failed driver call.
type Error struct {
	Call   string // the driver function, e.g. cuMemAlloc_v2
	Result Result
	Detail string // the JIT log of a failed module load, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("cuda: %s: %s (%d)", e.Call, e.Result, uint32(e.Result))
	if e.Result == ErrOutOfMemory {
		s += "; the GPU has too little free memory for this model or batch"
	}
	if e.Detail != "" {
		s += ":\n" + e.Detail
	}
	return s
}

// check turns a result into an error.
func check(call string, r uint32) error {
	if r == 0 {
		return nil
	}
	return &Error{Call: call, Result: Result(r)}
}

// ErrNoDriver is wrapped by every error that comes from a missing or
// unusable driver library.
var ErrNoDriver = errors.New("no CUDA driver found")
