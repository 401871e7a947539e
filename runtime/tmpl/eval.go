package tmpl

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits that keep a hostile template from exhausting memory or the stack.
const (
	maxOutput = 64 << 20 // bytes of output, and of any one string or list built
	maxDepth  = 200      // nested macro calls and nested blocks
	maxSteps  = 2000000  // statements, loop iterations and calls run in one render
)

// scope holds the variables of one level: the template, a loop iteration,
// a macro call. Levels hold few names, so a short list beats a map.
type scope struct {
	parent *scope
	vars   []binding
	buf    [3]binding
}

type binding struct {
	name string
	v    any
}

func newScope(parent *scope) *scope {
	s := &scope{parent: parent}
	s.vars = s.buf[:0]
	return s
}

func (s *scope) set(name string, v any) {
	for i := range s.vars {
		if s.vars[i].name == name {
			s.vars[i].v = v
			return
		}
	}
	s.vars = append(s.vars, binding{name, v})
}

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		for i := range s.vars {
			if s.vars[i].name == name {
				return s.vars[i].v, true
			}
		}
	}
	return nil, false
}

type renderer struct {
	name  string
	now   func() time.Time
	depth int
	size  int // bytes written so far, all buffers together
	steps int
	top   *strings.Builder // the output, as opposed to a set block's or a macro's
	spans []Span           // what {% generation %} blocks wrote to top
}

var (
	errBreak    = errors.New("break outside a loop")
	errContinue = errors.New("continue outside a loop")
)

func (r *renderer) errf(p pos, format string, args ...any) error {
	return &Error{Name: r.name, Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
}

// wrap gives err the position p unless it already has one.
func (r *renderer) wrap(p pos, err error) error {
	if err == nil || err == errBreak || err == errContinue {
		return err
	}
	var re *raised
	if errors.As(err, &re) {
		return &Error{Name: r.name, Line: p.line, Col: p.col, Msg: re.msg, Raised: true}
	}
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	return &Error{Name: r.name, Line: p.line, Col: p.col, Msg: err.Error()}
}

// Render renders the template with vars as its top-level variables, plus
// the globals transformers gives chat templates: raise_exception,
// strftime_now, namespace, dict and range. Variables may be nil, bool,
// integers, floats, strings, slices, maps with string keys (seen in sorted
// key order), *Dict (in its own order), Message, what DecodeJSON returns,
// and pointers to these; anything else is an error.
func (t *Template) Render(vars map[string]any) (string, error) {
	return t.render(vars, time.Now)
}

func (t *Template) render(vars map[string]any, now func() time.Time) (string, error) {
	out, _, err := t.renderSpans(vars, now)
	return out, err
}

// Span is a byte range [Start, End) of rendered text.
type Span struct{ Start, End int }

func (t *Template) renderSpans(vars map[string]any, now func() time.Time) (out string, spans []Span, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			out, spans, err = "", nil, &Error{Name: t.name, Line: 1, Col: 1, Msg: fmt.Sprintf("internal error: %v", rec)}
		}
	}()
	root := newScope(nil)
	for k, v := range vars {
		c, err := fromGo(v)
		if err != nil {
			return "", nil, fmt.Errorf("tmpl: variable %s: %w", k, err)
		}
		root.set(k, c)
	}
	var b strings.Builder
	r := &renderer{name: t.name, now: now, top: &b}
	if err := r.exec(t.body, newScope(root), &b); err != nil {
		if err == errBreak || err == errContinue {
			return "", nil, &Error{Name: t.name, Line: 1, Col: 1, Msg: err.Error()}
		}
		return "", nil, err
	}
	return b.String(), r.spans, nil
}

func (r *renderer) write(b *strings.Builder, s string, p pos) error {
	r.size += len(s)
	if r.size > maxOutput {
		return r.errf(p, "output larger than %d bytes", maxOutput)
	}
	b.WriteString(s)
	return nil
}

