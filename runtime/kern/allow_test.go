package kern

import (
	"os"
	"testing"
)

func TestAllowISAs(t *testing.T) {
	defer SetISA(os.Getenv("LORAC_ISA"))
	t.Setenv("LORAC_ISA", "")
	if err := AllowISAs("generic"); err != nil || ISA() != "go" {
		t.Fatalf("AllowISAs(generic): variant %s, err %v; want go", ISA(), err)
	}
	// The widest variant the CPU has among those allowed, else pure Go.
	for _, v := range ISAVariants() {
		if err := AllowISAs(v, "generic"); err != nil || ISA() != v {
			t.Errorf("AllowISAs(%s, generic) chose %s, err %v", v, ISA(), err)
		}
	}
	want := ISAVariants()[0] // "go" when the CPU has no vector variant
	if err := AllowISAs("avx512", "avx2"); err != nil || ISA() != want {
		t.Errorf("AllowISAs(avx512, avx2) chose %s on a CPU with %v, err %v; want %s", ISA(), ISAVariants(), err, want)
	}
	if err := AllowISAs("sse"); err == nil {
		t.Error("AllowISAs(sse) succeeded")
	}
}

// TestAllowISAsYieldsToEnv: LORAC_ISA, when set, wins over the compiled
// model's targets.
func TestAllowISAsYieldsToEnv(t *testing.T) {
	defer SetISA(os.Getenv("LORAC_ISA"))
	t.Setenv("LORAC_ISA", "go")
	if err := SetISA("go"); err != nil {
		t.Fatal(err)
	}
	if err := AllowISAs("avx512", "avx2"); err != nil || ISA() != "go" {
		t.Errorf("with LORAC_ISA=go, AllowISAs(avx512, avx2) chose %s, err %v", ISA(), err)
	}
}
