package cuda

import (
	"fmt"
	"math"
)

// What the device does not run. The lowering table may grow faster than
// the CUDA kernels: ops without a device kernel are listed in NotOnDevice,
// and Check refuses a call of one, or a call whose arguments the device
// kernels reject, without launching anything, so that a graph is refused
// whole (internal/devexec) before its first kernel runs.

// NotOnDevice maps each kernel of the lowering table that Lorac has no
// method for to the reason. Every kernel has one today; a kernel added to
// the lowering table before its device version belongs here (the
// coverage tests of backends/ptx and internal/devexec accept only the
// listed kernels as unserved).
var NotOnDevice = map[string]string{}

// Unsupported is the error of a kernel the device does not run yet.
type Unsupported struct {
	Kernel string // the lowering kernel
	Reason string // NotOnDevice's entry
}

func (e *Unsupported) Error() string { return fmt.Sprintf("cuda: %s: %s", e.Kernel, e.Reason) }

// Check returns, without launching anything, an *Unsupported for a kernel
// in NotOnDevice, or the error the Lorac method named kernel would return
// for its attribute arguments (the attention kernels' window, score scale
// and soft-cap); nil otherwise. args are the method's arguments in order.
func Check(kernel string, args ...any) error {
	if why, ok := NotOnDevice[kernel]; ok {
		return &Unsupported{kernel, why}
	}
	n, ok := map[string]int{"Attention": 12, "AttentionGrad": 15, "AttentionDecode": 16}[kernel]
	if !ok {
		return nil
	}
	if len(args) != n {
		return fmt.Errorf("cuda: Check %s: %d arguments, want %d", kernel, len(args), n)
	}
	f32 := func(i int) float32 {
		switch v := args[i].(type) {
		case float32:
			return v
		case float64:
			return float32(v)
		}
		return float32(math.NaN())
	}
	integer := func(i int) int {
		if v, ok := args[i].(int); ok {
			return v
		}
		return -1
	}
	// The attention kernels end in HS, W, scale, softcap.
	if _, err := attnArgs(kernel, integer(n-4), integer(n-3), f32(n-2), f32(n-1)); err != nil {
		return err
	}
	if kernel == "AttentionDecode" {
		return decodeTokens(integer(8)) // out, q, k, v, kcache, vcache, pos, B, T
	}
	return nil
}

// decodeTokens refuses decode attention of more than one new token a
// sequence: the prefill graph's chunks (T > 1) have no device kernel yet.
func decodeTokens(T int) error {
	if T != 1 {
		return &Unsupported{"AttentionDecode", fmt.Sprintf("%d new tokens a sequence (a prefill chunk) are not on the CUDA device yet; it decodes one", T)}
	}
	return nil
}