func (r *renderer) exec(nodes []node, sc *scope, b *strings.Builder) error {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxDepth {
		return &Error{Name: r.name, Line: 1, Col: 1, Msg: "templates nest too deep"}
	}
	for _, n := range nodes {
		if err := r.execNode(n, sc, b); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) execNode(n node, sc *scope, b *strings.Builder) error {
	r.steps++
	if r.steps > maxSteps {
		return &Error{Name: r.name, Line: 1, Col: 1, Msg: "template runs too long"}
	}
	switch n := n.(type) {
	case *textNode:
		return r.write(b, n.text, pos{})
	case *outNode:
		v, err := r.eval(n.e, sc)
		if err != nil {
			return err
		}
		return r.write(b, str(v), n.pos)
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.exec(n.bodies[i], sc, b)
			}
		}
		if len(n.bodies) > len(n.conds) {
			return r.exec(n.bodies[len(n.conds)], sc, b)
		}
		return nil
	case *forNode:
		return r.execFor(n, sc, b)
	case *setNode:
		var v any
		if n.body != nil {
			var sb strings.Builder
			if err := r.exec(n.body, sc, &sb); err != nil {
				return err
			}
			v = sb.String()
		} else {
			var err error
			if v, err = r.eval(n.e, sc); err != nil {
				return err
			}
		}
		if n.attr != "" {
			obj, _ := sc.lookup(n.targets[0])
			ns, ok := obj.(*namespace)
			if !ok {
				return r.errf(n.pos, "cannot assign attribute on non-namespace object")
			}
			if strings.HasPrefix(n.attr, "_") {
				return r.errf(n.pos, "chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", n.attr)
			}
			ns.attrs.Set(n.attr, v)
			return nil
		}
		return r.assign(n.pos, sc, n.targets, v)
	case *macroNode:
		sc.set(n.name, r.macro(n, sc))
		return nil
	case *callBlockNode:
		c := n.call.(*callExpr)
		caller := &function{name: "caller", call: func(r *renderer, args []any, kwargs *Dict) (any, error) {
			var sb strings.Builder
			if err := r.exec(n.body, newScope(sc), &sb); err != nil {
				return nil, err
			}
			return sb.String(), nil
		}}
		v, err := r.evalCall(c, sc, caller)
		if err != nil {
			return err
		}
		return r.write(b, str(v), n.pos)
	case *loopCtlNode:
		if n.brk {
			return errBreak
		}
		return errContinue
	case *genNode:
		start := b.Len()
		if err := r.exec(n.body, sc, b); err != nil {
			return err
		}
		if b == r.top {
			r.spans = append(r.spans, Span{start, b.Len()})
		}
		return nil
	}
	return fmt.Errorf("tmpl: unknown node %T", n)
}

func (r *renderer) assign(p pos, sc *scope, targets []string, v any) error {
	if len(targets) == 1 {
		sc.set(targets[0], v)
		return nil
	}
	items, err := iterate(v)
	if err != nil {
		return r.wrap(p, fmt.Errorf("cannot unpack non-iterable %s object", typeName(v)))
	}
	if len(items) != len(targets) {
		if len(items) < len(targets) {
			return r.errf(p, "not enough values to unpack (expected %d, got %d)", len(targets), len(items))
		}
		return r.errf(p, "too many values to unpack (expected %d)", len(targets))
	}
	for i, t := range targets {
		sc.set(t, items[i])
	}
	return nil
}

