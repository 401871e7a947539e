package gguf

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/internal/hfimport"
	"lorac.dev/lorac/runtime/format"
)

func init() {
	// Other test files of the package may define -update too; share it.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func ggufUpdate() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// ggufShapes are the (in, out) of every module kind: a llama with dim 20,
// two heads and one key-value head of size 10, ffn 28; a gpt2 with dim 20.
// The sizes are not multiples of 8, so tensors need padding between them.
var ggufShapes = map[string][2]int{
	"self_attn.q_proj": {20, 20}, "self_attn.k_proj": {20, 10}, "self_attn.v_proj": {20, 10},
	"self_attn.o_proj": {20, 20}, "mlp.gate_proj": {20, 28}, "mlp.up_proj": {20, 28}, "mlp.down_proj": {28, 20},
	"attn.c_attn": {20, 60}, "attn.c_proj": {20, 20}, "mlp.c_fc": {20, 80}, "mlp.c_proj": {80, 20},
}

const ggufHeads, ggufKVHeads = 2, 1

// ggufAdapter builds an adapter over every module of layers blocks, each at
// the rank cfg gives it, with A ~ kaiming-uniform-sized and B nonzero.
func ggufAdapter(cfg format.PEFTConfig, arch string, layers int) *format.PEFTAdapter {
	rng := newRand()
	cfg.PeftType = "LORA"
	a := &format.PEFTAdapter{Config: cfg}
	tgt := ggufLoRATargets[arch]
	for l := range layers {
		for _, sub := range slices.Sorted(maps.Keys(tgt.modules)) {
			name := fmt.Sprintf("%s%d.%s", tgt.prefix, l, sub)
			in, out := ggufShapes[sub][0], ggufShapes[sub][1]
			r := cfg.RankFor(name)
			m := format.LoRAWeights{Module: name, Rank: r, In: in, Out: out, A: make([]float32, r*in), B: make([]float32, out*r)}
			for i := range m.A {
				m.A[i] = float32((rng.Float64()*2 - 1) / math.Sqrt(float64(in)))
			}
			for i := range m.B {
				m.B[i] = float32(rng.NormFloat64() * 0.1)
			}
			a.Modules = append(a.Modules, m)
		}
	}
	slices.SortFunc(a.Modules, func(x, y format.LoRAWeights) int { return strings.Compare(x.Module, y.Module) })
	return a
}

// ggufProduct is B·A for B (out, r) and A (r, in), row-major, in float64.
func ggufProduct(b, a []float32, out, r, in int) []float64 {
	p := make([]float64, out*in)
	for o := range out {
		for k := range r {
			bk := float64(b[o*r+k])
			for i := range in {
				p[o*in+i] += bk * float64(a[k*in+i])
			}
		}
	}
	return p
}

// ggufUnpermute undoes llama.cpp's q/k row order on a (out, in) matrix:
// written independently of ggufRoPEPermute, from its definition (row
// h·hd + i·hd/2 + j of Hugging Face's order is row h·hd + 2j + i of
// llama.cpp's).
func ggufUnpermute(m []float64, out, in, groups int) []float64 {
	hd := out / groups
	u := make([]float64, len(m))
	for h := range groups {
		for j := range hd / 2 {
			for i := range 2 {
				copy(u[(h*hd+i*hd/2+j)*in:][:in], m[(h*hd+2*j+i)*in:][:in])
			}
		}
	}
	return u
}

// ggufCheckPacking checks the tensor layout llama.cpp's gguf reader
// demands: tensors in order, each at the previous one's end rounded up to
// the alignment, and the file ending at the last tensor's padded end.
func ggufCheckPacking(t *testing.T, g *GGUF) {
	t.Helper()
	var off uint64
	for _, tn := range g.Tensors {
		if tn.Offset != off {
			t.Errorf("tensor %s at offset %d, ggml expects %d", tn.Name, tn.Offset, off)
		}
		size, ok := ggmlNBytes(tn.Type, tn.Dims)
		if !ok {
			t.Fatalf("tensor %s: no size", tn.Name)
		}
		off = ggufAlign(off+size, g.Alignment)
	}
	fi, err := os.Stat(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	if g.DataOffset%g.Alignment != 0 || uint64(fi.Size()) != g.DataOffset+off {
		t.Errorf("data at %d, file %d bytes; want an aligned start and %d bytes", g.DataOffset, fi.Size(), g.DataOffset+off)
	}
}

// ggufCheckAdapter exports a, reads the file back and checks it against
// what llama.cpp's loader needs and what PEFT computes.
func ggufCheckAdapter(t *testing.T, a *format.PEFTAdapter, arch string) *GGUF {
	t.Helper()
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := ExportGGUF(path, a, arch, ggufHeads, ggufKVHeads); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 3 || g.Alignment != 32 {
		t.Errorf("version %d, alignment %d; want 3, 32", g.Version, g.Alignment)
	}
	wantMD := map[string]any{
		"general.architecture":         arch,
		"general.type":                 "adapter",
		"adapter.type":                 "lora",
		"adapter.lora.alpha":           float32(a.Config.LoraAlpha),
		"general.quantization_version": uint32(2),
	}
	if !reflect.DeepEqual(g.Metadata, wantMD) {
		t.Errorf("metadata %v\nwant %v", g.Metadata, wantMD)
	}
	if g.Keys[0] != "general.architecture" {
		t.Errorf("first key %q, want general.architecture as llama.cpp's writer puts it", g.Keys[0])
	}
	ggufCheckPacking(t, g)
	if len(g.Tensors) != 2*len(a.Modules) {
		t.Errorf("%d tensors for %d modules", len(g.Tensors), len(a.Modules))
	}

	alpha := g.Metadata["adapter.lora.alpha"].(float32)
	for _, m := range a.Modules {
		name, _, kind, err := ggufLoRAName(arch, m.Module)
		if err != nil {
			t.Fatal(err)
		}
		ta, okA := g.Tensor(name + ".lora_a")
		tb, okB := g.Tensor(name + ".lora_b")
		if !okA || !okB {
			t.Errorf("module %s: no %s.lora_a / .lora_b", m.Module, name)
			continue
		}
		// llama_adapter_lora_init's shape checks: a.ne = [in, r],
		// b.ne = [r, out], both F32 here.
		if !slices.Equal(ta.Dims, []uint64{uint64(m.In), uint64(m.Rank)}) || !slices.Equal(tb.Dims, []uint64{uint64(m.Rank), uint64(m.Out)}) ||
			ta.Type != GGMLTypeF32 || tb.Type != GGMLTypeF32 {
			t.Errorf("module %s: lora_a %v type %d, lora_b %v type %d; want [%d %d], [%d %d], F32",
				m.Module, ta.Dims, ta.Type, tb.Dims, tb.Type, m.In, m.Rank, m.Rank, m.Out)
			continue
		}
		ga, err := g.Float32(ta.Name)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := g.Float32(tb.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ga, m.A) {
			t.Errorf("module %s: lora_a differs from A", m.Module)
		}

		// llama.cpp: y += scale · b·(a·x), scale = alpha / b.ne[0] in
		// float32, or 1 when alpha is 0.
		scale := float32(1)
		if alpha != 0 {
			scale = float32(alpha / float32(tb.Dims[0]))
		}
		got := ggufProduct(gb, ga, m.Out, m.Rank, m.In)
		for i := range got {
			got[i] *= float64(scale)
		}
		groups := map[string]int{"attn_q": ggufHeads, "attn_k": ggufKVHeads}[kind]
		if arch == "llama" && groups > 0 {
			got = ggufUnpermute(got, m.Out, m.In, groups)
		}
		s := a.Config.Scale(m.Module)
		want := ggufProduct(m.B, m.A, m.Out, m.Rank, m.In)
		var worst float64
		for i := range want {
			want[i] *= s
			worst = max(worst, math.Abs(got[i]-want[i])/max(1, math.Abs(want[i])))
		}
		if worst > 1e-6 {
			t.Errorf("module %s: llama.cpp's update differs from PEFT's s·B·A by %.3g (relative)", m.Module, worst)
		}
		// Where PEFT's float32 scale is llama.cpp's, B must be unchanged
		// (up to the row order): nothing was folded into it.
		if float32(s) == scale {
			b := gb
			if arch == "llama" && groups > 0 {
				b = to32(ggufUnpermute(to64(gb), m.Out, m.Rank, groups))
			}
			if !slices.Equal(b, m.B) {
				t.Errorf("module %s: lora_b changed though no scale needed folding", m.Module)
			}
		}
	}
	return g
}

func TestExportGGUFLlama(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  format.PEFTConfig
	}{
		{"plain", format.PEFTConfig{R: 8, LoraAlpha: 16}},
		{"patterns", format.PEFTConfig{R: 8, LoraAlpha: 16,
			RankPattern:  map[string]int{"q_proj": 4, "model.layers.1.mlp.down_proj": 2, "o_proj": 3},
			AlphaPattern: map[string]float64{"v_proj": 8, "model.layers.0.mlp.up_proj": 3}}},
		{"rslora", format.PEFTConfig{R: 8, LoraAlpha: 16, UseRSLoRA: true, RankPattern: map[string]int{"k_proj": 2}}},
		{"alpha 0", format.PEFTConfig{R: 4, LoraAlpha: 0, AlphaPattern: map[string]float64{"o_proj": 4}}},
		{"alpha 12 rank 9", format.PEFTConfig{R: 9, LoraAlpha: 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := ggufAdapter(tc.cfg, "llama", 2)
			g := ggufCheckAdapter(t, a, "llama")
			var names []string
			for _, tn := range g.Tensors {
				names = append(names, tn.Name)
			}
			var want []string
			for l := range 2 {
				for _, k := range []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"} {
					want = append(want, fmt.Sprintf("blk.%d.%s.weight.lora_a", l, k), fmt.Sprintf("blk.%d.%s.weight.lora_b", l, k))
				}
			}
			if !slices.Equal(names, want) {
				t.Errorf("tensors %q\nwant %q", names, want)
			}
		})
	}
}

