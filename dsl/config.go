package dsl

import (
	"github.com/alecthomas/participle/v2/lexer"
	"lorac.dev/lorac/graph"
)

// Config is a checked .lora file: every field is valid and defaults are
// filled in. Check builds it; Lower turns it into a graph.
type Config struct {
	File    string
	Model   Model
	LoRA    []LoRA // in file order; no module appears in two blocks
	Train   Train
	Targets []Target
	Serve   Serve
}

// Serve is the serve block: the shapes of the graphs lorac serve batches
// with, defaults filled in.
type Serve struct {
	Pos lexer.Position
	// Rows is the batch of the rows graph: the requests one decoding step
	// runs in one call (more run as more groups of Rows).
	Rows int
	// Prefill is the prefill graph's chunk: the most prompt tokens one
	// call takes.
	Prefill int
}

// DefaultRows is the rows graph's batch without a serve block.
const DefaultRows = 8

// DefaultPrefill is the prefill chunk without a serve block: 64 tokens,
// but at most a quarter of the context, so that on small models too a
// prompt spans several chunks and a short one pays for little padding.
func DefaultPrefill(context int) int { return max(1, min(64, context/4)) }

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
	// llama only: the features of the Llama 3, Mistral and Qwen families.
	HeadDim int // the size of one attention head; 0 means Dim / Heads
	// RopeScaling is "" (none), "linear" or "llama3", with its parameters
	// (transformers' rope_parameters).
	RopeScaling     string
	RopeFactor      float64
	RopeLowFreq     float64 // llama3: low_freq_factor
	RopeHighFreq    float64 // llama3: high_freq_factor
	RopeOrigContext int     // llama3: original_max_position_embeddings
	QKVBias         bool    // q, k and v projections have biases (Qwen2)
	QKNorm          bool    // RMSNorm over each head of q and k before RoPE (Qwen3)
	// SlidingWindow > 0: a query attends to the last SlidingWindow
	// positions only, itself included (Mistral); 0: to all earlier ones.
	SlidingWindow int
	// Gemma: EmbedScale multiplies the token embeddings by √Dim (rounded
	// to float32, as transformers does); NormOffset is added to every
	// RMSNorm weight (Gemma: 1, a norm of (1 + w)); MLPAct is the gate's
	// activation, "silu" (SwiGLU; also when empty) or "gelu" (GeGLU, tanh GELU).
	EmbedScale bool
	NormOffset float64
	MLPAct     string
	// Gemma 2: AttnScalar > 0 scales attention scores by AttnScalar^−½
	// (query_pre_attn_scalar) instead of head size^−½; AttnSoftcap and
	// LogitSoftcap > 0 soft-cap scores and logits (c·tanh(x/c));
	// SandwichNorms adds an RMSNorm after attention and one after the MLP
	// (post_attention_layernorm, post_feedforward_layernorm; the MLP's
	// input norm is then pre_feedforward_layernorm); WindowPattern P > 0
	// applies SlidingWindow only to layers i with (i+1) mod P ≠ 0.
	AttnScalar    float64
	AttnSoftcap   float64
	LogitSoftcap  float64
	SandwichNorms bool
	WindowPattern int
	// RopeLocalTheta > 0 is the RoPE base of the sliding-window layers,
	// which then take no RoPE scaling (Gemma 3's rope_local_base_freq);
	// the others keep RopeTheta and RopeScaling.
	RopeLocalTheta float64
}

// LayerWindow is the sliding window of layer i (0: none).
func (m *Model) LayerWindow(i int) int {
	if m.WindowPattern > 0 && (i+1)%m.WindowPattern == 0 {
		return 0
	}
	return m.SlidingWindow
}

// LayerRoPE is the RoPE base and scaling of layer i: RopeLocalTheta
// without scaling on a sliding-window layer when it is set, else
// RopeTheta and the model's scaling.
func (m *Model) LayerRoPE(i int) (float64, graph.RoPEScaling) {
	if m.RopeLocalTheta > 0 && m.LayerWindow(i) > 0 {
		return m.RopeLocalTheta, graph.RoPEScaling{}
	}
	return m.RopeTheta, graph.RoPEScaling{Kind: m.RopeScaling, Factor: m.RopeFactor, LowFreq: m.RopeLowFreq,
		HighFreq: m.RopeHighFreq, OrigContext: m.RopeOrigContext}
}

// HeadSize is HS: HeadDim when set, else Dim / Heads (0 for an unchecked
// model without heads).
func (m *Model) HeadSize() int {
	if m.HeadDim > 0 {
		return m.HeadDim
	}
	if m.Heads <= 0 {
		return 0
	}
	return m.Dim / m.Heads
}

// LinearBias says whether the linear with the given short name has a bias.
func (m *Model) LinearBias(short string) bool {
	switch short {
	case "q", "k", "v":
		return m.Bias || m.QKVBias
	}
	return m.Bias
}

// GGUFArch is llama.cpp's name for the architecture: gpt2, llama (Llama
// 2 and 3, Mistral), gemma3 (sandwich and q/k norms), gemma2 (sandwich
// norms), gemma (scaled embeddings), qwen3 (q and k norms) or qwen2 (q, k,
// v biases).
func (m *Model) GGUFArch() string {
	switch {
	case m.Arch != "llama":
		return m.Arch
	case m.SandwichNorms && m.QKNorm:
		return "gemma3"
	case m.SandwichNorms:
		return "gemma2"
	case m.EmbedScale:
		return "gemma"
	case m.QKNorm:
		return "qwen3"
	case m.QKVBias:
		return "qwen2"
	}
	return "llama"
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
