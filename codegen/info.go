package codegen

import (
	"fmt"

	"lorac.dev/lorac/graph"
)

// Info is what a generated package's model.go tells the runtime in its
// Spec (an engine.ModelSpec), as data: where each parameter lives in its
// store, the adapters, and the sizes of the stores. codegen renders
// model.go from it; a program that runs the compiled graphs without the
// generated package (the CUDA device path of the lorac command) builds
// the same engine.ModelSpec from it. codegen may not import the runtime,
// so init kinds are the runtime's constant names ("InitKaiming").
type Info struct {
	Name, Arch     string
	Vocab, Context int
	Base           []ParamInfo
	Adapters       []AdapterInfo
	BaseSize       int
	LoRASize       int
	KVSize         int
	Rows           int // the rows graph's batch, 0 without one
	KVRowsSize     int
	Prefill        int // the prefill graph's chunk, 0 without one
	ArenaSize      int
	MaskSize       int
	Train          Train
	ISAs           []string
	CUDAArchs      []string
	HFConfig       string
	// Offset places every parameter (base and LoRA) in its store, and
	// State every KV cache (rows caches in the KVRows store), in elements.
	Offset, State map[string]int
}

// ParamInfo is one base parameter (engine.ParamSpec).
type ParamInfo struct {
	Name   string
	Shape  []int
	Offset int
	Init   string
}

// AdapterInfo is one LoRA branch (engine.AdapterSpec).
type AdapterInfo struct {
	Module                    string
	Rank, In, Out             int
	Alpha                     float64
	RSLoRA                    bool
	Dropout                   float64
	Conv1D                    bool
	AOffset, BOffset, WOffset int
	InitA, InitB              string
	Scale                     float32
}

// check validates the graphs as Generate needs them and lays out the
// stores.
func (s *Spec) check() (*layout, error) {
	if s.TrainFull == nil || s.EvalBase == nil || s.ForwardBase == nil || s.DecodeBase == nil {
		return nil, fmt.Errorf("codegen: the base graphs are missing")
	}
	lora := s.TrainLoRA != nil
	if lora && (s.EvalLoRA == nil || s.ForwardLoRA == nil || s.DecodeLoRA == nil) {
		return nil, fmt.Errorf("codegen: some LoRA graphs are missing")
	}
	ref := s.TrainFull
	if lora {
		ref = s.TrainLoRA
	}
	l, err := newLayout(ref)
	if err != nil {
		return nil, err
	}
	for _, g := range s.all() {
		l.addState(g)
		if g.Plan == nil {
			return nil, fmt.Errorf("codegen: graph %s/%s has no memory plan; run PlanMemory", g.Name, g.Mode)
		}
		for _, v := range g.Params {
			if _, ok := l.offset[v.Param.Name]; !ok {
				return nil, fmt.Errorf("codegen: parameter %s of a %s graph is not in the model", v.Param.Name, g.Mode)
			}
		}
	}
	return l, nil
}

// Info lays out the stores as Generate does and returns what the
// generated Spec would say.
func (s *Spec) Info() (*Info, error) {
	l, err := s.check()
	if err != nil {
		return nil, err
	}
	return s.info(l)
}

func (s *Spec) info(l *layout) (*Info, error) {
	m, t := s.Model, s.Train
	in := &Info{Name: m.Name, Arch: m.Arch, Vocab: m.Vocab, Context: m.Context,
		BaseSize: l.baseSize, LoRASize: l.loraSize, KVSize: l.kvSize, MaskSize: maskSize(s.TrainLoRA),
		Train: t, ISAs: s.Targets.ISAs, CUDAArchs: s.Targets.CUDAArchs, HFConfig: s.HFConfig,
		Offset: map[string]int{}, State: map[string]int{}}
	for k, v := range l.offset {
		in.Offset[k] = v
	}
	for k, v := range l.state {
		in.State[k] = v
	}
	for _, g := range s.all() {
		in.ArenaSize = max(in.ArenaSize, int((g.Plan.ArenaBytes+3)/4))
	}
	if g := s.DecodeRows; g != nil {
		in.Rows, in.KVRowsSize = g.Outputs[0].Shape[0], l.kvRowsSize
	}
	if g := s.PrefillRows; g != nil {
		in.Prefill = inputNamed(g, "tokens").Shape[1]
	}
	for _, p := range append(append([]*graph.Param{}, l.base...), l.lora...) {
		if _, ok := initNames[p.Init]; !ok {
			return nil, fmt.Errorf("codegen: parameter %s: init kind %s has no runtime name", p.Name, p.Init)
		}
	}
	for _, p := range l.base {
		in.Base = append(in.Base, ParamInfo{Name: p.Name, Shape: []int(p.Shape), Offset: l.offset[p.Name], Init: initNames[p.Init]})
	}
	if s.TrainLoRA == nil {
		return in, nil
	}
	for _, a := range s.TrainLoRA.Adapters {
		pa, pb := s.TrainLoRA.Param(a.Module+".lora_A.weight"), s.TrainLoRA.Param(a.Module+".lora_B.weight")
		w := s.TrainLoRA.Param(a.Module + ".weight")
		if pa == nil || pb == nil || w == nil {
			return nil, fmt.Errorf("codegen: adapter %s has no A, B or base weight in the graph", a.Module)
		}
		conv1d := false
		for _, n := range s.TrainLoRA.Nodes {
			if n.Module == a.Module && (n.Op == graph.OpLoRALinear || n.Op == graph.OpLinear) {
				conv1d = n.Attr.Conv1D
			}
		}
		ia, iaOK := initNames[a.InitA]
		ib, ibOK := initNames[a.InitB]
		if !iaOK || !ibOK {
			return nil, fmt.Errorf("codegen: adapter %s: an init kind has no runtime name", a.Module)
		}
		in.Adapters = append(in.Adapters, AdapterInfo{Module: a.Module, Rank: a.Rank, In: pa.Shape[1], Out: pb.Shape[0],
			Alpha: a.Alpha, RSLoRA: a.RSLoRA, Dropout: a.Dropout, Conv1D: conv1d,
			AOffset: l.offset[pa.Param.Name], BOffset: l.offset[pb.Param.Name], WOffset: l.offset[w.Param.Name],
			InitA: ia, InitB: ib, Scale: float32(a.Scale())})
	}
	return in, nil
}