func TestExportGGUFFolding(t *testing.T) {
	// rsLoRA at alpha 16, r 4: PEFT's scale 8 is twice llama.cpp's 4, so
	// lora_b must be exactly 2·B.
	a := ggufAdapter(format.PEFTConfig{R: 4, LoraAlpha: 16, UseRSLoRA: true}, "gpt2", 1)
	path := filepath.Join(t.TempDir(), "a.gguf")
	if err := ExportGGUF(path, a, "gpt2", 0, 0); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range a.Modules {
		name, _, _, _ := ggufLoRAName("gpt2", m.Module)
		b, err := g.Float32(name + ".lora_b")
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			if b[i] != 2*m.B[i] {
				t.Fatalf("module %s: lora_b[%d] = %v, want 2·%v", m.Module, i, b[i], m.B[i])
			}
		}
	}
}

func TestExportGGUFGPT2(t *testing.T) {
	cfg := format.PEFTConfig{R: 4, LoraAlpha: 8, FanInFanOut: true,
		RankPattern: map[string]int{"attn.c_proj": 2}, AlphaPattern: map[string]float64{"c_fc": 16}}
	a := ggufAdapter(cfg, "gpt2", 2)
	g := ggufCheckAdapter(t, a, "gpt2")
	for _, name := range []string{"blk.1.attn_qkv.weight.lora_b", "blk.0.attn_output.weight.lora_a", "blk.1.ffn_up.weight.lora_a", "blk.0.ffn_down.weight.lora_b"} {
		if _, ok := g.Tensor(name); !ok {
			t.Errorf("no tensor %s", name)
		}
	}
	if tn, _ := g.Tensor("blk.0.attn_qkv.weight.lora_b"); !slices.Equal(tn.Dims, []uint64{4, 60}) {
		t.Errorf("attn_qkv lora_b dims %v, want [4 60] (rank, 3·dim)", tn.Dims)
	}
}