func (r *renderer) execFor(n *forNode, sc *scope, b *strings.Builder) error {
	seq, err := r.eval(n.iter, sc)
	if err != nil {
		return err
	}
	items, err := iterate(seq)
	if err != nil {
		return r.wrap(n.pos, err)
	}
	if n.filter != nil {
		var kept []any
		for _, it := range items {
			r.steps++
			if r.steps > maxSteps {
				return r.errf(n.pos, "template runs too long")
			}
			fs := newScope(sc)
			if err := r.assign(n.pos, fs, n.targets, it); err != nil {
				return err
			}
			v, err := r.eval(n.filter, fs)
			if err != nil {
				return err
			}
			if truthy(v) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		if n.els != nil {
			return r.exec(n.els, newScope(sc), b)
		}
		return nil
	}
	loop := &loopObj{items: items}
	for i, it := range items {
		r.steps++
		if r.steps > maxSteps {
			return r.errf(n.pos, "template runs too long")
		}
		is := newScope(sc)
		loop.i = i
		is.set("loop", loop)
		if err := r.assign(n.pos, is, n.targets, it); err != nil {
			return err
		}
		err := r.exec(n.body, is, b)
		if err == errBreak {
			break
		}
		if err != nil && err != errContinue {
			return err
		}
	}
	return nil
}

func (r *renderer) macro(n *macroNode, def *scope) *function {
	return &function{name: n.name, call: func(r *renderer, args []any, kwargs *Dict) (any, error) {
		if len(args) > len(n.params) {
			return nil, fmt.Errorf("macro '%s' takes not more than %d argument(s)", n.name, len(n.params))
		}
		ms := newScope(def)
		for i, name := range n.params {
			var v any
			set := false
			if i < len(args) {
				v, set = args[i], true
			}
			if kw, ok := kwargs.Get(name); ok {
				if set {
					return nil, fmt.Errorf("macro '%s' got multiple values for argument '%s'", n.name, name)
				}
				v, set = kw, true
			}
			if !set {
				if n.defaults[i] != nil {
					var err error
					if v, err = r.eval(n.defaults[i], ms); err != nil {
						return nil, err
					}
				} else {
					v = &undefined{hint: fmt.Sprintf("parameter '%s' was not provided", name)}
				}
			}
			ms.set(name, v)
		}
		for _, k := range kwargs.Keys() {
			name := k.(string)
			known := name == "caller"
			for _, p := range n.params {
				known = known || p == name
			}
			if !known {
				return nil, fmt.Errorf("macro '%s' takes no keyword argument '%s'", n.name, name)
			}
			if name == "caller" {
				ms.set("caller", kwargs.m[k])
			}
		}
		var sb strings.Builder
		if err := r.exec(n.body, ms, &sb); err != nil {
			return nil, err
		}
		return sb.String(), nil
	}}
}

// eval evaluates e, charging the work budget for the size of the value:
// every scan of a long string or list starts with evaluating it, so this
// bounds the work of templates that loop over huge values.
func (r *renderer) eval(e expr, sc *scope) (any, error) {
	v, err := r.eval0(e, sc)
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case string:
		r.steps += len(x) >> 10
	case []any:
		r.steps += len(x) >> 8
	}
	if r.steps > maxSteps {
		return nil, r.errf(posOf(e), "template runs too long")
	}
	return v, nil
}

