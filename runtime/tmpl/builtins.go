package tmpl

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// raised is the error raise_exception returns; the renderer gives it its
// position and marks the Error Raised.
type raised struct{ msg string }

func (e *raised) Error() string { return e.msg }

// required marks a parameter without a default in bind.
var required = &struct{ x int }{}

// bind matches positional and keyword arguments to a function's
// parameters, Python style.
func bind(fname string, args []any, kwargs *Dict, names []string, defs ...any) ([]any, error) {
	if len(args) > len(names) {
		return nil, fmt.Errorf("%s() takes at most %d arguments (%d given)", fname, len(names), len(args))
	}
	out := make([]any, len(names))
	set := make([]bool, len(names))
	for i, a := range args {
		out[i], set[i] = a, true
	}
	if kwargs != nil {
		for _, k := range kwargs.keys {
			name, _ := k.(string)
			found := false
			for i, n := range names {
				if n == name {
					if set[i] {
						return nil, fmt.Errorf("%s() got multiple values for argument '%s'", fname, name)
					}
					out[i], set[i], found = kwargs.m[k], true, true
				}
			}
			if !found {
				return nil, fmt.Errorf("%s() got an unexpected keyword argument '%s'", fname, name)
			}
		}
	}
	for i := range names {
		if !set[i] {
			if i >= len(defs) || defs[i] == required {
				return nil, fmt.Errorf("%s() missing required argument '%s'", fname, names[i])
			}
			out[i] = defs[i]
		}
	}
	return out, nil
}

func wantString(fname string, v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case *undefined:
		return "", errors.New(s.err())
	}
	return "", fmt.Errorf("%s: expected a string, got %s", fname, typeName(v))
}

func wantInt(fname string, v any) (int64, error) {
	i, _, fl, ok := num(v)
	if !ok || fl {
		if u, isU := v.(*undefined); isU {
			return 0, errors.New(u.err())
		}
		return 0, fmt.Errorf("%s: expected an integer, got %s", fname, typeName(v))
	}
	return i, nil
}

type filterFunc func(r *renderer, v any, args []any, kwargs *Dict) (any, error)

var filters map[string]filterFunc

var tests map[string]func(v any, args []any) (bool, error)

var globals map[string]any

