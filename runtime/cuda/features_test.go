package cuda

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestCheck: Check refuses the kernels NotOnDevice lists, with an
// *Unsupported carrying the reason, and the attention arguments the
// methods reject, with the methods' own errors and before any launch;
// what the device runs passes.
func TestCheck(t *testing.T) {
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
	NotOnDevice["Newop"] = "the new op is not on the CUDA device yet"
	defer delete(NotOnDevice, "Newop")
	for k, why := range NotOnDevice {
		var u *Unsupported
		if err := Check(k); !errors.As(err, &u) || u.Reason != why || !strings.Contains(err.Error(), why) {
			t.Errorf("Check %s = %v", k, err)
		}
	}
	nan := float32(math.NaN())
	for _, c := range []struct {
		kernel, want string
		args         []any
		call         func() error
	}{
		{"Attention", "window -1", []any{p, p, p, p, 1, 8, 2, 2, HS, -1, float32(0), float32(0)},
			func() error { return l.Attention(p, p, p, p, 1, 8, 2, 2, HS, -1, 0, 0) }},
		{"AttentionGrad", "soft-cap -1", []any{p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, float32(0), float32(-1)},
			func() error { return l.AttentionGrad(p, p, p, p, p, p, p, 1, 8, 2, 2, HS, 0, 0, -1) }},
		{"AttentionDecode", "score scale NaN", []any{p, p, p, p, p, p, p, 1, 1, 8, 2, 2, HS, 0, nan, float32(0)},
			func() error { return l.AttentionDecode(p, p, p, p, p, p, p, 1, 1, 8, 2, 2, HS, 0, nan, 0) }},
		{"AttentionDecode", "32 new tokens a sequence (a prefill chunk) are not on the CUDA device", []any{p, p, p, p, p, p, p, 1, 32, 64, 2, 2, HS, 0, float32(0), float32(0)},
			func() error { return l.AttentionDecode(p, p, p, p, p, p, p, 1, 32, 64, 2, 2, HS, 0, 0, 0) }},
	} {
		err := c.call()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.kernel, err, c.want)
			continue
		}
		if cerr := Check(c.kernel, c.args...); cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("Check %s = %v, the method says %v", c.kernel, cerr, err)
		}
	}
	if len(*launches) != 0 {
		t.Fatalf("%d launches from refused calls", len(*launches))
	}
	if err := Check("Attention", p, p, p, p, 1, 8, 2, 2, HS, 4, 0.05, 50.0); err != nil {
		t.Errorf("Check of a windowed, scaled, capped attention = %v", err)
	}
	if err := Check("Attention", p, 1); err == nil {
		t.Error("Check with too few arguments accepted")
	}
	if err := Check("AttentionDecode", p, p, p, p, p, p, p, 8, 1, 64, 2, 2, HS, 4, 0.05, 50.0); err != nil {
		t.Errorf("Check of one-token decode attention = %v", err)
	}
	var u *Unsupported
	if err := Check("AttentionDecode", p, p, p, p, p, p, p, 1, 32, 64, 2, 2, HS, 0, 0.0, 0.0); !errors.As(err, &u) || u.Kernel != "AttentionDecode" {
		t.Errorf("Check of a prefill chunk = %v, want an *Unsupported naming AttentionDecode", err)
	}
	if err := Check("Softmax", p, p, 1, 1); err != nil {
		t.Errorf("Check Softmax = %v", err)
	}
}
