package dsl

import (
	"errors"
	"path/filepath"
	"testing"
)

// FuzzParseCheck feeds arbitrary bytes through Parse and Check: neither may
// panic, every error must be a positioned ErrorList, and whatever parses
// must survive a Format round trip.
func FuzzParseCheck(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*.lora"))
		for _, path := range paths {
			f.Add(readFile(f, path))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("f.lora", src)
		if err != nil {
			if list := errorList(t, err); len(list) != 1 {
				t.Errorf("Parse returned %d errors, want 1", len(list))
			}
			return
		}
		roundTrip(t, "f.lora", src)
		cfg, err := Check(file)
		if err != nil {
			errorList(t, err)
			if cfg != nil {
				t.Errorf("Check returned a Config with errors")
			}
			return
		}
		m := cfg.Model
		// An explicit head_dim frees dim from being heads × head size
		// (Gemma: dim 2304, 8 heads of 256).
		if (m.HeadDim == 0 && m.Dim%m.Heads != 0) || m.Heads%m.KVHeads != 0 || cfg.Train.Seq > m.Context {
			t.Errorf("Check accepted an inconsistent model: %+v", m)
		}
		for _, l := range cfg.LoRA {
			if len(l.Modules) == 0 {
				t.Errorf("Check accepted a lora block that adapts nothing")
			}
		}
	})
}

// The fuzzer's corpus check above relies on errors.As through errorList;
// this keeps errors wrapped by callers working too.
func TestErrorListWrapped(t *testing.T) {
	_, err := Parse("t.lora", []byte("}"))
	var list ErrorList
	if !errors.As(errors.Join(errors.New("compile"), err), &list) || len(list) != 1 {
		t.Errorf("ErrorList not found through a wrapped error: %v", err)
	}
}
