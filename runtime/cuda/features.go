package cuda

import (
	"fmt"
	"math"
)

// What the device does not run yet. The lowering table grew after the CUDA
// kernels were written: ops without a device kernel are listed in
// NotOnDevice, and arguments the device kernels do not implement yet (a
// sliding window, a score scale, a soft-cap)
// make the Lorac methods return an *Unsupported before any launch. Check
// runs the same tests without launching, so that a graph is refused whole
// (internal/devexec) before its first kernel runs.

// NotOnDevice maps each kernel of the lowering table that Lorac has no
// method for to the reason.
var NotOnDevice = map[string]string{
	"LoRALinearRows": "per-row adapters (the rows graph of lorac serve) are not on the CUDA device yet",
}

// Unsupported is the error of a kernel call whose arguments ask for a
// feature the device kernels do not implement yet.
type Unsupported struct {
	Kernel  string // the lowering kernel, e.g. Attention
	Feature string // e.g. "sliding-window attention"
	Detail  string // the argument's value
}

func (e *Unsupported) Error() string {
	return fmt.Sprintf("cuda: %s: %s is not on the CUDA device yet (%s)", e.Kernel, e.Feature, e.Detail)
}

// attnFeatures: the device attends causally over every earlier position,
// scores scaled by 1/√HS, without a soft-cap. A scale of exactly 1/√HS (in
// float32) is the default too.
func attnFeatures(kernel string, HS, W int, scale, softcap float32) error {
	switch {
	case W > 0:
		return &Unsupported{kernel, "sliding-window attention", fmt.Sprintf("window %d", W)}
	case W < 0:
		return fmt.Errorf("cuda: %s: window %d is negative", kernel, W)
	case scale != 0 && scale != attnScale(HS):
		return &Unsupported{kernel, "an attention score scale other than 1/√head size", fmt.Sprintf("scale %g", scale)}
	case softcap != 0 || math.IsNaN(float64(softcap)):
		return &Unsupported{kernel, "attention soft-capping", fmt.Sprintf("soft-cap %g", softcap)}
	}
	return nil
}

// Check returns the error the Lorac method named kernel would return,
// before launching anything, for a feature its arguments ask for that the
// device does not implement (nil when it runs them, or when kernel is not
// one whose arguments select features). args are the method's arguments in
// order; a kernel in NotOnDevice is refused with its reason.
func Check(kernel string, args ...any) error {
	if why, ok := NotOnDevice[kernel]; ok {
		return fmt.Errorf("cuda: %s", why)
	}
	f32 := func(i int) float32 {
		if i < len(args) {
			switch v := args[i].(type) {
			case float32:
				return v
			case float64:
				return float32(v)
			}
		}
		return float32(math.NaN())
	}
	integer := func(i int) int {
		if i < len(args) {
			if v, ok := args[i].(int); ok {
				return v
			}
		}
		return -1
	}
	want := map[string]int{"Attention": 12, "AttentionGrad": 15, "AttentionDecode": 15}
	n, ok := want[kernel]
	if !ok {
		return nil
	}
	if len(args) != n {
		return fmt.Errorf("cuda: Check %s: %d arguments, want %d", kernel, len(args), n)
	}
	// The attention kernels end in HS, W, scale, softcap.
	return attnFeatures(kernel, integer(n-4), integer(n-3), f32(n-2), f32(n-1))
}
