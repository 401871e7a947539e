package gen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"lorac.dev/lorac/codegen"
)

// TestFresh: every committed generated package is what lorac generates
// today, byte for byte, with no leftover generated files (and generation is
// deterministic).
func TestFresh(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, p := range Packages {
		if dirs[p.Dir] {
			t.Errorf("%s is listed twice", p.Dir)
		}
		dirs[p.Dir] = true
		files, err := p.Generate(root)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.Generate(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("%s: no files generated", p.Dir)
		}
		for i, f := range files {
			if !bytes.Equal(f.Src, again[i].Src) {
				t.Errorf("%s/%s: two generations differ", p.Dir, f.Name)
			}
			if !bytes.HasPrefix(f.Src, []byte("// "+codegen.Header+"\n")) {
				t.Errorf("%s/%s lacks the generated-code header", p.Dir, f.Name)
			}
			old, err := os.ReadFile(filepath.Join(root, p.Dir, f.Name))
			if err != nil || !bytes.Equal(old, f.Src) {
				t.Errorf("%s/%s is stale; run %s", p.Dir, f.Name, Command)
			}
		}
		extra, err := p.Extra(root, files)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range extra {
			t.Errorf("%s/%s is generated but lorac no longer makes it; run %s", p.Dir, name, Command)
		}
	}
}

// TestDataFresh: the committed data files are what their Go code makes.
func TestDataFresh(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range DataFiles {
		old, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path)))
		if err != nil || !bytes.Equal(old, f.Make()) {
			t.Errorf("%s is stale or missing; run %s", f.Path, Command)
		}
	}
}