func init() {
	filters = map[string]filterFunc{
		"trim":       fTrim,
		"length":     fLength,
		"count":      fLength,
		"tojson":     fToJSON,
		"upper":      strFilter(strings.ToUpper),
		"lower":      strFilter(strings.ToLower),
		"title":      strFilter(jinjaTitle),
		"capitalize": strFilter(capitalize),
		"default":    fDefault,
		"d":          fDefault,
		"first":      fFirst,
		"last":       fLast,
		"join":       fJoin,
		"replace":    fReplace,
		"list":       fList,
		"items":      fItems,
		"selectattr": selectFilter(true, true),
		"rejectattr": selectFilter(true, false),
		"select":     selectFilter(false, true),
		"reject":     selectFilter(false, false),
		"map":        fMap,
		"string":     func(_ *renderer, v any, _ []any, _ *Dict) (any, error) { return str(v), nil },
		"safe":       func(_ *renderer, v any, _ []any, _ *Dict) (any, error) { return str(v), nil },
		"int":        fInt,
		"float":      fFloat,
		"abs":        fAbs,
		"round":      fRound,
		"reverse":    fReverse,
		"sort":       fSort,
		"sum":        fSum,
		"indent":     fIndent,
		"dictsort":   fDictsort,
		"format":     fFormat,
		"unique":     fUnique,
		"min":        minMax(-1),
		"max":        minMax(1),
	}
	tests = map[string]func(v any, args []any) (bool, error){
		"defined":   func(v any, _ []any) (bool, error) { _, u := v.(*undefined); return !u, nil },
		"undefined": func(v any, _ []any) (bool, error) { _, u := v.(*undefined); return u, nil },
		"none":      func(v any, _ []any) (bool, error) { return v == nil, nil },
		"string":    func(v any, _ []any) (bool, error) { _, ok := v.(string); return ok, nil },
		"mapping":   func(v any, _ []any) (bool, error) { _, ok := v.(*Dict); return ok, nil },
		"iterable": func(v any, _ []any) (bool, error) {
			switch v.(type) {
			case string, []any, tuple, *Dict, *undefined, *view, *generator:
				return true, nil
			}
			return false, nil
		},
		"sequence": func(v any, _ []any) (bool, error) {
			switch v.(type) {
			case string, []any, tuple, *Dict, *undefined:
				return true, nil
			}
			return false, nil
		},
		"number":  func(v any, _ []any) (bool, error) { return isNumber(v), nil },
		"integer": func(v any, _ []any) (bool, error) { _, ok := v.(int64); return ok, nil },
		"float":   func(v any, _ []any) (bool, error) { _, ok := v.(float64); return ok, nil },
		"boolean": func(v any, _ []any) (bool, error) { _, ok := v.(bool); return ok, nil },
		"true":    func(v any, _ []any) (bool, error) { b, ok := v.(bool); return ok && b, nil },
		"false":   func(v any, _ []any) (bool, error) { b, ok := v.(bool); return ok && !b, nil },
		"callable": func(v any, _ []any) (bool, error) {
			_, ok := v.(*function)
			return ok, nil
		},
		"odd":         parityTest(1),
		"even":        parityTest(0),
		"divisibleby": tDivisible,
		"eq":          cmpTest("=="),
		"equalto":     cmpTest("=="),
		"==":          cmpTest("=="),
		"ne":          cmpTest("!="),
		"!=":          cmpTest("!="),
		"lt":          cmpTest("<"),
		"lessthan":    cmpTest("<"),
		"<":           cmpTest("<"),
		"le":          cmpTest("<="),
		"<=":          cmpTest("<="),
		"gt":          cmpTest(">"),
		"greaterthan": cmpTest(">"),
		">":           cmpTest(">"),
		"ge":          cmpTest(">="),
		">=":          cmpTest(">="),
		"in":          cmpTest("in"),
		"sameas": func(v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("sameas takes one argument")
			}
			switch v.(type) {
			case nil, bool:
				return v == args[0], nil
			}
			return false, nil
		},
		"lower": func(v any, _ []any) (bool, error) { s := str(v); return s == strings.ToLower(s), nil },
		"upper": func(v any, _ []any) (bool, error) { s := str(v); return s == strings.ToUpper(s), nil },
	}
	globals = map[string]any{
		"raise_exception": &function{name: "raise_exception", call: func(_ *renderer, args []any, kw *Dict) (any, error) {
			a, err := bind("raise_exception", args, kw, []string{"message"}, required)
			if err != nil {
				return nil, err
			}
			return nil, &raised{str(a[0])}
		}},
		"strftime_now": &function{name: "strftime_now", call: func(r *renderer, args []any, kw *Dict) (any, error) {
			a, err := bind("strftime_now", args, kw, []string{"format"}, required)
			if err != nil {
				return nil, err
			}
			f, err := wantString("strftime_now", a[0])
			if err != nil {
				return nil, err
			}
			return strftime(r.now(), f), nil
		}},
		"namespace": &function{name: "namespace", call: func(_ *renderer, args []any, kw *Dict) (any, error) {
			d, err := dictArgs("namespace", args, kw)
			if err != nil {
				return nil, err
			}
			for _, k := range d.keys {
				if s, ok := k.(string); ok && strings.HasPrefix(s, "_") {
					return nil, fmt.Errorf("chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", s)
				}
			}
			return &namespace{attrs: d}, nil
		}},
		"dict": &function{name: "dict", call: func(_ *renderer, args []any, kw *Dict) (any, error) {
			return dictArgs("dict", args, kw)
		}},
		"range": &function{name: "range", call: fRange},
	}
}

func dictArgs(fname string, args []any, kw *Dict) (*Dict, error) {
	d := NewDict()
	if len(args) > 1 {
		return nil, fmt.Errorf("%s expected at most 1 argument, got %d", fname, len(args))
	}
	if len(args) == 1 {
		arg := args[0]
		if t, ok := arg.(tuple); ok {
			arg = []any(t)
		}
		switch a := arg.(type) {
		case *Dict:
			for _, k := range a.keys {
				d.set(k, a.m[k])
			}
		case []any:
			for _, it := range a {
				p, ok := asSeq(it)
				if !ok || len(p) != 2 || !hashable(p[0]) {
					return nil, fmt.Errorf("%s: cannot convert sequence element to a key-value pair", fname)
				}
				d.set(dictKey(p[0]), p[1])
			}
		default:
			return nil, fmt.Errorf("%s: '%s' object is not a mapping", fname, typeName(args[0]))
		}
	}
	for _, k := range kw.keys {
		d.set(k, kw.m[k])
	}
	return d, nil
}

func fRange(_ *renderer, args []any, kw *Dict) (any, error) {
	if kw.Len() > 0 {
		return nil, errors.New("range() takes no keyword arguments")
	}
	if len(args) < 1 || len(args) > 3 {
		return nil, fmt.Errorf("range expected 1 to 3 arguments, got %d", len(args))
	}
	var nums [3]int64
	for i, a := range args {
		n, err := wantInt("range", a)
		if err != nil {
			return nil, err
		}
		nums[i] = n
	}
	start, stop, step := int64(0), nums[0], int64(1)
	if len(args) >= 2 {
		start, stop = nums[0], nums[1]
	}
	if len(args) == 3 {
		step = nums[2]
	}
	if step == 0 {
		return nil, errors.New("range() arg 3 must not be zero")
	}
	var n float64
	if step > 0 && stop > start {
		n = math.Ceil((float64(stop) - float64(start)) / float64(step))
	} else if step < 0 && stop < start {
		n = math.Ceil((float64(start) - float64(stop)) / float64(-step))
	}
	if n > 100000 {
		return nil, errors.New("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
	}
	out := make([]any, 0, int(n))
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		out = append(out, i)
	}
	return out, nil
}

