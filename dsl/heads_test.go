package dsl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBOMAccepted: a file that starts with a UTF-8 byte order mark checks
// like the same file without it, with the same positions.
func TestBOMAccepted(t *testing.T) {
	src := readFile(t, "../examples/tiny/tiny.lora")
	want, err := parseCheck("tiny.lora", src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseCheck("tiny.lora", append([]byte("\uFEFF"), src...))
	if err != nil {
		t.Fatalf("with a byte order mark: %v", err)
	}
	if got.Model.Pos != want.Model.Pos || got.Model.Dim != want.Model.Dim || len(got.LoRA) != len(want.LoRA) {
		t.Errorf("with a byte order mark: model at %v dim %d, want %v dim %d", got.Model.Pos, got.Model.Dim, want.Model.Pos, want.Model.Dim)
	}
	_, err = parseCheck("bad.lora", []byte("\uFEFFmodel m {\n  dimm 4\n}\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.lora:2:3: unknown model field") {
		t.Errorf("an error after a byte order mark: %v; want it at 2:3", err)
	}
	// A mark anywhere else is still a stray character.
	if _, err := parseCheck("mid.lora", append(append([]byte{}, src...), "\uFEFF"...)); err == nil {
		t.Error("a byte order mark after the start was accepted")
	}
}

// TestHeadsSuggestionFits: every heads count the checker suggests, for a
// bad heads line or one that does not divide dim, divides dim; for llama it
// also leaves an even head size and is a multiple of kv_heads. The
// suggested dims are multiples of heads (of 2·heads for llama).
func TestHeadsSuggestionFits(t *testing.T) {
	headsRe := regexp.MustCompile(`heads (\d+)`)
	dimRe := regexp.MustCompile(`dim (\d+)`)
	cases := 0
	for _, arch := range []string{"gpt2", "llama"} {
		for _, dim := range []int{12, 96, 100, 128, 768, 1000} {
			for _, heads := range []string{"0", "x", "3", "5", "7", "12", "24"} {
				for _, kv := range []int{0, 2, 4} {
					if arch == "gpt2" && kv > 0 {
						continue
					}
					src := fmt.Sprintf("model m {\n  arch %s\n  vocab 64\n  context 16\n  dim %d\n  layers 1\n  heads %s\n  ffn 64\n", arch, dim, heads)
					if kv > 0 {
						src += fmt.Sprintf("  kv_heads %d\n", kv)
					}
					src += "}\n"
					_, err := parseCheck("h.lora", []byte(src))
					if err == nil {
						continue
					}
					// Whether any heads count fits, by brute force.
					n, _ := strconv.Atoi(heads)
					kvLine := kv
					fits := false
					for h := 1; h <= dim; h++ {
						fits = fits || dim%h == 0 && (arch == "gpt2" || (dim/h)%2 == 0 && (kvLine == 0 || h%kvLine == 0))
					}
					if !fits && n > 0 && strings.Contains(err.Error(), "heads that divides dim") {
						t.Errorf("%s dim %d heads %s kv_heads %d: no heads count fits, yet one is suggested\n%v", arch, dim, heads, kv, err)
					}
					for _, line := range strings.Split(err.Error(), "\n") {
						if strings.Contains(line, "kv_heads") && !strings.Contains(line, "heads that divides dim") {
							continue // suggests a kv_heads for the heads given
						}
						_, hint, _ := strings.Cut(line, "; ")
						for _, m := range headsRe.FindAllStringSubmatch(hint, -1) {
							cases++
							h, _ := strconv.Atoi(m[1])
							bad := dim%h != 0
							if arch == "llama" && fits {
								bad = bad || (dim/h)%2 != 0 || kv > 0 && h%kv != 0
							}
							if bad {
								t.Errorf("%s dim %d heads %s kv_heads %d: suggests heads %d\n%s", arch, dim, heads, kv, h, line)
							}
						}
						if n == 0 {
							continue
						}
						for _, m := range dimRe.FindAllStringSubmatch(hint, -1) {
							d, _ := strconv.Atoi(m[1])
							if d%n != 0 || arch == "llama" && (d/n)%2 != 0 {
								t.Errorf("%s heads %d: suggests dim %d\n%s", arch, n, d, line)
							}
						}
					}
				}
			}
		}
	}
	if cases < 50 {
		t.Errorf("only %d heads suggestions seen", cases)
	}
}
