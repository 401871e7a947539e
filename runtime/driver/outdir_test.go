package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenOutRefusesBadPlaces(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ out, want string }{
		{file, "is a file; give a directory"},
		{filepath.Join(file, "sub"), "cannot make the output directory"},
	} {
		if _, err := openOut(c.out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("openOut(%s) = %v; want an error with %q", c.out, err, c.want)
		}
	}
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; the read-only case needs another user")
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if _, err := openOut(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("openOut(read-only) = %v; want \"not writable\"", err)
	}
}

// TestRemoveStale: what a run killed mid-save leaves goes; the results, the
// checkpoint and files lorac did not write stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	stale := []string{".checkpoint.tmp1234/adapter_model.safetensors", ".adapter_model.safetensors.tmp-99", ".loss.png.tmp-1", ".loss.svg.tmp-3", ".model.safetensors.tmp-7"}
	keep := []string{"checkpoint/trainer_state.json", "adapter_model.safetensors", ".notes.tmp-1", "loss.png", "loss.svg"}
	for _, p := range append(append([]string{}, stale...), keep...) {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStale(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(filepath.Join(dir, strings.Split(p, "/")[0])); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

func TestCheckOutFile(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "model.safetensors")
	adapter := filepath.Join(dir, "adapter")
	link := filepath.Join(dir, "link.safetensors")
	if err := os.MkdirAll(adapter, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, filepath.Join(adapter, "adapter_model.safetensors")} {
		if err := os.WriteFile(p, []byte("weights"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(base, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ out, want string }{
		{adapter, "is a directory; give a file path"},
		{base, "is the input " + base},
		{link, "is the input " + base},
		{filepath.Join(adapter, "adapter_model.safetensors"), "is the input " + filepath.Join(adapter, "adapter_model.safetensors")},
		{filepath.Join(dir, "missing", "merged.safetensors"), "cannot write in " + filepath.Join(dir, "missing")},
	} {
		if err := CheckOutFile("-o", c.out, base, adapter); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckOutFile(%s) = %v; want an error with %q", c.out, err, c.want)
		}
	}
	if err := CheckOutFile("-o", filepath.Join(dir, "merged.safetensors"), base, adapter); err != nil {
		t.Errorf("a new file: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("the check left files behind: %v", entries)
	}
	if b, _ := os.ReadFile(base); string(b) != "weights" {
		t.Errorf("the base changed: %q", b)
	}
}