func strFilter(f func(string) string) filterFunc {
	return func(_ *renderer, v any, args []any, kw *Dict) (any, error) {
		if len(args) > 0 || kw.Len() > 0 {
			return nil, errors.New("filter takes no arguments")
		}
		return f(str(v)), nil
	}
}

func stripChars(s string, chars any, left, right bool) (string, error) {
	var in func(rune) bool
	switch c := chars.(type) {
	case nil:
		in = pySpace
	case string:
		in = func(r rune) bool { return strings.ContainsRune(c, r) }
	default:
		return "", fmt.Errorf("strip arg must be None or str, not %s", typeName(chars))
	}
	if left {
		s = strings.TrimLeftFunc(s, in)
	}
	if right {
		s = strings.TrimRightFunc(s, in)
	}
	return s, nil
}

func fTrim(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("trim", args, kw, []string{"chars"}, nil)
	if err != nil {
		return nil, err
	}
	return stripChars(str(v), a[0], true, true)
}

func fLength(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	return length(v)
}

func fToJSON(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("tojson", args, kw, []string{"ensure_ascii", "indent", "separators", "sort_keys"}, false, nil, nil, false)
	if err != nil {
		return nil, err
	}
	o := jsonOpts{ascii: truthy(a[0]), sortKeys: truthy(a[3]), itemSep: ", ", keySep: ": "}
	switch ind := a[1].(type) {
	case nil:
	case string:
		o.indent, o.pretty = ind, true
	default:
		n, err := wantInt("tojson indent", ind)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			n = 0
		}
		if n > 256 {
			return nil, errors.New("tojson: indent too large")
		}
		o.indent, o.pretty = strings.Repeat(" ", int(n)), true
	}
	if o.pretty {
		o.itemSep = ","
	}
	if a[2] != nil {
		seps, ok := asSeq(a[2])
		if !ok || len(seps) != 2 {
			return nil, errors.New("tojson: separators must be a pair of strings")
		}
		is, ok1 := seps[0].(string)
		ks, ok2 := seps[1].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("tojson: separators must be a pair of strings")
		}
		o.itemSep, o.keySep = is, ks
	}
	var b strings.Builder
	if err := o.encode(&b, v, 0); err != nil {
		return nil, err
	}
	return b.String(), nil
}

func fDefault(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("default", args, kw, []string{"default_value", "boolean"}, "", false)
	if err != nil {
		return nil, err
	}
	if _, u := v.(*undefined); u || (truthy(a[1]) && !truthy(v)) {
		return a[0], nil
	}
	return v, nil
}

func fFirst(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &undefined{hint: "No first item, sequence was empty."}, nil
	}
	return items[0], nil
}

func fLast(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	switch d := v.(type) {
	case *generator:
		return nil, fmt.Errorf("'%s' object is not reversible", typeName(v))
	case *Dict:
		if d.Len() == 0 {
			return &undefined{hint: "No last item, sequence was empty."}, nil
		}
		return d.keys[d.Len()-1], nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &undefined{hint: "No last item, sequence was empty."}, nil
	}
	return items[len(items)-1], nil
}

func fJoin(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("join", args, kw, []string{"d", "attribute"}, "", nil)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(items))
	for i, it := range items {
		if a[1] != nil {
			if it, err = getItem(it, a[1]); err != nil {
				return nil, err
			}
		}
		parts[i] = str(it)
	}
	return strings.Join(parts, str(a[0])), nil
}

func pyReplace(s, old, new string, count int64) string {
	if count < 0 {
		return strings.ReplaceAll(s, old, new)
	}
	if count > math.MaxInt32 {
		count = math.MaxInt32
	}
	return strings.Replace(s, old, new, int(count))
}

func fReplace(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("replace", args, kw, []string{"old", "new", "count"}, required, required, nil)
	if err != nil {
		return nil, err
	}
	count := int64(-1)
	if a[2] != nil {
		if count, err = wantInt("replace", a[2]); err != nil {
			return nil, err
		}
	}
	out := pyReplace(str(v), str(a[0]), str(a[1]), count)
	if len(out) > maxOutput {
		return nil, errors.New("string too long")
	}
	return out, nil
}

func fList(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	return append([]any{}, items...), nil
}

func dictItems(d *Dict) []any {
	out := make([]any, len(d.keys))
	for i, k := range d.keys {
		out[i] = tuple{k, d.m[k]}
	}
	return out
}