func TestGGUFRoPEPermute(t *testing.T) {
	// Two heads of six rows, rank 1: within each head the halves
	// (0 1 2 | 3 4 5) interleave to 0 3 1 4 2 5, as llama.cpp's permute
	// does for its rotary pairs.
	b := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	got := ggufRoPEPermute(b, 12, 1, 2)
	want := []float32{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}
	if !slices.Equal(got, want) {
		t.Errorf("permute %v, want %v", got, want)
	}
	// Rank 2 moves whole rows.
	b2 := []float32{0, 10, 1, 11, 2, 12, 3, 13}
	want2 := []float32{0, 10, 2, 12, 1, 11, 3, 13}
	if got := ggufRoPEPermute(b2, 4, 2, 1); !slices.Equal(got, want2) {
		t.Errorf("rank 2 permute %v, want %v", got, want2)
	}
}

func TestExportGGUFErrors(t *testing.T) {
	base := func() *format.PEFTAdapter { return ggufAdapter(format.PEFTConfig{R: 2, LoraAlpha: 4}, "llama", 1) }
	with := func(f func(a *format.PEFTAdapter)) *format.PEFTAdapter { a := base(); f(a); return a }
	rename := func(name string) *format.PEFTAdapter {
		return with(func(a *format.PEFTAdapter) { a.Modules[0].Module = name })
	}
	for _, tc := range []struct {
		name           string
		a              *format.PEFTAdapter
		arch           string
		heads, kvHeads int
		want           string
	}{
		{"unknown module", rename("model.layers.0.self_attn.rotary_emb"), "llama", 2, 1, `"model.layers.0.self_attn.rotary_emb"`},
		{"gpt2 module in llama", rename("transformer.h.0.attn.c_attn"), "llama", 2, 1, `"transformer.h.0.attn.c_attn"`},
		{"llama module in gpt2", base(), "gpt2", 0, 0, `module "model.layers.0.mlp.down_proj" has no llama.cpp tensor in a gpt2 model`},
		{"lm_head", rename("lm_head"), "llama", 2, 1, `"lm_head"`},
		{"leading zero", rename("model.layers.00.mlp.up_proj"), "llama", 2, 1, `"model.layers.00.mlp.up_proj"`},
		{"signed block", rename("model.layers.+1.mlp.up_proj"), "llama", 2, 1, `"model.layers.+1.mlp.up_proj"`},
		{"arch", base(), "mistral", 2, 1, `architecture "mistral"`},
		{"no heads", base(), "llama", 0, 1, "head counts"},
		{"odd heads", base(), "llama", 3, 1, `"model.layers.0.self_attn.q_proj": 20 output rows do not split into 3 heads`},
		{"odd head size", base(), "llama", 2, 2, `"model.layers.0.self_attn.k_proj": 10 output rows do not split into 2 heads`},
		{"short A", with(func(a *format.PEFTAdapter) { a.Modules[1].A = a.Modules[1].A[1:] }), "llama", 2, 1, "A has"},
		{"rank", with(func(a *format.PEFTAdapter) { a.Config.R = 3 }), "llama", 2, 1, "the config gives rank 3"},
		{"duplicate", with(func(a *format.PEFTAdapter) { a.Modules[1] = a.Modules[0] }), "llama", 2, 1, "both map to"},
		{"dora", with(func(a *format.PEFTAdapter) { a.Config.UseDoRA = true }), "llama", 2, 1, "DoRA"},
		{"not targeted", with(func(a *format.PEFTAdapter) { a.Config.TargetModules = []string{"q_proj"} }), "llama", 2, 1, "is not selected by target_modules"},
		{"layers_to_transform", with(func(a *format.PEFTAdapter) { a.Config.LayersToTransform = []int{1} }), "llama", 2, 1, "which layers_to_transform [1] does not list"},
		{"lm_head target", with(func(a *format.PEFTAdapter) { a.Config.TargetModules = []string{"lm_head"} }), "llama", 2, 1, `target_modules "lm_head"`},
		{"alpha", with(func(a *format.PEFTAdapter) { a.Config.LoraAlpha = 1e300 }), "llama", 2, 1, "lora_alpha"},
		{"empty", with(func(a *format.PEFTAdapter) { a.Modules = nil }), "llama", 2, 1, "no LoRA modules"},
		{"nil", nil, "llama", 2, 1, "no adapter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.gguf")
			err := ExportGGUF(path, tc.a, tc.arch, tc.heads, tc.kvHeads)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error %v, want %s: …%s…", err, path, tc.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("a file was written despite the error")
			}
		})
	}
}