func (r *renderer) eval0(e expr, sc *scope) (any, error) {
	switch e := e.(type) {
	case *litExpr:
		return e.v, nil
	case *nameExpr:
		if v, ok := sc.lookup(e.name); ok {
			return v, nil
		}
		if g, ok := globals[e.name]; ok {
			return g, nil
		}
		return &undefined{hint: fmt.Sprintf("'%s' is undefined", e.name)}, nil
	case *listExpr:
		out := make([]any, len(e.items))
		for i, it := range e.items {
			v, err := r.eval(it, sc)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		if e.tuple {
			return tuple(out), nil
		}
		return out, nil
	case *dictExpr:
		d := NewDict()
		for i := range e.keys {
			k, err := r.eval(e.keys[i], sc)
			if err != nil {
				return nil, err
			}
			if !hashable(k) {
				return nil, r.errf(e.pos, "unhashable type: '%s'", typeName(k))
			}
			v, err := r.eval(e.vals[i], sc)
			if err != nil {
				return nil, err
			}
			d.set(dictKey(k), v)
		}
		return d, nil
	case *attrExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		v, err := getAttr(x, e.name)
		return v, r.wrap(e.pos, err)
	case *itemExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		k, err := r.eval(e.key, sc)
		if err != nil {
			return nil, err
		}
		v, err := getItem(x, k)
		return v, r.wrap(e.pos, err)
	case *sliceExpr:
		return r.evalSlice(e, sc)
	case *callExpr:
		return r.evalCall(e, sc, nil)
	case *filterExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(e.args, e.kwargs, sc)
		if err != nil {
			return nil, err
		}
		f, ok := filters[e.name]
		if !ok {
			return nil, r.errf(e.pos, "no filter named '%s'", e.name)
		}
		v, err := f(r, x, args, kwargs)
		return v, r.wrap(e.pos, err)
	case *testExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := r.evalArgs(e.args, nil, sc)
		if err != nil {
			return nil, err
		}
		test, ok := tests[e.name]
		if !ok {
			return nil, r.errf(e.pos, "no test named '%s'", e.name)
		}
		ok, err = test(x, args)
		if err != nil {
			return nil, r.wrap(e.pos, err)
		}
		return ok != e.neg, nil
	case *unaryExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		if e.op == "not" {
			return !truthy(x), nil
		}
		if u, ok := x.(*undefined); ok {
			return nil, r.errf(e.pos, "%s", u.err())
		}
		i, f, fl, ok := num(x)
		if !ok {
			return nil, r.errf(e.pos, "bad operand type for unary %s: '%s'", e.op, typeName(x))
		}
		if e.op == "+" {
			if fl {
				return f, nil
			}
			return i, nil
		}
		if fl {
			return -f, nil
		}
		if i == math.MinInt64 {
			return nil, r.errf(e.pos, "integer overflow")
		}
		return -i, nil
	case *condExpr:
		c, err := r.eval(e.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return r.eval(e.a, sc)
		}
		if e.b == nil {
			return &undefined{hint: "the inline if-expression evaluated to false and no else section was defined"}, nil
		}
		return r.eval(e.b, sc)
	case *binExpr:
		l, err := r.eval(e.l, sc)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return r.eval(e.r, sc)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return r.eval(e.r, sc)
		}
		rv, err := r.eval(e.r, sc)
		if err != nil {
			return nil, err
		}
		v, err := binary(e.op, l, rv)
		return v, r.wrap(e.pos, err)
	}
	return nil, fmt.Errorf("tmpl: unknown expression %T", e)
}

func (r *renderer) evalArgs(es []expr, kws []kwarg, sc *scope) ([]any, *Dict, error) {
	args := make([]any, len(es))
	for i, a := range es {
		v, err := r.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		args[i] = v
	}
	kwargs := NewDict()
	for _, kw := range kws {
		v, err := r.eval(kw.e, sc)
		if err != nil {
			return nil, nil, err
		}
		kwargs.Set(kw.name, v)
	}
	return args, kwargs, nil
}

func (r *renderer) evalCall(e *callExpr, sc *scope, caller *function) (any, error) {
	fn, err := r.eval(e.fn, sc)
	if err != nil {
		return nil, err
	}
	args, kwargs, err := r.evalArgs(e.args, e.kwargs, sc)
	if err != nil {
		return nil, err
	}
	if caller != nil {
		kwargs.Set("caller", caller)
	}
	r.steps++
	if r.steps > maxSteps {
		return nil, r.errf(e.pos, "template runs too long")
	}
	switch f := fn.(type) {
	case *function:
		r.depth++
		defer func() { r.depth-- }()
		if r.depth > maxDepth {
			return nil, r.errf(e.pos, "calls nest too deep")
		}
		v, err := f.call(r, args, kwargs)
		return v, r.wrap(e.pos, err)
	case *undefined:
		return nil, r.errf(e.pos, "%s", f.err())
	}
	return nil, r.errf(e.pos, "'%s' object is not callable", typeName(fn))
}