func fItems(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	return newGenerator("do_items", func() ([]any, error) {
		switch d := v.(type) {
		case *undefined:
			return nil, nil
		case *Dict:
			return dictItems(d), nil
		}
		return nil, fmt.Errorf("can only get item pairs from a mapping, not %s", typeName(v))
	}), nil
}

// selectFilter makes select, reject, selectattr and rejectattr.
func selectFilter(attr, keep bool) filterFunc {
	return func(_ *renderer, v any, args []any, kw *Dict) (any, error) {
		if kw.Len() > 0 {
			return nil, errors.New("select filters take no keyword arguments")
		}
		return newGenerator("select_or_reject", func() ([]any, error) { return selectItems(v, args, attr, keep) }), nil
	}
}

func selectItems(v any, args []any, attr, keep bool) ([]any, error) {
	if !truthy(v) { // Jinja skips a false input, whatever it is
		return nil, nil
	}
	{
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		var attrName any
		if attr {
			if len(args) == 0 {
				return nil, errors.New("missing parameter for attribute name")
			}
			attrName, args = args[0], args[1:]
		}
		test := func(x any, _ []any) (bool, error) { return truthy(x), nil }
		if len(args) > 0 {
			name, ok := args[0].(string)
			if !ok {
				return nil, errors.New("the test name must be a string")
			}
			if test, ok = tests[name]; !ok {
				return nil, fmt.Errorf("no test named '%s'", name)
			}
			args = args[1:]
		}
		var out []any
		for _, it := range items {
			x := it
			if attr {
				if x, err = getAttrPath(it, attrName); err != nil {
					return nil, err
				}
			}
			ok, err := test(x, args)
			if err != nil {
				return nil, err
			}
			if ok == keep {
				out = append(out, it)
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
}

// getAttrPath is Jinja's make_attrgetter: "a.b" looks up a then b; digits
// index.
func getAttrPath(x any, attr any) (any, error) {
	s, ok := attr.(string)
	if !ok {
		return getItem(x, attr)
	}
	for _, part := range strings.Split(s, ".") {
		var k any = part
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			k = n
		}
		var err error
		if x, err = getItem(x, k); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func fMap(r *renderer, v any, args []any, kw *Dict) (any, error) {
	return newGenerator("sync_do_map", func() ([]any, error) { return fMapItems(r, v, args, kw) }), nil
}

func fMapItems(r *renderer, v any, args []any, kw *Dict) ([]any, error) {
	if !truthy(v) { // Jinja skips a false input, whatever it is
		return nil, nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(items))
	if attr, ok := kw.Get("attribute"); ok && len(args) == 0 {
		def, hasDef := kw.Get("default")
		for _, k := range kw.keys {
			if k != "attribute" && k != "default" {
				return nil, fmt.Errorf("map: unexpected keyword argument '%v'", k)
			}
		}
		for _, it := range items {
			x, err := getAttrPath(it, attr)
			if err != nil {
				return nil, err
			}
			if _, u := x.(*undefined); u && hasDef {
				x = def
			}
			out = append(out, x)
		}
		return out, nil
	}
	if len(args) == 0 {
		return nil, errors.New("map requires a filter argument")
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, errors.New("map: the filter name must be a string")
	}
	f, ok := filters[name]
	if !ok {
		return nil, fmt.Errorf("no filter named '%s'", name)
	}
	for _, it := range items {
		x, err := f(r, it, args[1:], kw)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func fInt(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("int", args, kw, []string{"default", "base"}, int64(0), int64(10))
	if err != nil {
		return nil, err
	}
	if u, ok := v.(*undefined); ok {
		return nil, errors.New(u.err())
	}
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case int64:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) >= 1<<63 {
			return a[0], nil
		}
		return int64(x), nil
	case string:
		base, err := wantInt("int", a[1])
		if err != nil {
			return nil, err
		}
		s := strings.ReplaceAll(strings.TrimFunc(x, pySpace), "_", "")
		if base >= 2 && base <= 36 {
			if n, err := strconv.ParseInt(s, int(base), 64); err == nil {
				return n, nil
			}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
	}
	return a[0], nil
}

func fFloat(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("float", args, kw, []string{"default"}, 0.0)
	if err != nil {
		return nil, err
	}
	if u, ok := v.(*undefined); ok {
		return nil, errors.New(u.err())
	}
	if _, f, _, ok := num(v); ok {
		return f, nil
	}
	if s, ok := v.(string); ok {
		if f, err := strconv.ParseFloat(strings.TrimFunc(s, pySpace), 64); err == nil {
			return f, nil
		}
	}
	return a[0], nil
}

func fAbs(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	i, f, fl, ok := num(v)
	if !ok {
		return nil, fmt.Errorf("bad operand type for abs(): '%s'", typeName(v))
	}
	if fl {
		return math.Abs(f), nil
	}
	if i == math.MinInt64 {
		return nil, errors.New("integer overflow")
	}
	return abs64(i), nil
}

func fRound(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("round", args, kw, []string{"precision", "method"}, int64(0), "common")
	if err != nil {
		return nil, err
	}
	i, f, isFloat, ok := num(v)
	if !ok {
		return nil, fmt.Errorf("round: expected a number, got %s", typeName(v))
	}
	p, err := wantInt("round", a[0])
	if err != nil {
		return nil, err
	}
	if !isFloat && a[1] == "common" && p >= 0 {
		return i, nil // Python's round of an int is the int
	}
	if p < -300 || p > 300 {
		return nil, errors.New("round: precision out of range")
	}
	m := math.Pow(10, float64(p))
	switch a[1] {
	case "common":
		return math.RoundToEven(f*m) / m, nil
	case "ceil":
		return math.Ceil(f*m) / m, nil
	case "floor":
		return math.Floor(f*m) / m, nil
	}
	return nil, errors.New("method must be common, ceil or floor")
}

func fReverse(_ *renderer, v any, _ []any, _ *Dict) (any, error) {
	if s, ok := v.(string); ok {
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, errors.New("argument to reverse must be a sequence")
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it
	}
	if _, ok := v.(*generator); ok {
		return out, nil
	}
	return newGenerator("reversed", func() ([]any, error) { return out, nil }), nil
}

func fSort(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("sort", args, kw, []string{"reverse", "case_sensitive", "attribute"}, false, false, nil)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	keys := make([]any, len(items))
	for i, it := range items {
		k := it
		if a[2] != nil {
			if k, err = getAttrPath(it, a[2]); err != nil {
				return nil, err
			}
		}
		if s, ok := k.(string); ok && !truthy(a[1]) {
			k = strings.ToLower(s)
		}
		keys[i] = k
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var cmpErr error
	sort.SliceStable(idx, func(i, j int) bool {
		c, err := compare(keys[idx[i]], keys[idx[j]])
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		if truthy(a[0]) {
			return c > 0
		}
		return c < 0
	})
	if cmpErr != nil {
		return nil, cmpErr
	}
	out := make([]any, len(items))
	for i, k := range idx {
		out[i] = items[k]
	}
	return out, nil
}

func fSum(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("sum", args, kw, []string{"attribute", "start"}, nil, int64(0))
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	total := a[1]
	for _, it := range items {
		if a[0] != nil {
			if it, err = getAttrPath(it, a[0]); err != nil {
				return nil, err
			}
		}
		if total, err = binary("+", total, it); err != nil {
			return nil, err
		}
	}
	return total, nil
}

// splitLines is Python's str.splitlines().
func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			out = append(out, s[start:i])
			if r == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				n++
			}
			start = i + n
		}
		i += n
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func fIndent(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("indent", args, kw, []string{"width", "first", "blank"}, int64(4), false, false)
	if err != nil {
		return nil, err
	}
	var ind string
	if s, ok := a[0].(string); ok {
		ind = s
	} else {
		n, err := wantInt("indent", a[0])
		if err != nil {
			return nil, err
		}
		if n < 0 {
			n = 0
		}
		if n > 1024 {
			return nil, errors.New("indent: width too large")
		}
		ind = strings.Repeat(" ", int(n))
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x + "\n"
	case *undefined:
		return nil, errors.New(x.err())
	default:
		return nil, fmt.Errorf("unsupported operand type(s) for +=: '%s' and 'str'", typeName(v))
	}
	lines := splitLines(s)
	var out string
	if truthy(a[2]) {
		out = strings.Join(lines, "\n"+ind)
	} else {
		out = lines[0]
		if len(lines) > 1 {
			rest := make([]string, len(lines)-1)
			for i, l := range lines[1:] {
				if l != "" {
					l = ind + l
				}
				rest[i] = l
			}
			out += "\n" + strings.Join(rest, "\n")
		}
	}
	if truthy(a[1]) {
		out = ind + out
	}
	if len(out) > maxOutput {
		return nil, errors.New("string too long")
	}
	return out, nil
}

// parityTest is odd (1) or even (0): value % 2 == want, in Python's
// arithmetic, so 2.5 is neither.
func parityTest(want int64) func(any, []any) (bool, error) {
	return func(v any, _ []any) (bool, error) {
		if !isNumber(v) {
			if u, ok := v.(*undefined); ok {
				return false, errors.New(u.err())
			}
			return false, fmt.Errorf("odd/even: expected a number, got %s", typeName(v))
		}
		m, err := arith("%", v, int64(2))
		if err != nil {
			return false, err
		}
		return equal(m, want), nil
	}
}

func tDivisible(v any, args []any) (bool, error) {
	if len(args) != 1 {
		return false, errors.New("divisibleby takes one argument")
	}
	r, err := binary("%", v, args[0])
	if err != nil {
		return false, err
	}
	return equal(r, int64(0)), nil
}

func cmpTest(op string) func(any, []any) (bool, error) {
	return func(v any, args []any) (bool, error) {
		if len(args) != 1 {
			return false, fmt.Errorf("test %s takes one argument", op)
		}
		r, err := binary(op, v, args[0])
		if err != nil {
			return false, err
		}
		return r.(bool), nil
	}
}

// jinjaTitle is Jinja's title filter: each word, split at white space and
// opening brackets or dashes, gets its first character upper-cased and the
// rest lower-cased.
func jinjaTitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		if pySpace(r) || strings.ContainsRune("-({[<", r) {
			b.WriteRune(r)
			start = true
			continue
		}
		if start {
			b.WriteRune(unicode.ToUpper(r))
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
		start = false
	}
	return b.String()
}

// pyTitle is Python's str.title.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		if unicode.IsLetter(r) {
			if prevCased {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToTitle(r))
			}
			prevCased = true
		} else {
			b.WriteRune(r)
			prevCased = false
		}
	}
	return b.String()
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// method returns the bound method name of x, or nil.
func method(x any, name string) *function {
	mk := func(call func(args []any, kw *Dict) (any, error)) *function {
		return &function{name: name, call: func(_ *renderer, args []any, kw *Dict) (any, error) { return call(args, kw) }}
	}
	if t, ok := x.(tuple); ok {
		x = []any(t)
	}
	switch v := x.(type) {
	case string:
		switch name {
		case "strip", "lstrip", "rstrip":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"chars"}, nil)
				if err != nil {
					return nil, err
				}
				return stripChars(v, a[0], name != "rstrip", name != "lstrip")
			})
		case "split", "rsplit":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"sep", "maxsplit"}, nil, int64(-1))
				if err != nil {
					return nil, err
				}
				max, err := wantInt(name, a[1])
				if err != nil {
					return nil, err
				}
				return pySplit(v, a[0], max, name == "rsplit")
			})
		case "startswith", "endswith":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"prefix"}, required)
				if err != nil {
					return nil, err
				}
				cands := []any{a[0]}
				if l, ok := asSeq(a[0]); ok {
					cands = l
				}
				for _, c := range cands {
					s, ok := c.(string)
					if !ok {
						return nil, fmt.Errorf("%s first arg must be str or a tuple of str, not %s", name, typeName(c))
					}
					if (name == "startswith" && strings.HasPrefix(v, s)) || (name == "endswith" && strings.HasSuffix(v, s)) {
						return true, nil
					}
				}
				return false, nil
			})
		case "upper", "lower", "title", "capitalize":
			return mk(func(args []any, kw *Dict) (any, error) {
				if len(args) > 0 || kw.Len() > 0 {
					return nil, fmt.Errorf("%s() takes no arguments", name)
				}
				switch name {
				case "upper":
					return strings.ToUpper(v), nil
				case "lower":
					return strings.ToLower(v), nil
				case "title":
					return pyTitle(v), nil
				}
				return capitalize(v), nil
			})
		case "replace":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"old", "new", "count"}, required, required, int64(-1))
				if err != nil {
					return nil, err
				}
				old, err := wantString("replace", a[0])
				if err != nil {
					return nil, err
				}
				nw, err := wantString("replace", a[1])
				if err != nil {
					return nil, err
				}
				n, err := wantInt("replace", a[2])
				if err != nil {
					return nil, err
				}
				out := pyReplace(v, old, nw, n)
				if len(out) > maxOutput {
					return nil, errors.New("string too long")
				}
				return out, nil
			})
		case "find", "count":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"sub"}, required)
				if err != nil {
					return nil, err
				}
				sub, err := wantString(name, a[0])
				if err != nil {
					return nil, err
				}
				if name == "count" {
					return int64(strings.Count(v, sub)), nil
				}
				i := strings.Index(v, sub)
				if i < 0 {
					return int64(-1), nil
				}
				return int64(utf8.RuneCountInString(v[:i])), nil
			})
		case "join":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"iterable"}, required)
				if err != nil {
					return nil, err
				}
				items, err := iterate(a[0])
				if err != nil {
					return nil, err
				}
				parts := make([]string, len(items))
				for i, it := range items {
					s, ok := it.(string)
					if !ok {
						return nil, fmt.Errorf("sequence item %d: expected str instance, %s found", i, typeName(it))
					}
					parts[i] = s
				}
				return strings.Join(parts, v), nil
			})
		}
	case *Dict:
		switch name {
		case "items", "keys", "values":
			return mk(func(args []any, kw *Dict) (any, error) {
				if len(args) > 0 || kw.Len() > 0 {
					return nil, fmt.Errorf("%s() takes no arguments", name)
				}
				switch name {
				case "items":
					return &view{"dict_items", dictItems(v)}, nil
				case "keys":
					return &view{"dict_keys", append([]any{}, v.keys...)}, nil
				}
				out := make([]any, len(v.keys))
				for i, k := range v.keys {
					out[i] = v.m[k]
				}
				return &view{"dict_values", out}, nil
			})
		case "get":
			return mk(func(args []any, kw *Dict) (any, error) {
				if kw.Len() > 0 {
					return nil, errors.New("get() takes no keyword arguments")
				}
				a, err := bind(name, args, nil, []string{"key", "default"}, required, nil)
				if err != nil {
					return nil, err
				}
				if !hashable(a[0]) {
					return nil, fmt.Errorf("unhashable type: '%s'", typeName(a[0]))
				}
				if e, ok := v.m[dictKey(a[0])]; ok {
					return e, nil
				}
				return a[1], nil
			})
		}
	case []any:
		switch name {
		case "index", "count":
			return mk(func(args []any, kw *Dict) (any, error) {
				a, err := bind(name, args, kw, []string{"value"}, required)
				if err != nil {
					return nil, err
				}
				n := int64(0)
				for i, e := range v {
					if equal(e, a[0]) {
						if name == "index" {
							return int64(i), nil
						}
						n++
					}
				}
				if name == "index" {
					return nil, fmt.Errorf("%s is not in list", repr(a[0]))
				}
				return n, nil
			})
		}
	}
	return nil
}

