package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	loracsrc "lorac.dev/lorac"
)

// standard reports whether path names a standard-library package: its first
// element has no dot, as no module path's may.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// TestEmbeddedRuntimeImports: the lorac command builds model programs
// offline from the source it embeds, with a go.mod that requires nothing,
// so every embedded Go file it writes may import only the standard library
// and the runtime's own packages — all but the directories of
// ModelBuildSkips, which it leaves out (and which must exist).
func TestEmbeddedRuntimeImports(t *testing.T) {
	n := 0
	for _, dir := range loracsrc.ModelBuildSkips {
		if _, err := fs.Stat(loracsrc.RuntimeSource, dir); err != nil {
			t.Errorf("ModelBuildSkips names %s, which is not embedded: %v", dir, err)
		}
	}
	err := fs.WalkDir(loracsrc.RuntimeSource, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && slices.Contains(loracsrc.ModelBuildSkips, path) {
			return fs.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		src, err := loracsrc.RuntimeSource.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		n++
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			if !standard(imp) && !strings.HasPrefix(imp, module+"/runtime/") {
				t.Errorf("%s imports %s; the embedded runtime may import only the standard library and %s/runtime/...", path, imp, module)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("the embedded runtime has only %d Go files", n)
	}
}

// TestEmbeddedRuntimeComplete: every Go and assembly file under runtime/,
// in every subpackage, is in the embedded source.
func TestEmbeddedRuntimeComplete(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(filepath.Join(root, "runtime"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".s")) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := loracsrc.RuntimeSource.ReadFile(filepath.ToSlash(rel))
		if err != nil {
			t.Errorf("%s is not embedded: %v", rel, err)
		} else if string(got) != string(want) {
			t.Errorf("%s: the embedded copy differs from the file", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedServeComplete: every Go file of package serve is in the
// source lorac embeds for the model program of lorac serve, as it is.
func TestEmbeddedServeComplete(t *testing.T) {
	dir := filepath.Join("..", "..", "serve")
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range des {
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".go") || strings.HasSuffix(d.Name(), "_test.go") {
			continue
		}
		want, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := loracsrc.ServeSource.ReadFile("serve/" + d.Name())
		if err != nil || string(got) != string(want) {
			t.Errorf("serve/%s is not embedded as it is (%v)", d.Name(), err)
		}
		n++
	}
	if n < 3 {
		t.Fatalf("package serve has only %d Go files", n)
	}
}