func (r *renderer) evalSlice(e *sliceExpr, sc *scope) (any, error) {
	x, err := r.eval(e.x, sc)
	if err != nil {
		return nil, err
	}
	var bounds [3]any
	for i, b := range []expr{e.start, e.stop, e.step} {
		if b == nil {
			continue
		}
		v, err := r.eval(b, sc)
		if err != nil {
			return nil, err
		}
		bounds[i] = v
	}
	var items []any
	isStr := false
	_, isTuple := x.(tuple)
	switch v := x.(type) {
	case []any:
		items = v
	case tuple:
		items = v
	case string:
		isStr = true
		for _, c := range v {
			items = append(items, string(c))
		}
	case *undefined:
		return nil, r.errf(e.pos, "%s", v.err())
	default:
		return nil, r.errf(e.pos, "'%s' object is not subscriptable", typeName(x))
	}
	idx, err := sliceIndices(len(items), bounds)
	if err != nil {
		return nil, r.wrap(e.pos, err)
	}
	if isStr {
		var b strings.Builder
		for _, i := range idx {
			b.WriteString(items[i].(string))
		}
		return b.String(), nil
	}
	out := make([]any, len(idx))
	for k, i := range idx {
		out[k] = items[i]
	}
	if isTuple {
		return tuple(out), nil
	}
	return out, nil
}

// sliceIndices is Python's slice.indices, listed.
func sliceIndices(n int, b [3]any) ([]int, error) {
	get := func(v any) (int, bool, error) {
		if v == nil {
			return 0, false, nil
		}
		i, _, fl, ok := num(v)
		if !ok || fl {
			return 0, false, errors.New("slice indices must be integers or None")
		}
		if i > math.MaxInt32 {
			i = math.MaxInt32
		}
		if i < -math.MaxInt32 {
			i = -math.MaxInt32
		}
		return int(i), true, nil
	}
	step, ok, err := get(b[2])
	if err != nil {
		return nil, err
	}
	if !ok {
		step = 1
	}
	if step == 0 {
		return nil, errors.New("slice step cannot be zero")
	}
	start, hasStart, err := get(b[0])
	if err != nil {
		return nil, err
	}
	stop, hasStop, err := get(b[1])
	if err != nil {
		return nil, err
	}
	clamp := func(i int, lo, hi int) int {
		if i < 0 {
			i += n
			if i < lo {
				i = lo
			}
		} else if i > hi {
			i = hi
		}
		return i
	}
	var out []int
	if step > 0 {
		if !hasStart {
			start = 0
		} else {
			start = clamp(start, 0, n)
		}
		if !hasStop {
			stop = n
		} else {
			stop = clamp(stop, 0, n)
		}
		for i := start; i < stop; i += step {
			out = append(out, i)
		}
	} else {
		if !hasStart {
			start = n - 1
		} else {
			start = clamp(start, -1, n-1)
		}
		if !hasStop {
			stop = -1
		} else {
			stop = clamp(stop, -1, n-1)
		}
		for i := start; i > stop; i += step {
			out = append(out, i)
		}
	}
	return out, nil
}

// getAttr is Jinja's getattr: an attribute (a method) first, then an item.
func getAttr(x any, name string) (any, error) {
	switch v := x.(type) {
	case *undefined:
		return nil, errors.New(v.err())
	case *Dict:
		if m := method(x, name); m != nil {
			return m, nil
		}
		if e, ok := v.m[name]; ok {
			return e, nil
		}
	case *namespace:
		if e, ok := v.attrs.m[name]; ok {
			return e, nil
		}
	case *loopObj:
		return v.attr(name), nil
	default:
		if m := method(x, name); m != nil {
			return m, nil
		}
	}
	return &undefined{hint: fmt.Sprintf("'%s object' has no attribute '%s'", pyTypeName(x), name)}, nil
}

