//go:build !unix || solaris || aix

package driver

import "os"

// lockExclusive does not lock where the standard library has no flock: a
// lock file without one would outlive a killed run and block the next.
// Runs there must not share an --out.
func lockExclusive(*os.File) error { return nil }
