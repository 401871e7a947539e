package kern

import "math"

// rowMax returns the largest element of x.
func rowMax[F Float](x []F) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = max(mx, float64(v))
	}
	return mx
}

// logSumExp returns log Σ exp(x), subtracting the max first so that no term
// overflows.
func logSumExp[F Float](x []F) float64 {
	mx := rowMax(x)
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(sum)
}

// SoftmaxRef computes out = softmax(inp) over each row, subtracting the
// row max first so that exp never overflows.
//
// Shapes: out, inp (N, C).
func SoftmaxRef[F Float](out, inp []F, N, C int) {
	for n := 0; n < N; n++ {
		x := inp[n*C : (n+1)*C]
		o := out[n*C : (n+1)*C]
		lse := logSumExp(x)
		for c, v := range x {
			o[c] = F(math.Exp(float64(v) - lse))
		}
	}
}

// SoftmaxGradRef computes dinp = out⊙(dout − Σ dout⊙out) over each row, from
// the forward output out.
//
// Shapes: dinp, dout, out (N, C).
func SoftmaxGradRef[F Float](dinp, dout, out []F, N, C int) {
	for n := 0; n < N; n++ {
		y := out[n*C : (n+1)*C]
		d := dout[n*C : (n+1)*C]
		s := dot(d, y)
		di := dinp[n*C : (n+1)*C]
		for c, v := range y {
			di[c] = F(float64(v) * (float64(d[c]) - s))
		}
	}
}

// IgnoreTarget is the target id the cross-entropy kernels skip: its row adds
// nothing to the loss, is not counted in its mean, and gets a zero gradient.
// It is PyTorch's ignore_index, with -1 for -100. Data loaders put it on
// prompt tokens, padding and anything else that is input but not a label.
const IgnoreTarget int32 = -1

// CountTargets returns how many targets are not IgnoreTarget: the number of
// rows a cross-entropy loss averages over.
func CountTargets(targets []int32) int {
	n := 0
	for _, t := range targets {
		if t != IgnoreTarget {
			n++
		}
	}
	return n
}

// CrossEntropyRef returns the mean over the counted rows of
// −log softmax(logits[n,:])[targets[n]], computed with a stable log-sum-exp.
// Rows whose target is IgnoreTarget are skipped; with none counted the loss
// is 0.
//
// Shapes: logits (N, V); targets (N), each in [0, V) or IgnoreTarget (the
// kernel indexes with them unchecked). N ≥ 1.
func CrossEntropyRef[F Float](logits []F, targets []int32, N, V int) F {
	var total float64
	count := 0
	for n := 0; n < N; n++ {
		if targets[n] == IgnoreTarget {
			continue
		}
		x := logits[n*V : (n+1)*V]
		total += logSumExp(x) - float64(x[targets[n]])
		count++
	}
	if count == 0 {
		return 0
	}
	return F(total / float64(count))
}

// CrossEntropyGradRef computes dlogits = dloss·(softmax(logits) − onehot(targets))/count
// on counted rows and zero on rows whose target is IgnoreTarget: the
// gradient of CrossEntropyRef scaled by the loss gradient dloss.
//
// Shapes: dlogits, logits (N, V); targets (N), each in [0, V) or IgnoreTarget.
func CrossEntropyGradRef[F Float](dlogits []F, dloss F, logits []F, targets []int32, N, V int) {
	count := CountTargets(targets[:N])
	g := 0.0
	if count > 0 {
		g = float64(dloss) / float64(count)
	}
	for n := 0; n < N; n++ {
		x := logits[n*V : (n+1)*V]
		d := dlogits[n*V : (n+1)*V]
		if targets[n] == IgnoreTarget {
			clear(d)
			continue
		}
		lse := logSumExp(x)
		for i, v := range x {
			p := math.Exp(float64(v) - lse)
			if i == int(targets[n]) {
				p--
			}
			d[i] = F(g * p)
		}
	}
}
