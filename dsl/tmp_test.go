package dsl

import (
	"strings"
	"testing"
	"time"
)

func TestTmpWorst(t *testing.T) {
	model := "model { arch llama; vocab 16777216; context 16777216; dim 16777216; layers 4096; heads 16777216; ffn 16777216 }\n"
	for name, src := range map[string]string{
		"blocks":  model + strings.Repeat("lora{rank 16777216;targets all-linear}\n", 40000),
		"targets": model + "lora{rank 1;targets " + strings.Repeat("model.layers.4095.mlp.up_proj,", 30000) + "q}\n",
		"layers":  model + "lora{rank 1;targets q; layers " + strings.Repeat("0..4095,", 100000) + "1}\n",
		"typos":   model + "lora{rank 1;targets " + strings.Repeat("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz,", 10000) + "1}\n",
	} {
		start := time.Now()
		_, err := parseCheck("t", []byte(src))
		n := 0
		if err != nil {
			n = len(err.(ErrorList))
		}
		t.Logf("%s: %d bytes, %v, %d errors", name, len(src), time.Since(start), n)
	}
}
