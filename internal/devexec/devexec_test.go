package devexec

import (
	"reflect"
	"testing"

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
		lower.Bool: func(p reflect.Type) bool { return p == reflect.TypeFor[bool]() },
	}
	seen := 0
	for _, r := range lower.Rows() {
		for _, c := range r.Calls {
			if c.Kernel == "Fill" {
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
	if seen < 30 {
		t.Errorf("only %d kernels checked", seen)
	}
}
