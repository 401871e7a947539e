package dsl

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden .err files under testdata/bad")

// TestBadFiles runs Parse and Check over every testdata/bad/*.lora and
// compares the errors with the sibling .err file.
func TestBadFiles(t *testing.T) {
	for _, path := range testdataFiles(t, "bad") {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".lora"), func(t *testing.T) {
			_, err := parseCheck(name, readFile(t, path))
			if err == nil {
				t.Fatal("no error")
			}
			errorList(t, err)
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".lora") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := string(readFile(t, golden)); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestGoodFiles checks that every example under testdata/good is valid.
func TestGoodFiles(t *testing.T) {
	for _, path := range testdataFiles(t, "good") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := parseCheck(path, readFile(t, path))
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.LoRA) > 0 && len(cfg.LoRA[0].Modules) == 0 {
				t.Errorf("first lora block adapts nothing")
			}
		})
	}
}