// ggufTiny is a small adapter whose tensors all end on 32-byte boundaries,
// so that cutting its file anywhere loses something ReadGGUF needs.
func ggufTiny() *format.PEFTAdapter {
	ramp := func(n int, k float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = (float32(i) - k) / 16
		}
		return x
	}
	return &format.PEFTAdapter{
		Config: format.PEFTConfig{PeftType: "LORA", R: 2, LoraAlpha: 4},
		Modules: []format.LoRAWeights{
			{Module: "model.layers.0.self_attn.q_proj", Rank: 2, In: 8, Out: 8, A: ramp(16, 3), B: ramp(16, 9)},
			{Module: "model.layers.0.self_attn.v_proj", Rank: 2, In: 8, Out: 4, A: ramp(16, 5), B: ramp(8, 1)},
		},
	}
}

func TestExportGGUFGolden(t *testing.T) {
	golden := filepath.Join("testdata", "tiny-llama-lora.gguf")
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := ExportGGUF(path, ggufTiny(), "llama", 2, 1); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ggufUpdate() {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ExportGGUF output differs from %s (run go test -update if the change is intended)", golden)
	}
}

// ggufAllTypes is a file with every metadata value type, arrays of each,
// nested and empty arrays, a 64-byte alignment and tensors of several types.
func ggufAllTypes(t testing.TB) ([]byte, map[string]any, []ggufTensorData) {
	kvs := []ggufKV{
		{"general.alignment", uint32(64)},
		{"t.u8", uint8(200)}, {"t.i8", int8(-100)}, {"t.u16", uint16(60000)}, {"t.i16", int16(-30000)},
		{"t.u32", uint32(4000000000)}, {"t.i32", int32(-2000000000)}, {"t.f32", float32(1.5)},
		{"t.bool", true}, {"t.false", false}, {"t.str", "héllo\x00world"}, {"t.empty_str", ""},
		{"t.u64", uint64(1) << 63}, {"t.i64", int64(-1) << 62}, {"t.f64", math.Pi},
		{"a.u8", []uint8{1, 2, 3}}, {"a.i8", []int8{-1, 2}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7, 8}},
		{"a.u32", []uint32{1, 1 << 31}}, {"a.i32", []int32{-5, 6, 7}}, {"a.f32", []float32{0.25, -8}},
		{"a.bool", []bool{true, false, true}}, {"a.str", []string{"a", "", "ccc"}},
		{"a.u64", []uint64{math.MaxUint64}}, {"a.i64", []int64{math.MinInt64}}, {"a.f64", []float64{-0.5}},
		{"a.empty", []int32{}}, {"a.nested", []any{[]uint8{1}, []string{"x", "y"}, []any{[]float64{2}}}},
		{"a.empty_nested", []any{}},
	}
	want := map[string]any{}
	for _, kv := range kvs {
		want[kv.key] = kv.value
	}
	f16 := []float32{0.5, -2, 1024, 6.1035156e-05, 5.9604645e-08}
	bf16 := []float32{1.5, -3, 256, 0.15625}
	var b16, bb16 []byte
	for _, v := range f16 {
		b16 = binary.LittleEndian.AppendUint16(b16, format.Float32ToF16(v))
	}
	for _, v := range bf16 {
		bb16 = binary.LittleEndian.AppendUint16(bb16, format.Float32ToBF16(v))
	}
	tensors := []ggufTensorData{
		{"f32", []uint64{3, 2}, GGMLTypeF32, ggufF32Bytes([]float32{1, 2, 3, 4, 5, 6})},
		{"f16", []uint64{5}, GGMLTypeF16, b16},
		{"bf16", []uint64{2, 2, 1}, GGMLTypeBF16, bb16},
		{"q8_0", []uint64{32}, 8, make([]byte, 34)},
		{"scalar", nil, GGMLTypeF32, ggufF32Bytes([]float32{-7})},
	}
	var buf bytes.Buffer
	if err := writeGGUF(&buf, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), want, tensors
}