// getItem is Jinja's getitem: an item first, then an attribute.
func getItem(x any, k any) (any, error) {
	if t, ok := x.(tuple); ok {
		x = []any(t)
	}
	switch v := x.(type) {
	case *undefined:
		return nil, errors.New(v.err())
	case *Dict:
		if hashable(k) {
			if e, ok := v.m[dictKey(k)]; ok {
				return e, nil
			}
		}
	case []any, string:
		if i, _, fl, ok := num(k); ok && !fl {
			var n int64
			if s, ok := v.(string); ok {
				n = int64(utf8.RuneCountInString(s))
			} else {
				n = int64(len(v.([]any)))
			}
			if i < 0 {
				i += n
			}
			if i >= 0 && i < n {
				if s, ok := v.(string); ok {
					for j, r := range []rune(s) {
						if int64(j) == i {
							return string(r), nil
						}
					}
				}
				return v.([]any)[i], nil
			}
			return &undefined{hint: fmt.Sprintf("'%s object' has no element %d", pyTypeName(x), i)}, nil
		}
	}
	if s, ok := k.(string); ok {
		return getAttr(x, s)
	}
	return &undefined{hint: fmt.Sprintf("'%s object' has no element %s", pyTypeName(x), repr(k))}, nil
}

func pyTypeName(x any) string {
	switch x.(type) {
	case nil:
		return "None"
	}
	return typeName(x)
}

func (l *loopObj) attr(name string) any {
	n := len(l.items)
	switch name {
	case "index":
		return int64(l.i + 1)
	case "index0":
		return int64(l.i)
	case "revindex":
		return int64(n - l.i)
	case "revindex0":
		return int64(n - l.i - 1)
	case "first":
		return l.i == 0
	case "last":
		return l.i == n-1
	case "length":
		return int64(n)
	case "depth":
		return int64(1)
	case "depth0":
		return int64(0)
	case "previtem":
		if l.i > 0 {
			return l.items[l.i-1]
		}
		return &undefined{hint: "there is no previous item"}
	case "nextitem":
		if l.i+1 < n {
			return l.items[l.i+1]
		}
		return &undefined{hint: "there is no next item"}
	case "cycle":
		i := l.i
		return &function{name: "cycle", call: func(_ *renderer, args []any, _ *Dict) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("no items for cycling given")
			}
			return args[i%len(args)], nil
		}}
	}
	return &undefined{hint: fmt.Sprintf("'LoopContext object' has no attribute '%s'", name)}
}

func binary(op string, l, r any) (any, error) {
	switch op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "<", ">", "<=", ">=":
		c, err := compare(l, r)
		if err != nil {
			if strings.HasPrefix(err.Error(), "'<'") {
				return nil, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, typeName(l), typeName(r))
			}
			return nil, err
		}
		switch op {
		case "<":
			return c < 0, nil
		case ">":
			return c > 0, nil
		case "<=":
			return c <= 0, nil
		}
		return c >= 0, nil
	case "in", "not in":
		in, err := contains(r, l)
		if err != nil {
			return nil, err
		}
		return in == (op == "in"), nil
	case "~":
		s := str(l) + str(r)
		if len(s) > maxOutput {
			return nil, errors.New("string too long")
		}
		return s, nil
	}
	if u, ok := l.(*undefined); ok {
		return nil, errors.New(u.err())
	}
	if u, ok := r.(*undefined); ok {
		return nil, errors.New(u.err())
	}
	if isNumber(l) && isNumber(r) {
		return arith(op, l, r)
	}
	if f, ok := l.(string); ok && op == "%" {
		return pyFormat(f, r)
	}
	switch op {
	case "+":
		if a, ok := l.(string); ok {
			if b, ok := r.(string); ok {
				if len(a)+len(b) > maxOutput {
					return nil, errors.New("string too long")
				}
				return a + b, nil
			}
		}
		if a, ok := l.(tuple); ok {
			if b, ok := r.(tuple); ok {
				return tuple(append(append(make([]any, 0, len(a)+len(b)), a...), b...)), nil
			}
		}
		if a, ok := l.([]any); ok {
			if b, ok := r.([]any); ok {
				if len(a)+len(b) > maxOutput {
					return nil, errors.New("list too long")
				}
				return append(append(make([]any, 0, len(a)+len(b)), a...), b...), nil
			}
		}
	case "*":
		seq, n := l, r
		if isNumber(l) {
			seq, n = r, l
		}
		if t, ok := seq.(tuple); ok {
			v, err := binary("*", []any(t), n)
			if err != nil {
				return nil, err
			}
			return tuple(v.([]any)), nil
		}
		k, _, fl, ok := num(n)
		if ok && !fl {
			if k < 0 {
				k = 0
			}
			switch s := seq.(type) {
			case string:
				if k > 0 && int64(len(s)) > maxOutput/k {
					return nil, errors.New("string too long")
				}
				return strings.Repeat(s, int(k)), nil
			case []any:
				if k > 0 && int64(len(s)) > maxOutput/k {
					return nil, errors.New("list too long")
				}
				out := make([]any, 0, len(s)*int(k))
				for i := int64(0); i < k; i++ {
					out = append(out, s...)
				}
				return out, nil
			}
		}
	}
	return nil, fmt.Errorf("unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(l), typeName(r))
}

