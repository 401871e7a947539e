//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"fmt"
	"runtime"
)

// openLibrary: lorac binds the CUDA driver on Linux on amd64 and arm64 only
// (purego's dlopen without cgo); elsewhere every device entry point reports
// that.
func openLibrary(path string) (*api, error) {
	return nil, fmt.Errorf("%w: lorac's CUDA device supports linux/amd64 and linux/arm64, not %s/%s (%s)", ErrNoDriver, runtime.GOOS, runtime.GOARCH, path)
}