// pySplit is Python's str.split and str.rsplit.
func pySplit(s string, sep any, max int64, fromRight bool) (any, error) {
	var parts []string
	switch sp := sep.(type) {
	case nil:
		if max < 0 {
			parts = strings.FieldsFunc(s, pySpace)
			break
		}
		rest := s
		if !fromRight {
			for i := int64(0); i < max; i++ {
				rest = strings.TrimLeftFunc(rest, pySpace)
				j := strings.IndexFunc(rest, pySpace)
				if j < 0 {
					break
				}
				parts = append(parts, rest[:j])
				rest = rest[j:]
			}
			if rest = strings.TrimLeftFunc(rest, pySpace); rest != "" {
				parts = append(parts, rest)
			}
		} else {
			var tail []string
			for i := int64(0); i < max; i++ {
				rest = strings.TrimRightFunc(rest, pySpace)
				j := strings.LastIndexFunc(rest, pySpace)
				if j < 0 {
					break
				}
				_, w := utf8.DecodeRuneInString(rest[j:])
				tail = append([]string{rest[j+w:]}, tail...)
				rest = rest[:j]
			}
			if rest = strings.TrimRightFunc(rest, pySpace); rest != "" {
				parts = append([]string{rest}, tail...)
			} else {
				parts = tail
			}
		}
	case string:
		if sp == "" {
			return nil, errors.New("empty separator")
		}
		if max < 0 {
			parts = strings.Split(s, sp)
		} else if !fromRight {
			parts = strings.SplitN(s, sp, int(min(max+1, math.MaxInt32)))
		} else {
			rest := s
			var tail []string
			for i := int64(0); i < max; i++ {
				j := strings.LastIndex(rest, sp)
				if j < 0 {
					break
				}
				tail = append([]string{rest[j+len(sp):]}, tail...)
				rest = rest[:j]
			}
			parts = append([]string{rest}, tail...)
		}
	default:
		return nil, fmt.Errorf("must be str or None, not %s", typeName(sep))
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

var (
	shortDays   = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	shortMonths = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// strftime formats t with C's strftime directives, as Python does in the C
// locale. Unknown directives are kept as written.
func strftime(t time.Time, f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'a':
			b.WriteString(shortDays[t.Weekday()])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'b', 'h':
			b.WriteString(shortMonths[t.Month()-1])
		case 'B':
			b.WriteString(t.Month().String())
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'Y':
			fmt.Fprintf(&b, "%d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// sortKey is the key the sorting filters compare: the value or its
// attribute, lower-cased unless case_sensitive.
func sortKey(v any, attr any, caseSensitive bool) (any, error) {
	if attr != nil {
		var err error
		if v, err = getAttrPath(v, attr); err != nil {
			return nil, err
		}
	}
	if s, ok := v.(string); ok && !caseSensitive {
		return strings.ToLower(s), nil
	}
	return v, nil
}

func fDictsort(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	a, err := bind("dictsort", args, kw, []string{"case_sensitive", "by", "reverse"}, false, "key", false)
	if err != nil {
		return nil, err
	}
	d, ok := v.(*Dict)
	if !ok {
		return nil, fmt.Errorf("dictsort: expected a mapping, got %s", typeName(v))
	}
	pos := 0
	switch a[1] {
	case "key":
	case "value":
		pos = 1
	default:
		return nil, errors.New("You can only sort by either 'key' or 'value'")
	}
	items := dictItems(d)
	var cmpErr error
	sort.SliceStable(items, func(i, j int) bool {
		ki, _ := sortKey(items[i].(tuple)[pos], nil, truthy(a[0]))
		kj, _ := sortKey(items[j].(tuple)[pos], nil, truthy(a[0]))
		c, err := compare(ki, kj)
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		if truthy(a[2]) {
			return c > 0
		}
		return c < 0
	})
	return items, cmpErr
}

func fUnique(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	return newGenerator("sync_do_unique", func() ([]any, error) { return fUniqueItems(nil, v, args, kw) }), nil
}

func fUniqueItems(_ *renderer, v any, args []any, kw *Dict) ([]any, error) {
	a, err := bind("unique", args, kw, []string{"case_sensitive", "attribute"}, false, nil)
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	var out, seen []any
	for _, it := range items {
		k, err := sortKey(it, a[1], truthy(a[0]))
		if err != nil {
			return nil, err
		}
		if _, isTuple := k.(tuple); !isTuple && !hashable(k) {
			return nil, fmt.Errorf("unhashable type: '%s'", typeName(k))
		}
		dup := false
		for _, s := range seen {
			if equal(s, k) {
				dup = true
				break
			}
		}
		if !dup {
			seen = append(seen, k)
			out = append(out, it)
		}
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// minMax makes min (sign -1) and max (sign 1).
func minMax(sign int) filterFunc {
	return func(_ *renderer, v any, args []any, kw *Dict) (any, error) {
		a, err := bind("min/max", args, kw, []string{"case_sensitive", "attribute"}, false, nil)
		if err != nil {
			return nil, err
		}
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return &undefined{hint: "No aggregated item, sequence was empty."}, nil
		}
		best := items[0]
		bestKey, err := sortKey(best, a[1], truthy(a[0]))
		if err != nil {
			return nil, err
		}
		for _, it := range items[1:] {
			k, err := sortKey(it, a[1], truthy(a[0]))
			if err != nil {
				return nil, err
			}
			c, err := compare(k, bestKey)
			if err != nil {
				return nil, err
			}
			if c*sign > 0 {
				best, bestKey = it, k
			}
		}
		return best, nil
	}
}

// pyFormat is Python's printf-style str % args for the conversions
// templates use: %s %r %d %i %f %x %o %e %g and %%, with flags, width and
// precision, positional (args a tuple, or one value) or by name (a dict and
// %(name)s).
func pyFormat(format string, args any) (string, error) {
	var list []any
	mapping, byName := args.(*Dict)
	if t, ok := args.(tuple); ok {
		list = t
	} else if !byName {
		list = []any{args}
	}
	next := 0
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", errors.New("incomplete format")
		}
		var arg any
		haveArg := false
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 || !byName {
				return "", errors.New("format requires a mapping")
			}
			key := format[i+1 : i+end]
			v, ok := mapping.Get(key)
			if !ok {
				return "", fmt.Errorf("KeyError: %s", pyQuote(key))
			}
			arg, haveArg = v, true
			i += end + 1
		}
		spec := "%"
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			spec += string(format[i])
			i++
		}
		for i < len(format) && (format[i] >= '0' && format[i] <= '9' || format[i] == '.') {
			spec += string(format[i])
			i++
		}
		if i >= len(format) {
			return "", errors.New("incomplete format")
		}
		verb := format[i]
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if !haveArg {
			if byName || next >= len(list) {
				return "", errors.New("not enough arguments for format string")
			}
			arg = list[next]
			next++
		}
		switch verb {
		case 's', 'r', 'a':
			s := str(arg)
			if verb != 's' {
				s = repr(arg)
			}
			b.WriteString(fmt.Sprintf(spec+"s", s))
		case 'd', 'i', 'x', 'X', 'o':
			n, f, isFloat, ok := num(arg)
			if !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, typeName(arg))
			}
			if isFloat {
				n = int64(f)
			}
			if verb == 'i' {
				verb = 'd'
			}
			b.WriteString(fmt.Sprintf(spec+string(verb), n))
		case 'f', 'F', 'e', 'E', 'g', 'G':
			_, f, _, ok := num(arg)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", typeName(arg))
			}
			if !strings.Contains(spec, ".") {
				spec += ".6"
			}
			b.WriteString(fmt.Sprintf(spec+string(verb), f))
		default:
			return "", fmt.Errorf("unsupported format character '%c'", verb)
		}
	}
	// Unused arguments are an error, except when the argument is a list or
	// a dict (Python's "mapping" case).
	switch args.(type) {
	case []any, *Dict, *view:
	default:
		if next < len(list) {
			return "", errors.New("not all arguments converted during string formatting")
		}
	}
	return b.String(), nil
}

func fFormat(_ *renderer, v any, args []any, kw *Dict) (any, error) {
	if len(args) > 0 && kw.Len() > 0 {
		return nil, errors.New("can't handle positional and keyword arguments at the same time")
	}
	if kw.Len() > 0 {
		return pyFormat(str(v), kw)
	}
	return pyFormat(str(v), tuple(args))
}
