package tmpl

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values inside a template are Python's, as Go types: nil (None), bool,
// int64, float64, string, []any (list), tuple, *Dict, *undefined,
// *namespace, *loopObj and callables (*function).

// Dict is a mapping that keeps insertion order, as Python's dict does, so
// tojson and iteration print keys in the order the data had them. Keys are
// strings, int64, float64, bool or nil.
type Dict struct {
	keys []any
	m    map[any]any
}

// NewDict returns an empty Dict.
func NewDict() *Dict { return &Dict{m: map[any]any{}} }

// Set adds or replaces a key, keeping the position of an existing key. v
// is any value Template.Render accepts.
func (d *Dict) Set(key string, v any) { d.set(key, v) }

// set takes any hashable key (dictKey'd by the caller).
func (d *Dict) set(k, v any) {
	if _, ok := d.m[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.m[k] = v
}

// Get returns the value of key.
func (d *Dict) Get(key string) (any, bool) {
	v, ok := d.m[key]
	return v, ok
}

// Keys returns the keys in insertion order: strings, except in dicts a
// template built with other keys.
func (d *Dict) Keys() []any { return append([]any(nil), d.keys...) }

// Len returns the number of keys.
func (d *Dict) Len() int { return len(d.keys) }

// dictKey folds a float holding an integer and a bool into int64, so 1, 1.0
// and True find the same entry, as in Python.
func dictKey(k any) any {
	switch x := k.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x)
		}
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	}
	return k
}

func hashable(k any) bool {
	switch k.(type) {
	case nil, bool, int64, float64, string:
		return true
	}
	return false
}

// undefined is the value of a missing variable, attribute or item: it
// renders as "", is false, iterates as empty, and most other operations on it
// are errors, as with Jinja's default Undefined.
type undefined struct{ hint string }

func (u *undefined) err() string {
	if u.hint == "" {
		return "value is undefined"
	}
	return u.hint
}

// namespace is the object namespace() returns: attributes set with
// {% set ns.attr = … %} survive loop scopes.
type namespace struct{ attrs *Dict }

type function struct {
	name string
	call func(r *renderer, args []any, kwargs *Dict) (any, error)
}

type loopObj struct {
	items []any
	i     int
}

// tuple is Python's tuple: a list that prints in parentheses, as the
// pairs of items() and tuple literals do.
type tuple []any

// generator is what Jinja's map, select, reject, selectattr, rejectattr,
// unique, items and reverse filters return: a lazy, one-shot iterator. It is
// always true, has no length, and its errors (a filter applied to what
// cannot be iterated) happen only when something iterates it.
type generator struct {
	name string
	fn   func() ([]any, error)
	done bool
}

func newGenerator(name string, fn func() ([]any, error)) *generator {
	return &generator{name: name, fn: fn}
}

// view is what a dict's items(), keys() and values() return: iterable
// again and again, with a length, printed as dict_items([...]).
type view struct {
	kind  string // dict_items, dict_keys, dict_values
	items []any
}

// asSeq returns the items of a list or tuple.
func asSeq(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case tuple:
		return x, true
	}
	return nil, false
}

// fromGo converts Go values to template values: maps with string keys
// become Dicts in sorted key order (a *Dict, or DecodeJSON, keeps an
// order), slices lists, integers int64, floats float64. Other types are an
// error.
func fromGo(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, *undefined, *namespace, tuple:
		return x, nil
	case *Dict:
		// A caller's Dict may hold Go values: convert them, into a copy.
		d := NewDict()
		for _, k := range x.keys {
			c, err := fromGo(x.m[k])
			if err != nil {
				return nil, err
			}
			d.set(k, c)
		}
		return d, nil
	case int:
		return int64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromGo(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := NewDict()
		for _, k := range keys {
			c, err := fromGo(x[k])
			if err != nil {
				return nil, err
			}
			d.set(k, c)
		}
		return d, nil
	case Message:
		return x.dict(), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return float64(u), nil
		}
		return int64(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			c, err := fromGo(rv.Index(i).Interface())
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := map[string]any{}
		for _, k := range rv.MapKeys() {
			m[k.String()] = rv.MapIndex(k).Interface()
		}
		return fromGo(m)
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, nil
		}
		return fromGo(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("tmpl: cannot use a Go %T as a template value", v)
}

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case *generator:
		return "generator"
	case *view:
		return x.kind
	case tuple:
		return "tuple"
	case *Dict:
		return "dict"
	case *undefined:
		return "Undefined"
	case *namespace:
		return "Namespace"
	case *function:
		return "function"
	case *loopObj:
		return "LoopContext"
	}
	return fmt.Sprintf("%T", v)
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case tuple:
		return len(x) > 0
	case *view:
		return len(x.items) > 0
	case *Dict:
		return x.Len() > 0
	case *undefined:
		return false
	}
	return true
}

// str is Python's str().
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case *undefined:
		return ""
	}
	return repr(v)
}

