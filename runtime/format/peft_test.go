package format

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// peftSample is an adapter over three llama modules, one of them at another
// rank through rank_pattern.
func peftSample() *PEFTAdapter {
	rng := newRand()
	mod := func(name string, r, in, out int) LoRAWeights {
		return LoRAWeights{Module: name, Rank: r, In: in, Out: out,
			A: to32(randn(rng, r*in)), B: to32(randn(rng, out*r))}
	}
	return &PEFTAdapter{
		Config: PEFTConfig{
			BaseModelNameOrPath: "meta-llama/Llama-3.2-1B",
			R:                   4,
			LoraAlpha:           8,
			LoraDropout:         0.05,
			TargetModules:       []string{"v_proj", "q_proj"},
			RankPattern:         map[string]int{"model.layers.1.self_attn.q_proj": 2},
		},
		Modules: []LoRAWeights{
			mod("model.layers.1.self_attn.q_proj", 2, 16, 16),
			mod("model.layers.0.self_attn.q_proj", 4, 16, 16),
			mod("model.layers.0.self_attn.v_proj", 4, 16, 8),
		},
	}
}

func TestPEFTRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adapter") // WritePEFT creates it
	want := peftSample()
	if err := WritePEFT(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPEFT(dir)
	if err != nil {
		t.Fatal(err)
	}

	c := got.Config
	if c.PeftType != "LORA" || c.TaskType != "CAUSAL_LM" || c.R != 4 || c.LoraAlpha != 8 || c.LoraDropout != 0.05 ||
		c.Bias != "none" || c.BaseModelNameOrPath != "meta-llama/Llama-3.2-1B" || c.InitLoraWeights != true {
		t.Errorf("config read back as %+v", c)
	}
	if !slices.Equal(c.TargetModules, []string{"q_proj", "v_proj"}) {
		t.Errorf("target_modules %q, want sorted [q_proj v_proj]", c.TargetModules)
	}
	if len(c.RankPattern) != 1 || c.RankPattern["model.layers.1.self_attn.q_proj"] != 2 {
		t.Errorf("rank_pattern %v", c.RankPattern)
	}

	var names []string
	for _, m := range got.Modules {
		names = append(names, m.Module)
	}
	if !slices.IsSorted(names) || len(names) != 3 {
		t.Fatalf("modules %q, want three, sorted", names)
	}
	for _, m := range got.Modules {
		i := slices.IndexFunc(want.Modules, func(w LoRAWeights) bool { return w.Module == m.Module })
		w := want.Modules[i]
		if m.Rank != w.Rank || m.In != w.In || m.Out != w.Out || !slices.Equal(m.A, w.A) || !slices.Equal(m.B, w.B) {
			t.Errorf("module %s read back differs", m.Module)
		}
	}

	// The weights are F32 under PEFT's names with PEFT's metadata.
	st, err := OpenSafetensors(filepath.Join(dir, PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", st.Metadata)
	}
	ti, ok := st.Lookup("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")
	if !ok || ti.DType != "F32" || !slices.Equal(ti.Shape, []int{8, 4}) {
		t.Errorf("lora_B of v_proj: %+v, %v", ti, ok)
	}

	// The config is indented JSON with PEFT's spelling of empty patterns.
	js, err := os.ReadFile(filepath.Join(dir, PEFTConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"{\n  \"alpha_pattern\": {},\n  \"base_model_name_or_path\"", "\"r\": 4,\n  \"rank_pattern\": {\n    \"model.layers.1.self_attn.q_proj\": 2\n  },", `"alpha_pattern": {}`, `"task_type": "CAUSAL_LM"`,
		"\"target_modules\": [\n    \"q_proj\",\n    \"v_proj\"\n  ]", `"init_lora_weights": true`, `"bias": "none"`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("adapter_config.json lacks %q:\n%s", s, js)
		}
	}

	// Writing again replaces both files in place.
	want.Config.LoraAlpha = 32
	if err := WritePEFT(dir, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPEFT(dir); err != nil || got.Config.LoraAlpha != 32 {
		t.Errorf("rewrite: %v, %v", got, err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 2 {
		t.Errorf("directory holds %d entries, want the two files", len(es))
	}
}

// peftWriteDir writes a config and weights by hand, for files WritePEFT
// would refuse to produce.
func peftWriteDir(t *testing.T, config string, tensors []WriteTensor) string {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, PEFTConfigFile), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if tensors != nil {
		if err := WriteSafetensors(filepath.Join(dir, PEFTWeightsFile), tensors, nil); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func peftTensor(module, ab string, shape []int, dtype string) WriteTensor {
	data := make([]float32, shape[0]*shape[1])
	for i := range data {
		data[i] = float32(i) - 2.5
	}
	return WriteTensor{Name: "base_model.model." + module + ".lora_" + ab + ".weight", Shape: shape, Data: data, DType: dtype}
}

// TestReadPEFTFromPEFT reads a config as PEFT writes it (sorted keys, extra
// keys lorac ignores, target_modules as a regular expression) with BF16 and
// F16 weights.
func TestReadPEFTFromPEFT(t *testing.T) {
	config := `{
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "gpt2",
  "bias": "none",
  "fan_in_fan_out": true,
  "inference_mode": true,
  "init_lora_weights": "gaussian",
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 16,
  "lora_dropout": 0.1,
  "megatron_config": null,
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 2,
  "rank_pattern": {},
  "revision": null,
  "target_modules": ".*\\.attn\\.c_attn",
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": true
}`
	dir := peftWriteDir(t, config, []WriteTensor{
		peftTensor("transformer.h.0.attn.c_attn", "A", []int{2, 3}, "BF16"),
		peftTensor("transformer.h.0.attn.c_attn", "B", []int{9, 2}, "F16"),
	})
	a, err := ReadPEFT(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Config
	if c.TargetRegex != `.*\.attn\.c_attn` || c.TargetModules != nil || !c.FanInFanOut || !c.UseRSLoRA || !c.InferenceMode || c.InitLoraWeights != "gaussian" {
		t.Errorf("config %+v", c)
	}
	if len(a.Modules) != 1 {
		t.Fatalf("%d modules", len(a.Modules))
	}
	m := a.Modules[0]
	if m.Module != "transformer.h.0.attn.c_attn" || m.Rank != 2 || m.In != 3 || m.Out != 9 {
		t.Errorf("module %+v", m)
	}
	if m.A[0] != -2.5 || m.A[5] != 2.5 || m.B[17] != 14.5 {
		t.Errorf("converted weights A %v B %v", m.A, m.B)
	}
	if s := c.Scale(m.Module); s != 16/math.Sqrt(2) {
		t.Errorf("rsLoRA scale %v, want 16/√2", s)
	}

	// The regular expression survives a write and a read.
	out := filepath.Join(t.TempDir(), "copy")
	if err := WritePEFT(out, a); err != nil {
		t.Fatal(err)
	}
	b, err := ReadPEFT(out)
	if err != nil || b.Config.TargetRegex != c.TargetRegex || b.Config.InitLoraWeights != "gaussian" {
		t.Errorf("rewritten: %+v, %v", b, err)
	}
}

func TestPEFTPatterns(t *testing.T) {
	c, err := ParsePEFTConfig("adapter_config.json", []byte(`{
		"peft_type": "LORA", "r": 8, "lora_alpha": 16,
		"rank_pattern": {"q_proj": 4, "model.layers.1.self_attn.q_proj": 16, "layers\\.[23]\\.self_attn\\.v_proj": 2, "bad(": 3},
		"alpha_pattern": {"v_proj": 1, "o_proj": 64}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		module string
		rank   int
		alpha  float64
	}{
		{"model.layers.0.self_attn.q_proj", 4, 16},
		// Both "model.layers.1.self_attn.q_proj" and "q_proj" match;
		// the first in the file wins, as in PEFT.
		{"model.layers.1.self_attn.q_proj", 4, 16},
		{"q_proj", 4, 16},                            // a key matches the whole name
		{"model.layers.0.self_attn.xq_proj", 8, 16},  // but only after a dot
		{"model.layers.2.self_attn.v_proj", 2, 1},    // a regular expression key
		{"model.layers.4.self_attn.v_proj", 8, 1},    // not matched by it
		{"model.xlayers.2.self_attn.v_proj", 8, 1},   // anchored after a dot
		{"model.layers.0.self_attn.o_proj", 8, 64},   // alpha without a rank entry
		{"model.layers.0.mlp.bad(", 3, 16},           // an invalid expression still matches literally
		{"model.layers.0.self_attn.k_proj", 8, 16},   // neither: r and lora_alpha
		{"model.layers.0.self_attn.q_proj.x", 8, 16}, // the key must end the name
	} {
		if r := c.RankFor(tc.module); r != tc.rank {
			t.Errorf("RankFor(%s) = %d, want %d", tc.module, r, tc.rank)
		}
		if a := c.AlphaFor(tc.module); a != tc.alpha {
			t.Errorf("AlphaFor(%s) = %v, want %v", tc.module, a, tc.alpha)
		}
		if s, want := c.Scale(tc.module), tc.alpha/float64(tc.rank); s != want {
			t.Errorf("Scale(%s) = %v, want %v", tc.module, s, want)
		}
	}

	c.UseRSLoRA = true
	if s := c.Scale("model.layers.1.self_attn.q_proj"); s != 8 {
		t.Errorf("rsLoRA scale with r 4, alpha 16 = %v, want 16/√4 = 8", s)
	}
}

// TestPEFTKeyMatchesFastPath checks the hand-written matcher for plain
// module-name keys against the regular expression it stands for.
func TestPEFTKeyMatchesFastPath(t *testing.T) {
	rng := newRand()
	const alphabet = "ab1._"
	word := func() string {
		b := make([]byte, rng.IntN(7))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		k, m := word(), word()
		want := regexp.MustCompile(`^(?:.*\.)?(?:` + k + `)$`).MatchString(m)
		if got := peftKeyMatches(k, m); got != want {
			t.Fatalf("peftKeyMatches(%q, %q) = %v, the expression says %v", k, m, got, want)
		}
	}
}

func TestParsePEFTConfigDefaults(t *testing.T) {
	c, err := ParsePEFTConfig("cfg", []byte(`{"peft_type": "LORA", "target_modules": ["q_proj"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.R != 8 || c.LoraAlpha != 8 || c.Bias != "none" || c.InitLoraWeights != true || c.Scale("q_proj") != 1 {
		t.Errorf("defaults %+v", c)
	}
}

func TestParsePEFTConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		config, want string
	}{
		{`{"peft_type": "IA3", "r": 8}`, `peft_type "IA3" is not supported; only "LORA" adapters are`},
		{`{"r": 8}`, `peft_type "" is not supported`},
		{`{"peft_type": "LORA", "use_dora": true}`, `use_dora: DoRA adapters are not supported`},
		{`{"peft_type": "LORA", "modules_to_save": ["lm_head"]}`, `modules_to_save ["lm_head"]: fully fine-tuned modules are not supported`},
		{`{"peft_type": "LORA", "bias": "lora_only"}`, `bias "lora_only": trained biases are not supported; only "none"`},
		{`{"peft_type": "LORA", "r": 0}`, `r is 0, expected a positive rank`},
		{`{"peft_type": "LORA", "rank_pattern": {"q_proj": -1}}`, `rank_pattern["q_proj"] is -1, expected a positive rank`},
		{`{"peft_type": "LORA", "lora_dropout": 1.5}`, `lora_dropout is 1.5, expected a probability in [0, 1]`},
		{`{"peft_type": "LORA", "target_modules": 3}`, `target_modules is a number, expected a list of module names or one regular expression`},
		{`{"peft_type": "LORA", "target_modules": ["q", 1]}`, `target_modules: element 1 is a number, expected a module name`},
		{`{"peft_type": "LORA", "rank_pattern": {"q": "4"}}`, `rank_pattern is a JSON string, expected an integer`},
		{`{"peft_type": "LORA", "r": "8"}`, `r is a JSON string, expected an integer`},
		{`{"peft_type": "LORA", "r": 8.5}`, `r is a JSON number 8.5, expected an integer`},
		{`{"peft_type": "LORA"`, `: unexpected end of file`},
		{`{"peft_type": "LORA"} x`, `unexpected data after the JSON object`},
		{`{"peft_type": "LORA", "use_rslora": "yes"}`, `use_rslora is a JSON string, expected true or false`},
		{`{"peft_type": "LORA", "modules_to_save": {}}`, `modules_to_save is a JSON object, expected a list`},
		{`["LORA"]`, `expected a JSON object, found an array`},
		{``, `expected a JSON object, found nothing`},
	} {
		_, err := ParsePEFTConfig("dir/adapter_config.json", []byte(tc.config))
		if err == nil || !strings.HasPrefix(err.Error(), "dir/adapter_config.json: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n\terror %v\n\twant one naming the file and containing %q", tc.config, err, tc.want)
		}
	}
}

func TestReadPEFTErrors(t *testing.T) {
	const cfg = `{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q"]}`
	A := func(m string, r, in int) WriteTensor { return peftTensor(m, "A", []int{r, in}, "") }
	B := func(m string, out, r int) WriteTensor { return peftTensor(m, "B", []int{out, r}, "") }
	for _, tc := range []struct {
		name    string
		config  string
		tensors []WriteTensor
		want    string
	}{
		{"missing B", cfg, []WriteTensor{A("l.q", 2, 3)},
			`module "l.q" has "base_model.model.l.q.lora_A.weight" but no "base_model.model.l.q.lora_B.weight"`},
		{"missing A", cfg, []WriteTensor{B("l.q", 3, 2)},
			`module "l.q" has "base_model.model.l.q.lora_B.weight" but no "base_model.model.l.q.lora_A.weight"`},
		{"ranks differ", cfg, []WriteTensor{A("l.q", 2, 3), B("l.q", 5, 3)},
			`module "l.q": lora_A [2, 3] is (r, in) with r = 2, but lora_B [5, 3] is (out, r) with r = 3`},
		{"rank not the config's", cfg, []WriteTensor{A("l.q", 3, 3), B("l.q", 5, 3)},
			`module "l.q": rank 3 in the weights, but `},
		{"stray key", cfg, []WriteTensor{A("l.q", 2, 3), B("l.q", 5, 2), {Name: "base_model.model.l.q.lora_magnitude_vector", Shape: []int{5}, Data: make([]float32, 5)}},
			`tensor "base_model.model.l.q.lora_magnitude_vector": expected only base_model.model.<module>.lora_A.weight and base_model.model.<module>.lora_B.weight keys`},
		{"no prefix", cfg, []WriteTensor{{Name: "l.q.lora_A.weight", Shape: []int{2, 3}, Data: make([]float32, 6)}},
			`tensor "l.q.lora_A.weight": expected only`},
		{"empty module", cfg, []WriteTensor{{Name: "base_model.model..lora_A.weight", Shape: []int{2, 3}, Data: make([]float32, 6)}},
			`tensor "base_model.model..lora_A.weight": expected only`},
		{"3-D", cfg, []WriteTensor{{Name: "base_model.model.l.q.lora_A.weight", Shape: []int{2, 3, 1}, Data: make([]float32, 6)}},
			`tensor "base_model.model.l.q.lora_A.weight": shape [2, 3, 1], expected two dimensions`},
		{"unsupported config", `{"peft_type": "LORA", "use_dora": true}`, []WriteTensor{A("l.q", 2, 3), B("l.q", 5, 2)},
			PEFTConfigFile + `: use_dora: DoRA adapters are not supported`},
		{"missing config", "", []WriteTensor{A("l.q", 2, 3), B("l.q", 5, 2)}, PEFTConfigFile + ": no such file"},
		{"missing weights", cfg, nil, PEFTWeightsFile + ": no such file"},
	} {
		dir := peftWriteDir(t, tc.config, tc.tensors)
		_, err := ReadPEFT(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s:\n\terror %v\n\twant one naming %s and containing %q", tc.name, err, dir, tc.want)
		}
	}

	// A pickled adapter gets a hint instead of a bare "no such file".
	dir := peftWriteDir(t, cfg, nil)
	os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644)
	if _, err := ReadPEFT(dir); err == nil || !strings.Contains(err.Error(), "safe_serialization=True") {
		t.Errorf("adapter_model.bin: %v", err)
	}
}

func TestWritePEFTErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(a *PEFTAdapter)
		want   string
	}{
		{"rank not the config's", func(a *PEFTAdapter) { a.Config.RankPattern = nil }, `module "model.layers.1.self_attn.q_proj": rank 2, but the config gives rank 4`},
		{"short A", func(a *PEFTAdapter) { a.Modules[0].A = a.Modules[0].A[1:] }, `A has 31 values, but (rank, in) = (2, 16) needs 32`},
		{"short B", func(a *PEFTAdapter) { a.Modules[1].B = nil }, `B has 0 values, but (out, rank) = (16, 4) needs 64`},
		{"duplicate", func(a *PEFTAdapter) { a.Modules[2].Module = a.Modules[1].Module }, `module "model.layers.0.self_attn.q_proj" appears twice`},
		{"no name", func(a *PEFTAdapter) { a.Modules[0].Module = "" }, `a module has an empty name`},
		{"dora", func(a *PEFTAdapter) { a.Config.UseDoRA = true }, `use_dora: DoRA adapters are not supported`},
		{"other type", func(a *PEFTAdapter) { a.Config.PeftType = "LOHA" }, `peft_type "LOHA" is not supported`},
		{"both targets", func(a *PEFTAdapter) { a.Config.TargetRegex = ".*" }, `both a list of names and a regular expression`},
	} {
		a := peftSample()
		tc.change(a)
		dir := filepath.Join(t.TempDir(), "out")
		err := WritePEFT(dir, a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%s: the directory was created although nothing could be written", tc.name)
		}
	}
	if err := WritePEFT(t.TempDir(), nil); err == nil {
		t.Error("writing a nil adapter succeeded")
	}
}

// peftConfigSeeds are configs the fuzzer starts from.
var peftConfigSeeds = []string{
	`{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}`,
	`{"peft_type": "LORA", "target_modules": ".*\\.(q|v)_proj", "use_rslora": true, "init_lora_weights": "gaussian"}`,
	`{"peft_type": "LORA", "rank_pattern": {"q_proj": 4, "a(": 2}, "alpha_pattern": {"layers\\.0\\..*": 2.5}, "lora_dropout": 0.1}`,
	`{"peft_type": "LORA", "modules_to_save": ["lm_head"], "bias": "all"}`,
	`{"peft_type": "IA3"}`,
	`{"peft_type": "LORA", "r": -1, "target_modules": null, "task_type": null, "extra": {"nested": [1, 2, {}]}}`,
	`{"peft_type": "LORA"} trailing`,
	`[]`,
}

func FuzzReadPEFTConfig(f *testing.F) {
	for _, s := range peftConfigSeeds {
		f.Add([]byte(s))
	}
	js, _ := json.Marshal(peftSample().Config)
	f.Add(js)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParsePEFTConfig("adapter_config.json", data)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "adapter_config.json: ") {
				t.Fatalf("error does not name the file: %q", msg)
			}
			return
		}
		// Resolving patterns never panics, and resolved ranks are
		// positive, since ParsePEFTConfig checked them.
		for _, m := range []string{"model.layers.0.self_attn.q_proj", "", "q_proj", string(data)} {
			if r := c.RankFor(m); r <= 0 {
				t.Fatalf("RankFor(%q) = %d", m, r)
			}
			c.Scale(m)
		}
		// What parses writes, and what is written reads back the same.
		first, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		c2, err := ParsePEFTConfig("adapter_config.json", first)
		if err != nil {
			t.Fatalf("encoded config %s does not parse: %v", first, err)
		}
		second, _ := json.Marshal(c2)
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable:\n%s\n%s", first, second)
		}
	})
}