func arith(op string, l, r any) (any, error) {
	a, af, afl, _ := num(l)
	b, bf, bfl, _ := num(r)
	if op == "/" {
		if bf == 0 {
			return nil, errors.New("division by zero")
		}
		return af / bf, nil
	}
	if afl || bfl {
		switch op {
		case "+":
			return af + bf, nil
		case "-":
			return af - bf, nil
		case "*":
			return af * bf, nil
		case "//":
			if bf == 0 {
				return nil, errors.New("float floor division by zero")
			}
			return math.Floor(af / bf), nil
		case "%":
			if bf == 0 {
				return nil, errors.New("float modulo")
			}
			m := math.Mod(af, bf)
			if m != 0 && (m < 0) != (bf < 0) {
				m += bf
			}
			return m, nil
		case "**":
			return math.Pow(af, bf), nil
		}
	}
	overflow := errors.New("integer overflow")
	switch op {
	case "+":
		s := a + b
		if (s > a) != (b > 0) {
			return nil, overflow
		}
		return s, nil
	case "-":
		s := a - b
		if (s < a) != (b > 0) {
			return nil, overflow
		}
		return s, nil
	case "*":
		if a != 0 && b != 0 {
			p := a * b
			if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
				return nil, overflow
			}
			return p, nil
		}
		return int64(0), nil
	case "//", "%":
		if b == 0 {
			return nil, errors.New("integer division or modulo by zero")
		}
		if a == math.MinInt64 && b == -1 {
			return nil, overflow
		}
		q, m := a/b, a%b
		if m != 0 && (m < 0) != (b < 0) {
			q--
			m += b
		}
		if op == "//" {
			return q, nil
		}
		return m, nil
	case "**":
		if b < 0 {
			return math.Pow(af, bf), nil
		}
		p := int64(1)
		for i := int64(0); i < b; i++ {
			if p != 0 && (a > math.MaxInt64/abs64(p) || a < -math.MaxInt64/abs64(p)) {
				return nil, overflow
			}
			p *= a
			if p == 0 || p == 1 && a == 1 {
				break
			}
			if a == -1 {
				if b%2 == 0 {
					return int64(1), nil
				}
				return int64(-1), nil
			}
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func contains(container, item any) (bool, error) {
	switch c := container.(type) {
	case tuple:
		container = []any(c)
	case *view, *generator:
		items, err := iterate(c)
		if err != nil {
			return false, err
		}
		container = items
	}
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", typeName(item))
		}
		return strings.Contains(c, s), nil
	case []any:
		for _, e := range c {
			if equal(e, item) {
				return true, nil
			}
		}
		return false, nil
	case *Dict:
		if _, ok := item.(tuple); ok {
			return false, nil // hashable in Python, but never a key here
		}
		if !hashable(item) {
			return false, fmt.Errorf("unhashable type: '%s'", typeName(item))
		}
		_, ok := c.m[dictKey(item)]
		return ok, nil
	case *undefined:
		return false, nil
	}
	return false, fmt.Errorf("argument of type '%s' is not iterable", typeName(container))
}