func ggufWriteTemp(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.gguf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadGGUFAllTypes(t *testing.T) {
	data, want, tensors := ggufAllTypes(t)
	path := ggufWriteTemp(t, data)
	g, err := ReadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Metadata, want) {
		for k, v := range want {
			if !reflect.DeepEqual(g.Metadata[k], v) {
				t.Errorf("%s = %#v, want %#v", k, g.Metadata[k], v)
			}
		}
	}
	if g.Keys[0] != "general.alignment" || g.Keys[len(g.Keys)-1] != "a.empty_nested" || len(g.Keys) != len(want) {
		t.Errorf("keys %q not in file order", g.Keys)
	}
	if g.Alignment != 64 {
		t.Errorf("alignment %d, want 64", g.Alignment)
	}
	ggufCheckPacking(t, g)
	for i, tn := range g.Tensors {
		if tn.Name != tensors[i].name || !slices.Equal(tn.Dims, tensors[i].dims) || tn.Type != tensors[i].typ {
			t.Errorf("tensor %d: %+v, want %s %v type %d", i, tn, tensors[i].name, tensors[i].dims, tensors[i].typ)
		}
	}
	for name, want := range map[string][]float32{
		"f32":    {1, 2, 3, 4, 5, 6},
		"f16":    {0.5, -2, 1024, 6.1035156e-05, 5.9604645e-08},
		"bf16":   {1.5, -3, 256, 0.15625},
		"scalar": {-7},
	} {
		got, err := g.Float32(name)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Float32(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	for name, msg := range map[string]string{"q8_0": "is Q8_0", "nope": `no tensor "nope"`} {
		if _, err := g.Float32(name); err == nil || !strings.Contains(err.Error(), msg) || !strings.HasPrefix(err.Error(), path) {
			t.Errorf("Float32(%s): %v, want %s: …%s", name, err, path, msg)
		}
	}
}

// ggufRaw assembles a GGUF file by hand, for inputs writeGGUF refuses.
type ggufRaw struct{ b []byte }

func (r *ggufRaw) u32(v uint32) *ggufRaw  { r.b = binary.LittleEndian.AppendUint32(r.b, v); return r }
func (r *ggufRaw) u64(v uint64) *ggufRaw  { r.b = binary.LittleEndian.AppendUint64(r.b, v); return r }
func (r *ggufRaw) str(s string) *ggufRaw  { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }
func (r *ggufRaw) raw(b ...byte) *ggufRaw { r.b = append(r.b, b...); return r }

// ggufHead starts a version 3 file with the given counts.
func ggufHead(nTensors, nKV uint64) *ggufRaw {
	r := &ggufRaw{b: []byte("GGUF")}
	return r.u32(3).u64(nTensors).u64(nKV)
}

func TestReadGGUFMalformed(t *testing.T) {
	valid, _, _ := ggufAllTypes(t)
	patch := func(at int, b ...byte) []byte {
		c := slices.Clone(valid)
		copy(c[at:], b)
		return c
	}
	kv := func(key string, typ uint32) *ggufRaw { return ggufHead(0, 1).str(key).u32(typ) }
	tensor := func(name string, dims []uint64, typ uint32, off uint64) *ggufRaw {
		r := ggufHead(1, 0).str(name).u32(uint32(len(dims)))
		for _, d := range dims {
			r.u64(d)
		}
		return r.u32(typ).u64(off)
	}
	pad := func(r *ggufRaw, n int) []byte { return append(r.b, make([]byte, n)...) }
	nested := ggufHead(0, 1).str("k").u32(ggufArray)
	for range ggufMaxDepth + 1 {
		nested.u32(ggufArray).u64(1)
	}
	nested.u32(ggufUint8).u64(0)

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"magic only", []byte("GGU"), "too short"},
		{"bad magic", patch(0, 'G', 'G', 'M', 'L'), `starts with "GGML"`},
		{"version 1", patch(4, 1), "version 1 is not supported"},
		{"version 4", patch(4, 4), "version 4 is not supported"},
		{"big-endian", patch(4, 0, 0, 0, 3), "big-endian"},
		{"absurd tensor count", patch(8, 0, 0, 0, 0, 0, 0, 0, 0x40), "tensors (after"},
		{"absurd kv count", patch(16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "metadata entries cannot fit"},
		{"absurd key length", patch(24, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "runs past the end"},
		{"empty key", pad(kv("", ggufUint8), 8), "empty key"},
		{"unknown value type", pad(kv("k", 13), 8), "unknown value type 13"},
		{"unknown array type", pad(kv("k", ggufArray).u32(99).u64(1), 8), "unknown value type 99"},
		{"bool 2", kv("k", ggufBool).raw(2).b, "expected 0 or 1"},
		{"bool array", kv("k", ggufArray).u32(ggufBool).u64(2).raw(1, 7).b, "is 7, expected 0 or 1"},
		{"absurd array length", pad(kv("k", ggufArray).u32(ggufUint32).u64(1<<62), 16), "cannot fit"},
		{"absurd string array", pad(kv("k", ggufArray).u32(ggufString).u64(1<<40), 16), "cannot fit"},
		{"deep nesting", nested.b, "nested more than"},
		{"duplicate key", ggufHead(0, 2).str("k").u32(ggufUint8).raw(1).str("k").u32(ggufUint8).raw(2).b, `"k" at byte 38 appears twice`},
		{"alignment type", ggufHead(0, 1).str("general.alignment").u32(ggufUint64).u64(32).b, "is a uint64"},
		{"alignment 0", ggufHead(0, 1).str("general.alignment").u32(ggufUint32).u32(0).b, "power of two"},
		{"alignment 24", ggufHead(0, 1).str("general.alignment").u32(ggufUint32).u32(24).b, "power of two"},
		{"five dims", pad(tensor("t", []uint64{1, 1, 1, 1, 1}, 0, 0), 64), "5 dimensions"},
		{"element overflow", pad(tensor("t", []uint64{1 << 40, 1 << 40}, 0, 0), 64), "elements"},
		{"partial block", pad(tensor("t", []uint64{33}, 8, 0), 128), "multiple of its 32-element block"},
		{"misaligned", pad(tensor("t", []uint64{1}, 0, 4), 64), "not a multiple of the alignment"},
		{"data past the end", pad(tensor("t", []uint64{16}, 0, 0), 40), "run past the end of the file"},
		{"huge offset", pad(tensor("t", []uint64{16}, 0, math.MaxUint64-31), 100), "run past the end of the file"},
		{"unknown type past the end", pad(tensor("t", []uint64{1}, 1000, 1<<20), 64), "is past the end of the file"},
		{"duplicate tensor", func() []byte {
			r := ggufHead(2, 0)
			for range 2 {
				r.str("t").u32(1).u64(1).u32(0).u64(0)
			}
			return pad(r, 64)
		}(), `"t" at byte`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ggufWriteTemp(t, tc.data)
			_, err := ReadGGUF(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error %v, want %s: …%s…", err, path, tc.want)
			}
		})
	}
}

func TestReadGGUFTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := ExportGGUF(path, ggufTiny(), "llama", 2, 1); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadGGUF(path); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.gguf")
	for n := range len(data) {
		if err := os.WriteFile(cut, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadGGUF(cut); err == nil || !strings.HasPrefix(err.Error(), cut+": ") {
			t.Fatalf("file cut to %d of %d bytes: error %v, want one naming the file", n, len(data), err)
		}
	}
}

func TestReadGGUFNotAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadGGUF(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("reading a directory: %v", err)
	}
	missing := filepath.Join(dir, "missing.gguf")
	if _, err := ReadGGUF(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("reading a missing file: %v", err)
	}
}

