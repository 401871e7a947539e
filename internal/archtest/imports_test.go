package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "lorac.dev/lorac"

// allowed maps a package (or a package prefix ending in "/") to the module
// packages and third-party modules it may depend on. Standard library
// imports are always allowed.
var allowed = map[string][]string{
	"graph":  {},
	"dsl":    {"graph", "github.com/alecthomas/participle/v2"},
	"passes": {"graph"},
	// The op → kernel table both codegen and the interpreter read.
	"lower":     {"graph"},
	"backends/": {"graph", "passes", "backends/", "github.com/mmcloughlin/avo", "golang.org/x/"},
	"codegen":   {"graph", "lower", "backends/", "github.com/dave/jennifer"},
	// The runtime is compiled into every model program, offline, from the
	// source the lorac command embeds: standard library only, and imports
	// point down (driver → engine → kern, format, tok).
	"runtime/":       {"runtime/"},
	"runtime/kern":   {},
	"runtime/format": {},
	"runtime/tok":    {},
	// Chat templates: a Jinja subset, standard library only.
	"runtime/tmpl":   {},
	"runtime/engine": {"runtime/kern", "runtime/format", "runtime/tok"},
	"runtime/driver": {"runtime/engine", "runtime/kern", "runtime/format", "runtime/tok", "runtime/tmpl"},
	// The CUDA device is the one runtime package with a third-party
	// dependency: purego, to call the driver without cgo. No package a
	// model program is built from imports it (the entries above and the
	// generated packages' below leave it out), and the lorac command does
	// not write it into model builds, which stay offline and std-only.
	"runtime/cuda": {"github.com/ebitengine/purego", "runtime/kern"},
	"examples/":    {"runtime/", "examples/"},
	"internal/":    {"*"},
	// Generated packages import only the runtime, like a user's would.
	"internal/gen/": {"runtime/engine", "runtime/kern", "runtime/format", "runtime/tok"},
	// but for the cuda.go of a package with a target cuda block, which
	// imports package device: the compiler and the CUDA device, for a
	// program's own GPU path (never part of a model program).
	"internal/gen/gpt2cuda": deviceDeps,
	// The device path of a user's program: the compiler in-process
	// (internal/compile, internal/devmodel) and runtime/cuda; no CLI
	// and no server.
	"device":      deviceDeps,
	"conformance": {},
	"cmd/lorac":   {"*"},
	// The server of lorac serve: the runtime and the Prometheus client
	// library with what it needs; lorac embeds it for that model program.
	"serve": {"runtime/", "github.com/prometheus/", "github.com/beorn7/perks", "github.com/cespare/xxhash/v2",
		"github.com/munnerz/goautoneg", "google.golang.org/protobuf", "golang.org/x/sys"},
}

// deviceDeps is what package device, and a generated package that imports
// it, may depend on.
var deviceDeps = []string{"device", "runtime/", "internal/compile", "internal/devmodel", "internal/devexec", "internal/interp",
	"codegen", "dsl", "graph", "passes", "lower", "github.com/dave/jennifer", "github.com/alecthomas/participle/v2",
	"github.com/ebitengine/purego"}

type pkg struct {
	ImportPath string
	Standard   bool
	Deps       []string
	Module     *struct{ Path string }
}

// rule returns the entry for rel: its own, or the longest prefix entry.
func rule(rel string) ([]string, bool) {
	if r, ok := allowed[rel]; ok {
		return r, true
	}
	best := ""
	for k := range allowed {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(rel, k) && len(k) > len(best) {
			best = k
		}
	}
	r, ok := allowed[best]
	return r, ok && best != ""
}

func permitted(dep string, rules []string) bool {
	for _, r := range rules {
		if r == "*" {
			return true
		}
		full := r
		if !strings.Contains(r, ".") {
			full = module + "/" + r
		}
		if dep == full || (strings.HasSuffix(full, "/") && strings.HasPrefix(dep, full)) || strings.HasPrefix(dep, full+"/") {
			return true
		}
	}
	return false
}

// TestImportRule enforces the import rule of docs/design.md over go list -deps: each
// package's whole dependency closure (not just direct imports) must stay
// inside what its layer may use.
func TestImportRule(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	std := map[string]bool{}
	var ours []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard {
			std[p.ImportPath] = true
		}
		if strings.HasPrefix(p.ImportPath, module+"/") {
			ours = append(ours, p)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(ours) < 5 {
		t.Fatalf("go list found only %d packages of the module", len(ours))
	}
	for _, p := range ours {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		rules, ok := rule(rel)
		if !ok {
			t.Errorf("package %s has no entry in the import rule; add one", rel)
			continue
		}
		for _, d := range p.Deps {
			if std[d] || d == p.ImportPath {
				continue
			}
			if !permitted(d, rules) {
				t.Errorf("%s depends on %s, which the import rule forbids", rel, d)
			}
		}
	}
}
