package kern

import "testing"

func TestFill(t *testing.T) {
	dst := nans[float32](17)
	Fill(dst, 1.5)
	for i, x := range dst {
		if x != 1.5 {
			t.Fatalf("dst[%d] = %v, want 1.5", i, x)
		}
	}
}
