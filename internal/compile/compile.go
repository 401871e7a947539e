package compile

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/passes"
	"lorac.dev/lorac/runtime/format"
	"lorac.dev/lorac/runtime/kern"
)

// Load reads, parses and checks a .lora file.
func Load(path string) (*dsl.Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadSource(path, src)
}

// LoadSource parses and checks .lora source.
func LoadSource(name string, src []byte) (*dsl.Config, error) {
	f, err := dsl.Parse(name, src)
	if err != nil {
		return nil, err
	}
	return dsl.Check(f)
}

// Build lowers the config and runs the pass pipeline.
func Build(cfg *dsl.Config, mode graph.Mode, pc passes.Config) (*graph.Graph, error) {
	g, err := dsl.Lower(cfg, dsl.LowerOptions{Mode: mode})
	if err != nil {
		return nil, err
	}
	if err := passes.Run(g, pc); err != nil {
		return nil, err
	}
	return g, nil
}

// Warnings are what a valid config asks for that is worth saying before
// it runs: today, that a target cuda block does not move the model onto
// the GPU by itself. A compiled package gets NewCUDA (codegen.DeviceFile,
// through package device), but New, and the model programs lorac train,
// generate, eval and merge build, run on the CPU unless asked for the
// device. They are warnings, not errors, because the file is right.
func Warnings(cfg *dsl.Config) []string {
	var w []string
	for _, t := range cfg.Targets {
		if t.Kind == "cuda" {
			w = append(w, fmt.Sprintf("%s: target cuda (%s): the compiled package runs on a GPU through NewCUDA (cuda.go) and on the CPU through New; lorac train, generate, eval and merge run the model on a GPU only with --device cuda",
				t.Pos, strings.Join(t.Arch, ", ")))
		}
	}
	return w
}

// Summary is what `lorac check` reports.
type Summary struct {
	Name          string `json:"name"`
	Arch          string `json:"arch"`
	Vocab         int    `json:"vocab"`
	Context       int    `json:"context"`
	Dim           int    `json:"dim"`
	Layers        int    `json:"layers"`
	Heads         int    `json:"heads"`
	KVHeads       int    `json:"kv_heads"`
	FFN           int    `json:"ffn"`
	TieEmbeddings bool   `json:"tie_embeddings"`
	// ParamsTotal is the base model's own parameter count (as Hugging Face
	// counts it; a tied head once). ParamsAll adds the adapter, as PEFT's
	// print_trainable_parameters does, and TrainablePercent is PEFT's figure.
	ParamsTotal      int64   `json:"params_total"`
	ParamsAll        int64   `json:"params_all"`
	ParamsTrainable  int64   `json:"params_trainable"`
	ParamsFrozen     int64   `json:"params_frozen"`
	TrainablePercent float64 `json:"trainable_percent"`
	AdaptedModules   int     `json:"adapted_modules"`
	AdapterBytes     int64   `json:"adapter_bytes"`
	TrainBatch       int     `json:"train_batch"`
	TrainSeq         int     `json:"train_seq"`
	// TrainFull is set when the file has no lora block: training then means
	// training every parameter.
	TrainFull   bool   `json:"train_full"`
	TrainMemory int64  `json:"train_memory_bytes"`
	InferMemory int64  `json:"infer_memory_bytes"`
	Train       Memory `json:"train_memory"`
	Infer       Memory `json:"infer_memory"`
	// MachineMemory is this machine's physical memory (0 where lorac
	// cannot read it); TrainFits and InferFits say whether TrainMemory and
	// InferMemory are within it (false when it is unknown).
	MachineMemory int64 `json:"machine_memory_bytes"`
	TrainFits     bool  `json:"train_fits"`
	InferFits     bool  `json:"infer_fits"`
	// Warnings are Warnings(cfg).
	Warnings []string `json:"warnings,omitempty"`
}

// MachineMemory returns the machine's physical memory in bytes, from
// /proc/meminfo's MemTotal, or 0 where there is none to read. Tests
// replace it.
var MachineMemory = func() int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return memTotal(string(raw))
}

// memTotal parses the MemTotal line of /proc/meminfo ("MemTotal: N kB").
func memTotal(meminfo string) int64 {
	for line := range strings.Lines(meminfo) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n <= 0 || n > 1<<50 {
			return 0
		}
		return n * 1024
	}
	return 0
}

// Memory breaks a run's memory down by kind of storage.
type Memory struct {
	Weights        int64 `json:"weights_bytes"`
	Adapter        int64 `json:"adapter_bytes"`
	Gradients      int64 `json:"gradients_bytes"`
	Optimizer      int64 `json:"optimizer_bytes"`
	Activations    int64 `json:"activations_bytes"`
	ActivationsRaw int64 `json:"activations_without_reuse_bytes"`
	Inputs         int64 `json:"inputs_bytes"`
	// KernelScratch is the largest scratch one kernel call takes beyond the
	// plan (packed GEMM panels, attention's score blocks), with as many
	// workers as this machine has cores.
	KernelScratch int64 `json:"kernel_scratch_bytes"`
	Total         int64 `json:"total_bytes"`
}

