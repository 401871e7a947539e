package engine

import (
	"fmt"
	"math"
)

// InitNormal fills dst with N(0, std²) samples, as torch.nn.init.normal_
// does for embeddings and the base weights of a model trained from scratch.
// Values are drawn in float64 and rounded once, so the stream of r is the
// same whatever the destination's precision.
func InitNormal(dst []float32, std float64, r *RNG) {
	for i := range dst {
		dst[i] = float32(std * r.NormFloat64())
	}
}

// InitUniform fills dst with samples of U(−bound, bound), one draw of r per
// element.
func InitUniform(dst []float32, bound float64, r *RNG) {
	for i := range dst {
		dst[i] = float32(bound * (2*r.Float64() - 1))
	}
}

// InitKaimingUniform fills dst as torch.nn.init.kaiming_uniform_(a=√5) does
// for an nn.Linear weight with fanIn inputs, which is how PEFT initialises
// lora_A: gain √(2/(1+a²)) = √(1/3) and bound gain·√(3/fanIn) = 1/√fanIn.
// Matching PEFT matters because the scale of A sets the effective learning
// rate of the adapter. It panics if fanIn ≤ 0, a shape bug in the caller.
func InitKaimingUniform(dst []float32, fanIn int, r *RNG) {
	if fanIn <= 0 {
		panic(fmt.Sprintf("engine: InitKaimingUniform: fanIn %d must be positive", fanIn))
	}
	InitUniform(dst, 1/math.Sqrt(float64(fanIn)), r)
}
