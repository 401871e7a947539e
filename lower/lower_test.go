package lower_test

import (
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/dsl"
	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/internal/hfimport"
	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/passes"
)

// configs are every model the repository compiles: the examples, the
// generated test packages' sources and the conformance fixtures.
func configs(t *testing.T) map[string]*dsl.Config {
	t.Helper()
	paths, err := filepath.Glob("../examples/*/*.lora")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("../internal/gen/*.lora")
	cfgs := map[string]*dsl.Config{}
	for _, p := range append(paths, more...) {
		cfg, err := compile.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		cfgs[p] = cfg
	}
	for _, arch := range []string{"gpt2", "llama"} {
		dir := filepath.Join("../conformance/testdata", arch)
		src, err := hfimport.Source(dir, filepath.Join(dir, "adapter"))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := compile.LoadSource(arch+".lora", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		cfgs[dir] = cfg
	}
	if len(cfgs) < 6 {
		t.Fatalf("found only %d models", len(cfgs))
	}
	return cfgs
}

// TestCompiledGraphsLower: every node of every graph the compiler produces
// (the generated packages' graphs and lorac check's merged inference graph)
// lowers to kernel calls.
func TestCompiledGraphsLower(t *testing.T) {
	seen := map[graph.Op]bool{}
	for name, cfg := range configs(t) {
		s, err := compile.Spec(cfg, "model", name)
		if err != nil {
			t.Fatal(err)
		}
		merged, err := compile.Build(cfg, graph.Infer, passes.Config{})
		if err != nil {
			t.Fatal(err)
		}
		gs := []*graph.Graph{s.TrainLoRA, s.TrainFull, s.EvalLoRA, s.EvalBase, s.ForwardLoRA, s.ForwardBase, s.DecodeLoRA, s.DecodeBase, merged}
		for _, g := range gs {
			if g == nil {
				continue
			}
			for _, n := range g.Nodes {
				seen[n.Op] = true
				calls, err := lower.Lower(n)
				if err != nil {
					t.Fatalf("%s: %s/%s: %v", name, g.Name, g.Mode, err)
				}
				if len(calls) == 0 {
					t.Errorf("%s: %s lowers to no call", name, n.Op)
				}
			}
		}
	}
	if !seen[graph.OpLoRAMerge] || !seen[graph.OpAttentionDecode] || !seen[graph.OpLoRALinearGrad] {
		t.Errorf("the compiled graphs miss ops they should cover: %v", seen)
	}
}

// TestEveryOpHasARow: the table covers the op table, so a new op fails here
// before it reaches a backend.
func TestEveryOpHasARow(t *testing.T) {
	for _, op := range graph.Ops() {
		if _, ok := lower.Lookup(op); !ok {
			t.Errorf("op %s has no row", op)
		}
	}
}

// TestKernelNames: a kernel is named after its op (the package's naming
// rule), except the copies split, concat, last_token and lora_merge lower
// to.
func TestKernelNames(t *testing.T) {
	for _, r := range lower.Rows() {
		want := strings.ReplaceAll(r.Op.String(), "_", "")
		switch r.Op {
		case graph.OpSplit, graph.OpConcat, graph.OpLoRAMerge, graph.OpLastToken:
			if r.Calls[0].Kernel != "CopyCols" {
				t.Errorf("%s starts with %s, want CopyCols", r.Op, r.Calls[0].Kernel)
			}
			continue
		}
		if len(r.Calls) != 1 || !strings.EqualFold(r.Calls[0].Kernel, want) {
			t.Errorf("op %s lowers to %v, want one kernel named like the op", r.Op, r.Calls)
		}
	}
}

// TestFastKernelsExist: every kernel the table names is a function of
// runtime/kern whose parameters match the table's arguments in number and
// kind (read from the source, so no list of kernels is kept by hand).
func TestFastKernelsExist(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "../runtime/kern", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string][]string{} // name → parameter types
	for _, p := range pkgs {
		for name, f := range p.Files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || !fd.Name.IsExported() {
					continue
				}
				var types []string
				for _, field := range fd.Type.Params.List {
					typ := typeString(fset, field.Type)
					for range max(1, len(field.Names)) {
						types = append(types, typ)
					}
				}
				funcs[fd.Name.Name] = types
			}
		}
	}
	kinds := map[lower.Kind][]string{
		lower.Slice: {"[]float32", "[]int32"}, lower.Mask: {"[]float32"}, lower.Scalar: {"float32"},
		lower.Int: {"int"}, lower.Float: {"float32"}, lower.Bool: {"bool"}, lower.RowSlices: {"[][]float32"},
		lower.BranchRows: {"[]int32"}, lower.BranchWeights: {"[]float32"},
	}
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			types, ok := funcs[c.Kernel]
			if !ok {
				t.Errorf("op %s: runtime/kern has no function %s", r.Op, c.Kernel)
				continue
			}
			if len(types) != len(c.Params) {
				t.Errorf("op %s: kern.%s takes %d arguments, the table gives %d", r.Op, c.Kernel, len(types), len(c.Params))
				continue
			}
			for i, p := range c.Params {
				if !slices.Contains(kinds[p.Kind], types[i]) {
					t.Errorf("op %s: kern.%s argument %d (%s) is %s, not a %v", r.Op, c.Kernel, i, p.Name, types[i], kinds[p.Kind])
				}
			}
		}
	}
}

func typeString(fset *token.FileSet, e ast.Expr) string {
	var b strings.Builder
	if err := format.Node(&b, fset, e); err != nil {
		return "?"
	}
	return b.String()
}
