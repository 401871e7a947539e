//go:build unix

package format

import (
	"math"
	"os"
	"syscall"
)

// canMmap says whether OpenSafetensors maps large files here; tests use it
// to insist that the mapped path really ran.
const canMmap = true

// mmapFile maps the first size bytes of f read-only. Mapping, rather than
// reading, lets a multi-gigabyte model open at once and share the page cache
// with other processes loading the same weights; pages are read on first
// touch.
//
// A nil slice means the file was not mapped (a size beyond a 32-bit address
// space, a file system without mmap): the caller reads the file instead.
func mmapFile(f *os.File, size int64) (data []byte, unmap func() error) {
	if size <= 0 || size > math.MaxInt {
		return nil, nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	return data, func() error { return syscall.Munmap(data) }
}
