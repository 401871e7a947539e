//go:build unix && !solaris && !aix

package driver

import (
	"errors"
	"os"
	"syscall"
)

// lockExclusive takes f's advisory lock without waiting. The kernel drops it
// when the process ends, however it ends, so a killed run never leaves a
// directory locked.
func lockExclusive(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
