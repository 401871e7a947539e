package format

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// afEntries lists dir's file names, to catch a leftover temporary file.
func afEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func afWriteString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "adapter.safetensors")

	if err := WriteFileAtomic(path, afWriteString("first")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Fatalf("file holds %q, want %q", got, "first")
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("new file has mode %v, want 0644", fi.Mode().Perm())
		}
		// Replacing keeps the old file's permissions.
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("0123456789", 300_000) // larger than the write buffer
	if err := WriteFileAtomic(path, afWriteString(big)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != big {
		t.Fatalf("replaced file holds %d bytes, want %d", len(got), len(big))
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("replaced file has mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if names := afEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only the file", names)
	}
}

// TestWriteFileAtomicFailure: an error or a panic part way through leaves
// the old file as it was and no temporary file behind.
func TestWriteFileAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	err := WriteFileAtomic(path, func(w io.Writer) error {
		io.WriteString(w, strings.Repeat("new", 1<<20)) // past the buffer: some bytes reach the temp file
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one wrapping %v and naming %s", err, boom, path)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a failed write the file holds %.20q…, want %q", got, "old")
	}
	if names := afEntries(t, dir); len(names) != 1 {
		t.Errorf("after a failed write the directory holds %q", names)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic in write did not propagate")
			}
		}()
		WriteFileAtomic(path, func(w io.Writer) error {
			io.WriteString(w, "partial")
			panic("bug in the writer")
		})
	}()
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a panicking write the file holds %q, want %q", got, "old")
	}
	if names := afEntries(t, dir); len(names) != 1 {
		t.Errorf("after a panicking write the directory holds %q", names)
	}

	// A directory that does not exist: an error naming the path, nothing
	// created.
	missing := filepath.Join(dir, "no", "such", "file")
	if err := WriteFileAtomic(missing, afWriteString("x")); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("writing into a missing directory: %v", err)
	}
	// A directory in the way cannot be replaced by a file.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(sub, afWriteString("x")); err == nil {
		t.Error("replacing a directory succeeded")
	}
	if names := afEntries(t, dir); len(names) != 2 {
		t.Errorf("after failed writes the directory holds %q", names)
	}
}

func TestWriteFileAtomicRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := WriteFileAtomic("plain.txt", afWriteString("x")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile("plain.txt"); string(got) != "x" {
		t.Errorf("file holds %q", got)
	}
}