func memoryOf(g *graph.Graph) (Memory, error) {
	p := g.Plan
	scratch, err := KernelScratch(g, runtime.GOMAXPROCS(0))
	if err != nil {
		return Memory{}, err
	}
	total, ok := graph.AddInt64(p.TotalBytes(), scratch)
	if !ok || total > graph.MaxBytes {
		return Memory{}, fmt.Errorf("a %s run needs more than %d bytes (128 TiB) with its kernels' scratch, more than a process can address", g.Mode, int64(graph.MaxBytes))
	}
	return Memory{p.WeightBytes, p.AdapterBytes, p.GradBytes, p.OptimizerBytes, p.ArenaBytes, p.NaiveBytes, p.InputBytes,
		scratch, total}, nil
}

// KernelScratch returns the most scratch memory any one kernel call of g
// takes, by the lowering table's calls and the kernels' own accounting.
func KernelScratch(g *graph.Graph, workers int) (int64, error) {
	var most int64
	for _, n := range g.Nodes {
		calls, err := lower.Lower(n)
		if err != nil {
			return 0, err
		}
		for _, c := range calls {
			dims := map[string]int{}
			for _, a := range c.Args {
				if a.Kind == lower.Int {
					dims[a.Name] = a.Int
				}
			}
			most = max(most, kern.ScratchBytes(c.Kernel, func(name string) int { return dims[name] }, workers))
		}
	}
	return most, nil
}

// Summarize compiles the training graph (at the train block's batch and
// seq) and the merged inference graph (batch 1 × context) and reports their
// parameters and memory plans.
func Summarize(cfg *dsl.Config) (*Summary, error) {
	// Without a lora block the only way to train is every parameter.
	full := len(cfg.LoRA) == 0
	tg, err := Build(cfg, graph.Train, passes.Config{Full: full})
	if err != nil {
		return nil, err
	}
	ig, err := Build(cfg, graph.Infer, passes.Config{})
	if err != nil {
		return nil, err
	}
	m := cfg.Model
	s := &Summary{
		Name: m.Name, Arch: m.Arch, Vocab: m.Vocab, Context: m.Context, Dim: m.Dim, Layers: m.Layers,
		Heads: m.Heads, KVHeads: m.KVHeads, FFN: m.FFN, TieEmbeddings: m.TieEmbeddings,
		TrainBatch: cfg.Train.Batch, TrainSeq: cfg.Train.Seq, TrainFull: full, Warnings: Warnings(cfg),
	}
	var lora []*graph.Param
	// Counts are overflow-checked; the passes already bound every tensor
	// and the run's total to graph.MaxBytes.
	overflow := false
	add := func(dst *int64, n int64) {
		sum, ok := graph.AddInt64(*dst, n)
		overflow = overflow || !ok
		*dst = sum
	}
	for _, v := range tg.Params {
		n, ok := v.Shape.CheckedNumel()
		overflow = overflow || !ok
		if v.Param.Role == graph.LoRA {
			lora = append(lora, v.Param)
			add(&s.ParamsAll, n)
		} else {
			add(&s.ParamsTotal, n)
		}
		if v.Param.Trainable {
			add(&s.ParamsTrainable, n)
		} else {
			add(&s.ParamsFrozen, n)
		}
	}
	add(&s.ParamsAll, s.ParamsTotal)
	if overflow {
		return nil, fmt.Errorf("the parameter counts overflow int64")
	}
	if s.ParamsAll > 0 {
		s.TrainablePercent = 100 * float64(s.ParamsTrainable) / float64(s.ParamsAll)
	}
	s.AdaptedModules = len(tg.Adapters)
	s.AdapterBytes = AdapterFileBytes(lora)
	if s.Train, err = memoryOf(tg); err != nil {
		return nil, err
	}
	if s.Infer, err = memoryOf(ig); err != nil {
		return nil, err
	}
	s.TrainMemory, s.InferMemory = s.Train.Total, s.Infer.Total
	s.MachineMemory = MachineMemory()
	s.TrainFits = s.MachineMemory > 0 && s.TrainMemory <= s.MachineMemory
	s.InferFits = s.MachineMemory > 0 && s.InferMemory <= s.MachineMemory
	return s, nil
}

// AdapterFileBytes is the size of the adapter_model.safetensors holding these
// LoRA parameters in F32 under PEFT's key names, as the runtime writes it.
func AdapterFileBytes(ps []*graph.Param) int64 {
	if len(ps) == 0 {
		return 0
	}
	index := map[string]int{}
	var modules []format.LoRAWeights
	for _, p := range ps {
		i, ok := index[p.Module]
		if !ok {
			i = len(modules)
			index[p.Module] = i
			modules = append(modules, format.LoRAWeights{Module: p.Module})
		}
		w := &modules[i]
		if strings.HasSuffix(p.Name, ".lora_A.weight") {
			w.Rank, w.In = p.Shape[0], p.Shape[1]
		} else {
			w.Out = p.Shape[0]
		}
	}
	n, err := format.PEFTWeightsSize(modules)
	if err != nil {
		return 0 // the graph's own LoRA parameters always have valid shapes
	}
	return n
}

// Human formats a byte count for people: "12.5 MiB".
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, suffix := float64(n), []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + suffix[i]
}

// Count formats a count with thousands separators: "124,439,808".
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