func FuzzReadGGUF(f *testing.F) {
	allTypes, _, _ := ggufAllTypes(f)
	f.Add(allTypes)
	var tiny bytes.Buffer
	kvs, tensors, err := ggufLoRA(ggufTiny(), "llama", 2, 1)
	if err != nil {
		f.Fatal(err)
	}
	if err := writeGGUF(&tiny, kvs, tensors); err != nil {
		f.Fatal(err)
	}
	f.Add(tiny.Bytes())
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path, err := os.CreateTemp(dir, "fuzz-*.gguf")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path.Name())
		if _, err := path.Write(data); err != nil {
			t.Fatal(err)
		}
		path.Close()
		g, err := ReadGGUF(path.Name())
		if err != nil {
			if !strings.HasPrefix(err.Error(), path.Name()+": ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, tn := range g.Tensors {
			if tn.Offset%g.Alignment != 0 {
				t.Fatalf("tensor %q accepted at unaligned offset %d", tn.Name, tn.Offset)
			}
			x, err := g.Float32(tn.Name)
			if err != nil {
				continue
			}
			if n, _ := ggufElements(tn.Dims); uint64(len(x)) != n {
				t.Fatalf("tensor %q: %d values for dims %v", tn.Name, len(x), tn.Dims)
			}
		}
	})
}

