//go:build !unix

package format

import "os"

// canMmap says whether OpenSafetensors maps large files here; tests use it
// to insist that the mapped path really ran.
const canMmap = false

// mmapFile reports that mapping is unavailable on this platform, so
// OpenSafetensors reads the whole file instead: slower to open and not
// shared between processes, but the same results.
func mmapFile(f *os.File, size int64) (data []byte, unmap func() error) {
	return nil, nil
}
