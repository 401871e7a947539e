package engine

import (
	"fmt"
	"math"

	"lorac.dev/lorac/runtime/kern"
)

// AdamW holds the hyperparameters of Adam with decoupled weight decay
// (Loshchilov and Hutter, 2019), with the meaning torch.optim.AdamW gives
// them. LR is the peak rate a schedule starts from; Step takes the
// scheduled rate explicitly, so one AdamW value serves every step.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// DefaultAdamW returns lr 3e-4, betas (0.9, 0.999), eps 1e-8 and no weight
// decay. PyTorch's default decay is 0.01, but LoRA adapters are small and
// B starts at zero, so PEFT recipes usually train them without decay.
func DefaultAdamW() AdamW {
	return AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// adamParallelMin is the tensor size below which Step runs on the calling
// goroutine: LoRA factors are mostly this small, and an update of a few
// thousand elements costs less than waking the workers.
const adamParallelMin = 1 << 16

// Step applies update number step (counted from 1) with learning rate lr to
// params, reading grads and updating the moment buffers m and v in place;
// all four have the same length. It computes what torch.optim.AdamW does:
//
//	p ← p − lr·wd·p
//	m ← β₁m + (1−β₁)g        v ← β₂v + (1−β₂)g²
//	p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
//
// Each element is updated in float64 and rounded once, so the result does
// not depend on how the work is split over threads. It panics if step < 1,
// where the bias corrections divide by zero and would silently write NaN
// into the weights.
func (o AdamW) Step(params, grads, m, v []float32, step int, lr float64) {
	if step < 1 {
		panic(fmt.Sprintf("engine: AdamW.Step: step %d must count from 1", step))
	}
	n := len(params)
	grads, m, v = grads[:n], m[:n], v[:n]
	b1, b2 := o.Beta1, o.Beta2
	t := float64(step)
	stepSize := lr / (1 - math.Pow(b1, t))
	sqrtBC2 := math.Sqrt(1 - math.Pow(b2, t))
	decay := 1 - lr*o.WeightDecay
	update := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(grads[i])
			mi := b1*float64(m[i]) + (1-b1)*g
			vi := b2*float64(v[i]) + (1-b2)*g*g
			p := float64(params[i]) * decay
			p -= stepSize * mi / (math.Sqrt(vi)/sqrtBC2 + o.Eps)
			m[i], v[i], params[i] = float32(mi), float32(vi), float32(p)
		}
	}
	if n < adamParallelMin {
		update(0, n)
		return
	}
	kern.ParallelFor(n, update)
}

// LearningRate returns the rate for step (counted from 0) of a run of total
// steps. The first warmup steps ramp linearly, reaching peak at step
// warmup−1 (step 0 already gets peak/warmup, as in llm.c, so no step is
// wasted at rate zero). After that the schedule decays over the remaining
// steps, reaching its end value at step total:
//
//	"cosine"    to 0.1·peak along half a cosine
//	"linear"    to 0 along a straight line
//	"constant"  stays at peak
//
// Any other name, including "", is treated as "constant": the DSL checker
// rejects unknown names, and a training loop should not crash over one.
// Steps past total keep the end value; when total ≤ warmup the decay is
// already complete at the end of warmup.
func LearningRate(step, warmup, total int, peak float64, schedule string) float64 {
	if step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	progress := 1.0
	if span := total - warmup; span > 0 {
		progress = min(float64(step-warmup)/float64(span), 1)
	}
	switch schedule {
	case "cosine":
		lo := 0.1 * peak
		return lo + (peak-lo)*0.5*(1+math.Cos(math.Pi*progress))
	case "linear":
		return peak * (1 - progress)
	default:
		return peak
	}
}

// GradNorm returns the L2 norm of all the gradients taken together, the
// quantity torch.nn.utils.clip_grad_norm_ clips, accumulated in float64 so
// that millions of small squares do not vanish against a large running sum.
func GradNorm(grads ...[]float32) float64 {
	var sum float64
	for _, g := range grads {
		for _, x := range g {
			sum += float64(x) * float64(x)
		}
	}
	return math.Sqrt(sum)
}

// ClipGradients scales every gradient by maxNorm/norm when their joint norm
// exceeds maxNorm > 0, so the clipped norm is maxNorm, and returns the norm
// before clipping for logging. Unlike PyTorch it adds no 1e-6 to the
// denominator, so the clipped norm is maxNorm to float32 rounding. A
// non-finite norm is returned without touching the gradients: scaling
// cannot repair an Inf or NaN, and the caller should skip the step.
func ClipGradients(maxNorm float64, grads ...[]float32) (norm float64) {
	norm = GradNorm(grads...)
	if !(maxNorm > 0) || !(norm > maxNorm) || math.IsInf(norm, 0) {
		return norm
	}
	scale := maxNorm / norm
	for _, g := range grads {
		for i, x := range g {
			g[i] = float32(float64(x) * scale)
		}
	}
	return norm
}
