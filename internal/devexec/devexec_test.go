package devexec

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"lorac.dev/lorac/graph"
	"lorac.dev/lorac/internal/compile"
	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/runtime/cuda"
)

// TestLoracMethods: every kernel of the lowering table (Fill aside, which
// Execute sizes itself) is a cuda.Lorac method taking the table's
// arguments in kind and number — device pointers for slices and masks —
// and returning an error, or the kernel's value and an error.
func TestLoracMethods(t *testing.T) {
	lt := reflect.TypeFor[*cuda.Lorac]()
	errType := reflect.TypeFor[error]()
	ok := map[lower.Kind]func(reflect.Type) bool{
		lower.Slice:  func(p reflect.Type) bool { return p == ptrType },
		lower.Mask:   func(p reflect.Type) bool { return p == ptrType },
		lower.Scalar: func(p reflect.Type) bool { return p == reflect.TypeFor[float32]() },
		lower.Int:    func(p reflect.Type) bool { return p == reflect.TypeFor[int]() },
		lower.Float: func(p reflect.Type) bool {
			return p == reflect.TypeFor[float32]() || p == reflect.TypeFor[float64]()
		},
		lower.Bool:          func(p reflect.Type) bool { return p == reflect.TypeFor[bool]() },
		lower.RowSlices:     func(p reflect.Type) bool { return p == reflect.TypeFor[[]cuda.Ptr]() },
		lower.BranchRows:    func(p reflect.Type) bool { return p == reflect.TypeFor[[]int32]() },
		lower.BranchWeights: func(p reflect.Type) bool { return p == reflect.TypeFor[[]float32]() },
	}
	seen, notOn := 0, 0
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			if c.Kernel == "Fill" {
				continue
			}
			if why, ok := cuda.NotOnDevice[c.Kernel]; ok {
				// Listed as not on the device: it must not be a method
				// yet (the list shrinks as kernels land).
				if _, found := lt.MethodByName(c.Kernel); found {
					t.Errorf("%s is listed in cuda.NotOnDevice (%s) but cuda.Lorac has the method", c.Kernel, why)
				}
				notOn++
				continue
			}
			m, found := lt.MethodByName(c.Kernel)
			if !found {
				t.Errorf("op %s: cuda.Lorac has no method %s", r.Op, c.Kernel)
				continue
			}
			seen++
			typ := m.Type // the receiver is argument 0
			if typ.NumIn()-1 != len(c.Params) {
				t.Errorf("cuda.Lorac.%s takes %d arguments, the table gives %d", c.Kernel, typ.NumIn()-1, len(c.Params))
				continue
			}
			for i, p := range c.Params {
				if !ok[p.Kind](typ.In(i + 1)) {
					t.Errorf("cuda.Lorac.%s argument %d (%s) is %s", c.Kernel, i, p.Name, typ.In(i+1))
				}
			}
			wantOut := 1
			if c.Result >= 0 {
				wantOut = 2
			}
			if typ.NumOut() != wantOut || typ.Out(typ.NumOut()-1) != errType {
				t.Errorf("cuda.Lorac.%s returns %d values, want %d ending in error", c.Kernel, typ.NumOut(), wantOut)
			}
		}
	}
	if notOn != len(cuda.NotOnDevice) {
		t.Errorf("cuda.NotOnDevice lists %d kernels, %d of them in the lowering table", len(cuda.NotOnDevice), notOn)
	}
	if seen < 30 {
		t.Errorf("only %d kernels checked", seen)
	}
}

// TestSupported: the graphs of every model-family feature, the rows graph
// of lorac serve included, pass Supported; a graph with a kernel listed in
// cuda.NotOnDevice is refused (and so by Prepare, before any upload), with
// the reason.
func TestSupported(t *testing.T) {
	base := "model m { arch llama; vocab 64; context 16; dim 32; layers 1; heads 4; kv_heads 2; ffn 48; %s }\nlora { rank 2; targets q, v }\n"
	for _, c := range []struct{ extra, want string }{
		{"", ""},
		{"sliding_window 4", ""},
		{"attn_softcap 50", ""},
		{"attn_scalar 20", ""},
		{"norm_offset 1", ""},
		{"rope_scaling linear; rope_factor 2", ""},
		{"logit_softcap 30", ""}, // the softcap ops
		{"embed_scale true", ""}, // the scale op
		{"qk_norm true", ""},     // per-head norm: rows of one head each
		{"#notyet", "the embedding is not on the CUDA device yet"},
	} {
		extra := c.extra
		if extra == "#notyet" {
			extra = ""
			cuda.NotOnDevice["Embedding"] = "the embedding is not on the CUDA device yet"
		}
		src := fmt.Sprintf(base, extra)
		cfg, err := compile.LoadSource("m.lora", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", c.extra, err)
		}
		spec, err := compile.Spec(cfg, "m", "m.lora")
		if err != nil {
			t.Fatalf("%s: %v", c.extra, err)
		}
		for _, g := range []*graph.Graph{spec.TrainLoRA, spec.ForwardLoRA, spec.DecodeLoRA, spec.DecodeRows} {
			err := Supported(g)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%q: %v", c.extra, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%q: Supported = %v, want an error containing %q", c.extra, err, c.want)
			}
		}
		delete(cuda.NotOnDevice, "Embedding")
		// The prefill graph's decode attention over a chunk is refused by
		// name, as not on the device yet.
		var u *cuda.Unsupported
		if err := Supported(spec.PrefillRows); !errors.As(err, &u) || u.Kernel != "AttentionDecode" {
			t.Errorf("%q: Supported(prefill graph) = %v, want AttentionDecode refused", c.extra, err)
		}
	}
}

// TestPaddingIDsRefused: of the id arguments the lowering table lets be -1,
// the device accepts -1 only in the loss targets; the padding positions of
// a prefill chunk (embedding, RoPE, decode attention) are refused before
// any launch.
func TestPaddingIDsRefused(t *testing.T) {
	pad := lower.Arg{Kind: lower.Slice, Ignorable: true}
	for _, k := range []string{"Embedding", "RoPE", "AttentionDecode", "CrossEntropy", "CrossEntropyGrad"} {
		if _, ok := reflect.TypeFor[*cuda.Lorac]().MethodByName(k); !ok {
			t.Fatalf("cuda.Lorac has no %s", k)
		}
		want := strings.HasPrefix(k, "CrossEntropy")
		if got := ignorable(k, pad); got != want {
			t.Errorf("%s: -1 accepted %v, want %v", k, got, want)
		}
		err := checkIDs([]int32{3, -1}, 8, ignorable(k, pad), "ids")
		if want != (err == nil) {
			t.Errorf("%s: checkIDs of a -1 = %v", k, err)
		}
	}
	if ignorable("CrossEntropy", lower.Arg{Kind: lower.Slice}) {
		t.Error("-1 accepted where the lowering table does not allow it")
	}
}