// repr is Python's repr().
func repr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return pyFloat(x)
	case string:
		return pyQuote(x)
	case []any:
		var b strings.Builder
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(repr(e))
		}
		b.WriteByte(']')
		return b.String()
	case *generator:
		return "<generator object " + x.name + ">"
	case *view:
		return x.kind + "(" + repr(x.items) + ")"
	case tuple:
		if len(x) == 1 {
			return "(" + repr(x[0]) + ",)"
		}
		s := repr([]any(x))
		return "(" + s[1:len(s)-1] + ")"
	case *Dict:
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(repr(k))
			b.WriteString(": ")
			b.WriteString(repr(x.m[k]))
		}
		b.WriteByte('}')
		return b.String()
	case *undefined:
		return "Undefined"
	case *namespace:
		return "<Namespace " + repr(x.attrs) + ">"
	case *function:
		return "<function " + x.name + ">"
	case *loopObj:
		return "<LoopContext " + strconv.Itoa(x.i+1) + "/" + strconv.Itoa(len(x.items)) + ">"
	}
	return fmt.Sprint(v)
}

// pyFloat formats like Python's repr of a float: the shortest digits that
// round-trip, in fixed notation for exponents -4..15, else scientific.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expS)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	var out string
	if exp < -4 || exp >= 16 {
		out = digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		out += fmt.Sprintf("e%s%02d", sign, exp)
	} else if exp < 0 {
		out = "0." + strings.Repeat("0", -exp-1) + digits
	} else if len(digits) <= exp+1 {
		out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	} else {
		out = digits[:exp+1] + "." + digits[exp+1:]
	}
	if neg {
		out = "-" + out
	}
	return out
}

// pyQuote is Python's repr of a str.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

func isNumber(v any) bool {
	switch v.(type) {
	case bool, int64, float64:
		return true
	}
	return false
}

// num returns v as a number: int64 for bools and ints, float64 for floats.
func num(v any) (int64, float64, bool, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, 1, false, true
		}
		return 0, 0, false, true
	case int64:
		return x, float64(x), false, true
	case float64:
		return 0, x, true, true
	}
	return 0, 0, false, false
}

func equal(a, b any) bool {
	if isNumber(a) && isNumber(b) {
		ai, af, afl, _ := num(a)
		bi, bf, bfl, _ := num(b)
		if afl || bfl {
			return af == bf
		}
		return ai == bi
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case tuple:
		y, ok := b.(tuple)
		return ok && equal([]any(x), []any(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case *Dict:
		y, ok := b.(*Dict)
		if !ok || x.Len() != y.Len() {
			return false
		}
		for _, k := range x.keys {
			w, ok := y.m[k]
			if !ok || !equal(x.m[k], w) {
				return false
			}
		}
		return true
	case *undefined:
		_, ok := b.(*undefined)
		return ok
	}
	return a == b
}

// compare orders numbers, strings and lists, as Python does; other pairs
// are an error.
func compare(a, b any) (int, error) {
	if u, ok := a.(*undefined); ok {
		return 0, fmt.Errorf("%s", u.err())
	}
	if u, ok := b.(*undefined); ok {
		return 0, fmt.Errorf("%s", u.err())
	}
	if isNumber(a) && isNumber(b) {
		ai, af, afl, _ := num(a)
		bi, bf, bfl, _ := num(b)
		if afl || bfl {
			switch {
			case af < bf:
				return -1, nil
			case af > bf:
				return 1, nil
			}
			return 0, nil
		}
		switch {
		case ai < bi:
			return -1, nil
		case ai > bi:
			return 1, nil
		}
		return 0, nil
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	}
	if ta, ok := a.(tuple); ok {
		if tb, ok := b.(tuple); ok {
			return compare([]any(ta), []any(tb))
		}
	}
	if x, ok := a.([]any); ok {
		if y, ok := b.([]any); ok {
			for i := 0; i < len(x) && i < len(y); i++ {
				if !equal(x[i], y[i]) {
					return compare(x[i], y[i])
				}
			}
			return compare(int64(len(x)), int64(len(y)))
		}
	}
	return 0, fmt.Errorf("'<' not supported between instances of '%s' and '%s'", typeName(a), typeName(b))
}

// iterate returns the items a for loop over v sees: list items, dict keys,
// string characters; Undefined is empty.
func iterate(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case tuple:
		return x, nil
	case *view:
		return x.items, nil
	case *generator:
		if x.done {
			return nil, nil
		}
		x.done = true
		return x.fn()
	case *Dict:
		return append([]any(nil), x.keys...), nil
	case string:
		out := make([]any, 0, len(x))
		for _, r := range x {
			out = append(out, string(r))
		}
		return out, nil
	case *undefined:
		return nil, nil
	}
	return nil, fmt.Errorf("'%s' object is not iterable", typeName(v))
}

func length(v any) (int64, error) {
	switch x := v.(type) {
	case string:
		return int64(utf8.RuneCountInString(x)), nil
	case []any:
		return int64(len(x)), nil
	case tuple:
		return int64(len(x)), nil
	case *view:
		return int64(len(x.items)), nil
	case *Dict:
		return int64(x.Len()), nil
	case *undefined:
		return 0, nil
	}
	return 0, fmt.Errorf("object of type '%s' has no len()", typeName(v))
}
