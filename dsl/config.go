package dsl

import "github.com/alecthomas/participle/v2/lexer"

// Config is a checked .lora file: every field is valid and defaults are
// filled in. Check builds it; Lower turns it into a graph.
type Config struct {
	File    string
	Model   Model
	LoRA    []LoRA // in file order; no module appears in two blocks
	Train   Train
	Targets []Target
}

// Model is the transformer architecture.
type Model struct {
	Pos           lexer.Position
	Name          string
	Arch          string // "gpt2" or "llama"
	Vocab         int
	Context       int
	Dim           int // C
	Layers        int // L
	Heads         int // NH
	KVHeads       int // key/value heads; equal to Heads for gpt2
	FFN           int // hidden width of the MLP
	NormEps       float64
	RopeTheta     float64 // llama only
	TieEmbeddings bool    // the output head reuses the token embedding
	Bias          bool    // linear layers have biases (gpt2: true; llama: false)
}

// HeadSize is HS = Dim / Heads (0 for an unchecked model without heads).
func (m *Model) HeadSize() int {
	if m.Heads <= 0 {
		return 0
	}
	return m.Dim / m.Heads
}

// LoRA is one lora block: the adapters it places and their hyper-parameters.
type LoRA struct {
	Pos     lexer.Position
	Rank    int
	Alpha   float64
	Dropout float64
	RSLoRA  bool
	Init    string   // "default" (kaiming-uniform A, zero B), "gaussian", or "random" (non-zero B, for tests)
	Targets []string // as written
	Layers  []int    // the layers the block applies to, ascending
	// Modules are the resolved Hugging Face module names, in model order.
	Modules []string
}

// Train is the train block, with defaults filled in.
type Train struct {
	Pos         lexer.Position
	Batch       int
	Seq         int
	Steps       int
	LR          float64
	Warmup      int
	Schedule    string // "cosine", "linear" or "constant"
	Clip        float64
	Seed        uint64
	WeightDecay float64
}

// Target is a target block: a backend and its options.
type Target struct {
	Pos  lexer.Position
	Kind string   // "cpu" or "cuda"
	ISA  []string // cpu: "avx512", "avx2", "generic"
	Arch []string // cuda: "sm_80", "sm_90"
}
