package ptx

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ptxasPath finds ptxas: $LORAC_PTXAS, else PATH. CI installs it (the
// nvidia-cuda-nvcc wheel) and sets LORAC_PTXAS.
func ptxasPath() (string, error) {
	if p := os.Getenv("LORAC_PTXAS"); p != "" {
		return p, nil
	}
	return exec.LookPath("ptxas")
}

// kernelInfo is what ptxas -v reports for one entry.
type kernelInfo struct {
	Registers, SpillStores, SpillLoads, Smem int
}

var (
	reEntry = regexp.MustCompile(`Compiling entry function '(\w+)' for '(\w+)'`)
	reSpill = regexp.MustCompile(`(\d+) bytes spill stores, (\d+) bytes spill loads`)
	reRegs  = regexp.MustCompile(`Used (\d+) registers`)
	reSmem  = regexp.MustCompile(`(\d+) bytes smem`)
)

// parsePtxasInfo reads ptxas -v output into per-entry numbers.
func parsePtxasInfo(out string) (map[string]kernelInfo, error) {
	infos := map[string]kernelInfo{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if m := reEntry.FindStringSubmatch(line); m != nil {
			cur = m[1]
			infos[cur] = kernelInfo{}
			continue
		}
		if cur == "" {
			continue
		}
		ki := infos[cur]
		if m := reSpill.FindStringSubmatch(line); m != nil {
			ki.SpillStores, _ = strconv.Atoi(m[1])
			ki.SpillLoads, _ = strconv.Atoi(m[2])
		}
		if m := reRegs.FindStringSubmatch(line); m != nil {
			ki.Registers, _ = strconv.Atoi(m[1])
			if m := reSmem.FindStringSubmatch(line); m != nil {
				ki.Smem, _ = strconv.Atoi(m[1])
			}
		}
		infos[cur] = ki
	}
	if len(infos) == 0 {
		return nil, fmt.Errorf("no entry functions in ptxas output:\n%s", out)
	}
	return infos, nil
}

func TestParsePtxasInfo(t *testing.T) {
	out := `ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'lorac_gemv' for 'sm_80'
ptxas info    : Function properties for lorac_gemv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 14 registers, used 0 barriers, 392 bytes cmem[0]
ptxas info    : Compiling entry function 'lorac_softmax' for 'sm_80'
ptxas info    : Function properties for lorac_softmax
    8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 32 bytes smem, 376 bytes cmem[0]
`
	got, err := parsePtxasInfo(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kernelInfo{"lorac_gemv": {14, 0, 0, 0}, "lorac_softmax": {255, 12, 16, 32}}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
	if _, err := parsePtxasInfo("nothing"); err == nil {
		t.Error("empty output parsed")
	}
}

// TestPTXAssembles runs ptxas -v on every committed module, for its own
// arch and (the sm_80 module, which the driver may JIT there) for each
// later one: any warning fails, and so does a spill, since the table in
// docs/perf.md promises none. It skips, saying so, without ptxas.
func TestPTXAssembles(t *testing.T) {
	ptxas, err := ptxasPath()
	if err == nil {
		_, err = os.Stat(ptxas)
		if err != nil && os.Getenv("LORAC_PTXAS") != "" {
			t.Fatalf("LORAC_PTXAS is set but unusable: %v", err)
		}
	}
	if err != nil {
		t.Skipf("ptxas not found (set LORAC_PTXAS or put it on PATH; CI installs the nvidia-cuda-nvcc wheel): %v", err)
	}
	var table strings.Builder
	table.WriteString("| kernel | arch | registers | spill stores/loads (bytes) | shared (bytes) |\n|---|---|---|---|---|\n")
	for i, mod := range Archs {
		file := filepath.Join(moduleDir, mod.FileName())
		for _, target := range Archs[i:] {
			cmd := exec.Command(ptxas, "-arch="+target.Name, "-v", "-o", filepath.Join(t.TempDir(), "out.cubin"), file)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ptxas %s for %s: %v\n%s", mod.FileName(), target.Name, err, out)
			}
			if strings.Contains(strings.ToLower(string(out)), "warning") {
				t.Errorf("ptxas %s for %s warns:\n%s", mod.FileName(), target.Name, out)
			}
			infos, err := parsePtxasInfo(string(out))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range kernels {
				ki, ok := infos[k.Entry]
				if !ok {
					t.Errorf("ptxas did not compile %s", k.Entry)
					continue
				}
				if ki.SpillStores+ki.SpillLoads > 0 {
					t.Errorf("%s on %s spills: %+v", k.Entry, target.Name, ki)
				}
				if mod == target {
					fmt.Fprintf(&table, "| %s | %s | %d | %d/%d | %d |\n", k.Entry, target.Name, ki.Registers, ki.SpillStores, ki.SpillLoads, ki.Smem)
				}
			}
		}
	}
	t.Logf("ptxas %s\n%s", ptxas, table.String())
}
