package main

import (
	"os"
	"testing"

	"lorac.dev/lorac/dsl"
)

// TestTrainsWhatItGenerates: the demo generates up to the context, so the
// adapter must train there too; positions past seq are never trained and
// generation falls apart in them.
func TestTrainsWhatItGenerates(t *testing.T) {
	src, err := os.ReadFile("tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	f, err := dsl.Parse("tiny.lora", src)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := dsl.Check(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Seq != cfg.Model.Context {
		t.Errorf("tiny.lora trains at seq %d but generates up to its context %d", cfg.Train.Seq, cfg.Model.Context)
	}
}
