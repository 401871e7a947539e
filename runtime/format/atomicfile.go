package format

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// WriteFileAtomic replaces the file at path with what write produces, so that
// a reader (or a crash) sees either the old file or the complete new one,
// never a half-written file: a training run killed while saving a checkpoint
// must not destroy the previous checkpoint.
//
// write gets a buffered writer on a temporary file in path's directory (the
// same file system, so the final rename is atomic). When write returns nil the
// data is flushed, fsynced and closed, the temporary file is renamed over path
// and the directory is fsynced so the rename itself survives a power cut. On
// any error, and if write panics, the temporary file is removed and the file
// at path is left as it was.
//
// The new file keeps the permission bits of the file it replaces; a new file
// gets 0644. A symbolic link at path is replaced by the new file, not
// followed. If only the final directory fsync fails, the new file is already
// in place and the error says so.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("%s: not a file name", path)
	}
	mode := fs.FileMode(0o644)
	if fi, serr := os.Lstat(path); serr == nil && fi.Mode().IsRegular() {
		mode = fi.Mode().Perm()
	}

	// The leading dot keeps the temporary file out of globs such as
	// *.safetensors that another process might be scanning.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		// Also runs while a panic in write unwinds: the panic goes on,
		// but no temporary file is left behind.
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()

	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%s: written, but syncing its directory failed: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable. Windows
// cannot open a directory for syncing (and makes renames durable itself), so
// there it does nothing.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	// Some file systems (and some platforms' directory handles) do not
	// support fsync on directories; there is nothing more to do then.
	if errors.Is(err, errors.ErrUnsupported) {
		err = nil
	}
	return errors.Join(err, d.Close())
}