func TestWriteGGUFErrors(t *testing.T) {
	f32 := ggufF32Bytes([]float32{1, 2})
	for _, tc := range []struct {
		name    string
		kvs     []ggufKV
		tensors []ggufTensorData
		want    string
	}{
		{"empty key", []ggufKV{{"", uint8(1)}}, nil, "empty metadata key"},
		{"repeated key", []ggufKV{{"k", uint8(1)}, {"k", uint8(2)}}, nil, `"k" appears twice`},
		{"int", []ggufKV{{"k", 1}}, nil, "no GGUF type for a int"},
		{"nested scalar", []ggufKV{{"k", []any{[]uint8{1}, uint8(2)}}}, nil, "only arrays may be nested"},
		{"alignment", []ggufKV{{"general.alignment", uint32(12)}}, nil, "power of two"},
		{"long name", nil, []ggufTensorData{{strings.Repeat("x", 64), []uint64{2}, GGMLTypeF32, f32}}, "longer than the 63 bytes"},
		{"repeated tensor", nil, []ggufTensorData{{"t", []uint64{2}, GGMLTypeF32, f32}, {"t", []uint64{2}, GGMLTypeF32, f32}}, `"t" appears twice`},
		{"size", nil, []ggufTensorData{{"t", []uint64{3}, GGMLTypeF32, f32}}, "do not match F32 dimensions [3]"},
		{"dims", nil, []ggufTensorData{{"t", []uint64{2, 1, 1, 1, 1}, GGMLTypeF32, f32}}, "5 dimensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := writeGGUF(&buf, tc.kvs, tc.tensors)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want …%s…", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the error", buf.Len())
			}
		})
	}
}

