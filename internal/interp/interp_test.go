package interp

import (
	"reflect"
	"testing"

	"lorac.dev/lorac/lower"
	"lorac.dev/lorac/runtime/kern"
)

// TestReferenceKernels: every kernel the lowering table names has a
// reference kernel whose parameters match the table's arguments in number
// and kind, in both precisions.
func TestReferenceKernels(t *testing.T) {
	check[float32](t)
	check[float64](t)
}

func check[F kern.Float](t *testing.T) {
	t.Helper()
	refs := refs[F]()
	ft := reflect.TypeFor[F]()
	f64 := reflect.TypeFor[float64]()
	ok := map[lower.Kind]func(reflect.Type) bool{
		lower.Slice: func(p reflect.Type) bool {
			return p == reflect.TypeFor[[]F]() || p == reflect.TypeFor[[]int32]()
		},
		lower.Mask:          func(p reflect.Type) bool { return p == reflect.TypeFor[[]F]() },
		lower.Scalar:        func(p reflect.Type) bool { return p == ft },
		lower.Int:           func(p reflect.Type) bool { return p == reflect.TypeFor[int]() },
		lower.Float:         func(p reflect.Type) bool { return p == ft || p == f64 },
		lower.Bool:          func(p reflect.Type) bool { return p == reflect.TypeFor[bool]() },
		lower.RowSlices:     func(p reflect.Type) bool { return p == reflect.TypeFor[[][]F]() },
		lower.BranchRows:    func(p reflect.Type) bool { return p == reflect.TypeFor[[]int32]() },
		lower.BranchWeights: func(p reflect.Type) bool { return p == reflect.TypeFor[[]F]() },
	}
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			fn, found := refs[c.Kernel]
			if !found {
				t.Errorf("%s: op %s: no reference kernel for %s", ft, r.Op, c.Kernel)
				continue
			}
			typ := fn.Type()
			if typ.NumIn() != len(c.Params) {
				t.Errorf("%s: reference %s takes %d arguments, the table gives %d", ft, c.Kernel, typ.NumIn(), len(c.Params))
				continue
			}
			for i, p := range c.Params {
				if !ok[p.Kind](typ.In(i)) {
					t.Errorf("%s: reference %s argument %d (%s) is %s", ft, c.Kernel, i, p.Name, typ.In(i))
				}
			}
			if (c.Result >= 0) != (typ.NumOut() == 1) {
				t.Errorf("%s: reference %s returns %d values; the table's result index is %d", ft, c.Kernel, typ.NumOut(), c.Result)
			}
		}
	}
}

// TestRoPEScalingCodes: the scaling codes the lowering table passes are the
// kernels' constants.
func TestRoPEScalingCodes(t *testing.T) {
	want := map[string]int{"": kern.RoPEDefault, "linear": kern.RoPELinear, "llama3": kern.RoPELlama3}
	if !reflect.DeepEqual(lower.RoPEScalingCode, want) {
		t.Errorf("lower.RoPEScalingCode = %v, kern's constants are %v", lower.RoPEScalingCode, want)
	}
}
