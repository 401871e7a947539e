package compile

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"lorac.dev/lorac/codegen"
	"lorac.dev/lorac/graph"
)

// TestTargetsReachCodegen: the target blocks arrive in the codegen spec as
// data, a file without a cpu block allowing every variant.
func TestTargetsReachCodegen(t *testing.T) {
	for path, want := range map[string]codegen.Targets{
		"../../examples/bench-gpt2s/bench-gpt2s.lora": {ISAs: []string{"avx512", "avx2"}, CUDAArchs: []string{"sm_90"}},
		"../../examples/tiny/tiny.lora":               {ISAs: []string{"avx512", "avx2"}},
		"../gen/gpt2.lora":                            {ISAs: []string{"avx512", "avx2", "generic"}},
	} {
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Spec(cfg, "model", path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.Targets, want) {
			t.Errorf("%s: targets %+v, want %+v", path, s.Targets, want)
		}
	}
}

// TestDeviceFile: a target cuda block adds codegen.DeviceFile, which
// embeds the .lora text exactly (raw, or quoted where it has a backquote)
// and declares NewCUDA and NewDevice; the other files are those of the
// same model without the block but for the Spec's CUDAArchs. Without the
// text a target cuda block is an error, and without the block there is no
// such file.
func TestDeviceFile(t *testing.T) {
	src, err := os.ReadFile("../gen/gpt2.lora")
	if err != nil {
		t.Fatal(err)
	}
	files := func(src string) []codegen.File {
		t.Helper()
		fs, err := GenerateSource("m.lora", []byte(src), "m")
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	cpu := files(string(src))
	if len(cpu) != 3 {
		t.Fatalf("without a target cuda block: %d files", len(cpu))
	}
	for _, extra := range []string{"target cuda { arch sm_80 }\n", "target cuda { arch sm_90 } # a `quoted` comment\n"} {
		with := string(src) + extra
		dev := files(with)
		if len(dev) != 4 || dev[3].Name != codegen.DeviceFile {
			t.Fatalf("with a target cuda block: %d files", len(dev))
		}
		for i, f := range cpu {
			if f.Name != dev[i].Name || f.Name != "model.go" && string(f.Src) != string(dev[i].Src) {
				t.Errorf("%s differs with a target cuda block", f.Name)
			}
		}
		body := string(dev[3].Src)
		lit := "`" + with + "`"
		if strings.Contains(with, "`") {
			lit = strconv.Quote(with)
		}
		for _, w := range []string{"// " + codegen.Header, "const LoraSource = " + lit, "func NewCUDA(gpu int) (*Model, error) {", "func NewDevice(o device.Options) (*Model, error) {", "o.Spec = Spec"} {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q:\n%s", codegen.DeviceFile, w, body)
			}
		}
	}
	cfg, err := LoadSource("m.lora", append(src, "target cuda { arch sm_90 }\n"...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateConfig(cfg, "m.lora", nil, "m"); err == nil || !strings.Contains(err.Error(), "no .lora text") {
		t.Errorf("a target cuda block without the text: %v", err)
	}
}

// TestEvalAndDropout: the evaluation graphs come out of the pass table in
// Eval mode (adapters fused, no merge, no backward, scheduled and planned),
// and only the LoRA training graph applies dropout.
func TestEvalAndDropout(t *testing.T) {
	cfg, err := Load("../../examples/tiny/tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(cfg, "model", "tiny.lora")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*graph.Graph{s.EvalLoRA, s.EvalBase} {
		if g.Mode != graph.Eval {
			t.Errorf("eval graph is %s", g.Mode)
		}
		for pass, want := range map[string]bool{"FuseLoRA": true, "Schedule": true, "PlanMemory": true, "MergeLoRA": false, "Differentiate": false} {
			if g.Facts[pass] != want {
				t.Errorf("eval graph: %s ran = %v, want %v", pass, g.Facts[pass], want)
			}
		}
	}
	for name, g := range map[string]*graph.Graph{"TrainLoRA": s.TrainLoRA, "TrainFull": s.TrainFull, "EvalLoRA": s.EvalLoRA, "ForwardLoRA": s.ForwardLoRA, "DecodeLoRA": s.DecodeLoRA} {
		if g.Dropout != (name == "TrainLoRA") {
			t.Errorf("%s: Dropout = %v", name, g.Dropout)
		}
	}
}