// TestExportGGUFQwen: qwen2 and qwen3 adapters carry llama.cpp's llama
// tensor names and their own architecture, and keep q and k rows in
// Hugging Face order (llama.cpp runs their RoPE in NEOX mode, and its
// converter does not reorder them); ggufCheckAdapter checks the products.
func TestExportGGUFQwen(t *testing.T) {
	for _, arch := range []string{"qwen2", "qwen3", "gemma", "gemma2", "gemma3"} {
		t.Run(arch, func(t *testing.T) {
			a := ggufAdapter(format.PEFTConfig{R: 4, LoraAlpha: 8}, arch, 2)
			g := ggufCheckAdapter(t, a, arch)
			for _, m := range a.Modules {
				if !strings.HasSuffix(m.Module, "q_proj") && !strings.HasSuffix(m.Module, "k_proj") {
					continue
				}
				name, _, _, _ := ggufLoRAName(arch, m.Module)
				b, err := g.Float32(name + ".lora_b")
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(b, m.B) {
					t.Errorf("%s: lora_b rows reordered; %s keeps Hugging Face's order", m.Module, arch)
				}
			}
		})
	}
}

// TestExportGGUFFixtures exports each conformance fixture's PEFT adapter
// with the architecture lorac init reads from its config.json: llama.cpp's
// name for the family and its tensor names.
func TestExportGGUFFixtures(t *testing.T) {
	for _, c := range []struct{ dir, arch string }{
		{"llama", "llama"}, {"llama3", "llama"}, {"mistral", "llama"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"}, {"gemma", "gemma"}, {"gemma2", "gemma2"}, {"gemma3", "gemma3"}, {"gpt2", "gpt2"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join("..", "..", "conformance", "testdata", c.dir)
			m, err := hfimport.Model(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.GGUFArch() != c.arch {
				t.Fatalf("architecture %s, want %s", m.GGUFArch(), c.arch)
			}
			a, err := format.ReadPEFT(filepath.Join(dir, "adapter"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "a.gguf")
			if err := ExportGGUF(path, a, m.GGUFArch(), m.Heads, m.KVHeads); err != nil {
				t.Fatal(err)
			}
			g, err := ReadGGUF(path)
			if err != nil {
				t.Fatal(err)
			}
			if g.Metadata["general.architecture"] != c.arch || len(g.Tensors) != 2*len(a.Modules) {
				t.Errorf("architecture %v, %d tensors for %d modules", g.Metadata["general.architecture"], len(g.Tensors), len(a.Modules))
			}
			for _, mod := range a.Modules {
				name, _, _, err := ggufLoRAName(c.arch, mod.Module)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := g.Tensor(name + ".lora_a"); !ok {
					t.Errorf("no %s.lora_a", name)
				}
			}
		})
	}
}
