//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"strings"

	"github.com/ebitengine/purego"
)

// openLibrary dlopens the driver and binds every symbol. Any failure —
// no library, a missing symbol, an unsupported platform — is an error
// wrapping ErrNoDriver, never a panic.
func openLibrary(path string) (a *api, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("%w: binding %s: %v", ErrNoDriver, path, r)
		}
	}()
	lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		detail := strings.TrimSpace(err.Error())
		if detail == "" {
			detail = "cannot be opened"
		}
		return nil, fmt.Errorf("%w: %s: %s (install the NVIDIA driver, or set %s to its libcuda)", ErrNoDriver, path, detail, LibraryEnv)
	}
	a = &api{}
	for name, fptr := range a.symbols() {
		sym, err := purego.Dlsym(lib, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s lacks %s (driver too old?): %v", ErrNoDriver, path, name, err)
		}
		purego.RegisterFunc(fptr, sym)
	}
	return a, nil
}
