package cuda

import (
	"errors"
	"strings"
	"testing"
)

// TestRefusals: every method whose arguments select a feature the device
// kernels lack returns an *Unsupported naming it, before any launch, and
// Check gives the same answer from the arguments alone; defaults launch.
func TestRefusals(t *testing.T) {
	a, launches := fakeAPI()
	d, err := open(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.Lorac()
	if err != nil {
		t.Fatal(err)
	}
	p := Ptr(0x1000)
	const HS = 16
	def := attnScale(HS)
	cases := []struct {
		kernel, feature string
		args            []any
		call            func() error
	}{
		{"Attention", "sliding-window attention", []any{p, p, p, p, 1, 8, 2, 2, HS, 4, float32(0), float32(0)},
			func() error { return l.Attention(p, p, p, p, 1, 8, 2, 2, HS, 4, 0, 0) }},
		{"Attention", "score scale", []any{p, p, p, p, 1, 8, 2, 2, HS, 0, float32(0.0625), float32(0)},
			func() error { return l.Attention(p, p, p, p, 1, 8, 2, 2, HS, 0, 0.0625, 0) }},
		{"AttentionGrad", "soft-capping", []any{p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, float32(0), float32(50)},
			func() error { return l.AttentionGrad(p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, 0, 50) }},
		{"AttentionGrad", "sliding-window attention", []any{p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 3, def, float32(0)},
			func() error { return l.AttentionGradStats(p, p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 3, def, 0) }},
		{"AttentionDecode", "soft-capping", []any{p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, float32(0), float32(30)},
			func() error { return l.AttentionDecode(p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, 0, 30) }},
	}
	for _, c := range cases {
		err := c.call()
		var u *Unsupported
		if !errors.As(err, &u) || u.Kernel != c.kernel || !strings.Contains(err.Error(), c.feature) ||
			!strings.Contains(err.Error(), "not on the CUDA device yet") {
			t.Errorf("%s (%s) = %v", c.kernel, c.feature, err)
		}
		cerr := Check(c.kernel, c.args...)
		if cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("Check %s = %v, the method says %v", c.kernel, cerr, err)
		}
	}
	if len(*launches) != 0 {
		t.Fatalf("%d launches from refused calls", len(*launches))
	}
	// Defaults: scale 0 or exactly 1/√HS, no window, no cap.
	for _, call := range []func() error{
		func() error { return l.RMSNorm(p, p, p, 4, 8, 1e-6, 1) },
		func() error { return l.Attention(p, p, p, p, 1, 8, 2, 2, HS, 0, 0, 0) },
		func() error { return l.Attention(p, p, p, p, 1, 8, 2, 2, HS, 0, def, 0) },
	} {
		if err := call(); err != nil {
			t.Error(err)
		}
	}
	if len(*launches) != 3 {
		t.Errorf("%d launches for 3 default calls", len(*launches))
	}
	if err := Check("Attention", p, p, p, p, 1, 8, 2, 2, HS, 0, 0.0, 0.0); err != nil {
		t.Errorf("Check of default attention = %v", err)
	}
	if err := Check("Attention", p, p, p, p, 1, 8, 2, 2, HS, -1, 0.0, 0.0); err == nil {
		t.Error("negative window accepted")
	}
	if err := Check("Attention", p, 1); err == nil {
		t.Error("Check with too few arguments accepted")
	}
	for k, why := range NotOnDevice {
		if err := Check(k); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Check %s = %v", k, err)
		}
	}
}
