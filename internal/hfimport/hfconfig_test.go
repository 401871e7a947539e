package hfimport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
)

// TestHFConfigRoundTrip writes the config.json of each conformance model
// read back from its own config.json and reads it again: the model block must
// not change, so a base lorac saves loads into the architecture it trained.
func TestHFConfigRoundTrip(t *testing.T) {
	for _, fam := range []string{"gpt2", "llama", "llama3", "mistral", "qwen2", "qwen3"} {
		t.Run(fam, func(t *testing.T) {
			want, err := Model(filepath.Join("..", "..", "conformance", "testdata", fam))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := want.HFConfig()
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), fam)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Model(dir)
			if err != nil {
				t.Fatalf("reading back %s: %v", raw, err)
			}
			got.Name = want.Name
			if *got != *want {
				t.Errorf("round trip changed the model:\n got %+v\nwant %+v", *got, *want)
			}
		})
	}
	if _, err := (&dsl.Model{Name: "m", Arch: "gpt2"}).HFConfig(); err == nil {
		t.Error("a gpt2 without biases was given a config")
	}
	gemma, err := Model(filepath.Join("..", "..", "conformance", "testdata", "gemma"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gemma.HFConfig(); err == nil || !strings.Contains(err.Error(), "Gemma") {
		t.Errorf("a Gemma model: %v, want an error naming Gemma", err)
	}
}
