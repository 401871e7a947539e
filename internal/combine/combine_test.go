package combine

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lorac.dev/lorac/runtime/format"
)

var fixtures = filepath.Join("..", "..", "conformance", "testdata", "combine")

type combination struct {
	Adapters        []string
	Weights         []float64
	CombinationType string `json:"combination_type"`
	SVDRank         int    `json:"svd_rank"`
}

func readFixture(t *testing.T, name string) *format.PEFTAdapter {
	t.Helper()
	a, err := format.ReadPEFT(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// product is B·A (out × in) of one module, in float64.
func product(m *format.LoRAWeights) []float64 {
	p := make([]float64, m.Out*m.In)
	for o := range m.Out {
		for j := range m.Rank {
			b := float64(m.B[o*m.Rank+j])
			for i := range m.In {
				p[o*m.In+i] += b * float64(m.A[j*m.In+i])
			}
		}
	}
	return p
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestAgainstPEFT: linear and cat give PEFT's matrices; svd gives PEFT's
// product B·A (singular vectors are unique only up to sign) and the same
// singular values; the configs match.
func TestAgainstPEFT(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct{ Combinations map[string]combination }
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Combinations) < 4 {
		t.Fatalf("expected.json has %d combinations", len(exp.Combinations))
	}
	for name, c := range exp.Combinations {
		t.Run(name, func(t *testing.T) {
			var in []Input
			for i, a := range c.Adapters {
				in = append(in, Input{Name: a, Adapter: readFixture(t, a), Weight: c.Weights[i]})
			}
			got, err := Combine(in, c.CombinationType, c.SVDRank)
			if err != nil {
				t.Fatal(err)
			}
			want := readFixture(t, name)
			if got.Config.R != want.Config.R || got.Config.LoraAlpha != want.Config.LoraAlpha || got.Config.UseRSLoRA != want.Config.UseRSLoRA {
				t.Errorf("config r %d alpha %g rslora %v; PEFT: r %d alpha %g rslora %v", got.Config.R, got.Config.LoraAlpha, got.Config.UseRSLoRA, want.Config.R, want.Config.LoraAlpha, want.Config.UseRSLoRA)
			}
			wt := slices.Sorted(slices.Values(want.Config.TargetModules))
			if !slices.Equal(got.Config.TargetModules, wt) {
				t.Errorf("target_modules %v; PEFT %v", got.Config.TargetModules, wt)
			}
			if len(got.Modules) != len(want.Modules) {
				t.Fatalf("%d modules; PEFT %d", len(got.Modules), len(want.Modules))
			}
			for i := range want.Modules {
				g, w := &got.Modules[i], &want.Modules[i]
				if g.Module != w.Module || g.Rank != w.Rank || g.In != w.In || g.Out != w.Out {
					t.Fatalf("module %s rank %d (%d, %d); PEFT %s rank %d (%d, %d)", g.Module, g.Rank, g.In, g.Out, w.Module, w.Rank, w.In, w.Out)
				}
				pg, pw := product(g), product(w)
				scale := 0.0
				for _, v := range pw {
					scale = max(scale, math.Abs(v))
				}
				if scale == 0 {
					t.Fatalf("%s: PEFT's product is zero; the fixture shows nothing", w.Module)
				}
				if d := maxDiff(pg, pw); d > 1e-5*scale {
					t.Errorf("%s: B·A differs from PEFT's by %g (largest entry %g)", w.Module, d, scale)
				}
				if c.CombinationType == "svd" {
					continue
				}
				for _, x := range []struct {
					name string
					g, w []float32
				}{{"lora_A", g.A, w.A}, {"lora_B", g.B, w.B}} {
					for k := range x.w {
						if math.Abs(float64(x.g[k]-x.w[k])) > 1e-5*(1+math.Abs(float64(x.w[k]))) {
							t.Errorf("%s.%s[%d] = %g; PEFT %g", w.Module, x.name, k, x.g[k], x.w[k])
							break
						}
					}
				}
			}
		})
	}
}

// TestSVDIsExactAtFullRank: at the sum of the ranks, svd reproduces the
// weighted sum of the products (what cat gives exactly); at a lower rank
// its A has orthonormal rows.
func TestSVDIsExactAtFullRank(t *testing.T) {
	in := []Input{{"ad1", readFixture(t, "ad1"), 0.5}, {"ad3", readFixture(t, "ad3"), -1.25}}
	catted, err := Combine(in, "cat", 0)
	if err != nil {
		t.Fatal(err)
	}
	full, err := Combine(in, "svd", 6)
	if err != nil {
		t.Fatal(err)
	}
	for i := range catted.Modules {
		if d := maxDiff(product(&full.Modules[i]), product(&catted.Modules[i])); d > 1e-5 {
			t.Errorf("%s: svd at full rank differs from cat by %g", catted.Modules[i].Module, d)
		}
	}
	low, err := Combine(in, "svd", 2)
	if err != nil {
		t.Fatal(err)
	}
	m := low.Modules[0]
	for j := range m.Rank {
		for k := range m.Rank {
			var d float64
			for i := range m.In {
				d += float64(m.A[j*m.In+i]) * float64(m.A[k*m.In+i])
			}
			want := 0.0
			if j == k {
				want = 1
			}
			if math.Abs(d-want) > 1e-5 {
				t.Errorf("A rows %d·%d = %g, want %g", j, k, d, want)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	ad1, ad3 := readFixture(t, "ad1"), readFixture(t, "ad3")
	for _, c := range []struct {
		in     []Input
		method string
		rank   int
		want   string
	}{
		{nil, "cat", 0, "no adapters"},
		{[]Input{{"ad1", ad1, 1}, {"ad3", ad3, 1}}, "linear", 0, "linear needs adapters of one rank: ad1 has 4, ad3 has 2"},
		{[]Input{{"ad1", ad1, 1}, {"ad3", ad3, 1}}, "ties", 0, `unknown method "ties"`},
		{[]Input{{"ad1", ad1, 1}, {"ad3", ad3, 1}}, "cat", 3, "rank applies to the svd method only"},
		{[]Input{{"ad1", ad1, 1}, {"ad3", ad3, 1}}, "svd", 17, "svd rank 17 is more than"},
	} {
		_, err := Combine(c.in, c.method, c.rank)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.method, err, c.want)
		}
	}
}
