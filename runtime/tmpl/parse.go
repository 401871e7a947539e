package tmpl

import (
	"fmt"
)

// Error is a template error: a syntax error found by Parse, or an error
// while rendering, with the template's name and the line and column (1-based,
// in characters) of the construct at fault.
type Error struct {
	Name      string
	Line, Col int
	Msg       string
	// Raised is true when the template called raise_exception; Msg is then
	// its message, exactly.
	Raised bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Name, e.Line, e.Col, e.Msg)
}

func sprintf(format string, args ...any) string  { return fmt.Sprintf(format, args...) }
func sprintErr(format string, args ...any) error { return fmt.Errorf(format, args...) }

type pos struct{ line, col int }

func (p pos) at() pos { return p }

// posOf is where an expression starts.
func posOf(e expr) pos {
	if x, ok := e.(interface{ at() pos }); ok {
		return x.at()
	}
	return pos{}
}

// Nodes of statements.
type (
	node any

	textNode struct{ text string }
	outNode  struct {
		pos
		e expr
	}
	ifNode struct {
		pos
		conds  []expr
		bodies [][]node // len(conds) bodies, plus an else body when longer
	}
	forNode struct {
		pos
		targets []string
		iter    expr
		filter  expr
		body    []node
		els     []node
	}
	setNode struct {
		pos
		targets []string // several: tuple unpacking
		attr    string   // ns.attr = …
		e       expr
		body    []node // {% set x %}…{% endset %}
	}
	macroNode struct {
		pos
		name     string
		params   []string
		defaults []expr // per param, nil when none
		body     []node
	}
	callBlockNode struct {
		pos
		call expr
		body []node
	}
	loopCtlNode struct {
		pos
		brk bool
	}
	genNode struct{ body []node } // {% generation %}: renders its body
)

// Nodes of expressions.
type (
	expr any

	litExpr struct {
		pos
		v any
	}
	nameExpr struct {
		pos
		name string
	}
	listExpr struct {
		pos
		items []expr
		tuple bool
	}
	dictExpr struct {
		pos
		keys, vals []expr
	}
	attrExpr struct {
		pos
		x    expr
		name string
	}
	itemExpr struct {
		pos
		x, key expr
	}
	sliceExpr struct {
		pos
		x                 expr
		start, stop, step expr
	}
	callExpr struct {
		pos
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	filterExpr struct {
		pos
		x      expr
		name   string
		args   []expr
		kwargs []kwarg
	}
	testExpr struct {
		pos
		x    expr
		name string
		args []expr
		neg  bool
	}
	binExpr struct {
		pos
		op   string
		l, r expr
	}
	unaryExpr struct {
		pos
		op string
		x  expr
	}
	condExpr struct {
		pos
		cond, a, b expr // b nil: undefined
	}
)

type kwarg struct {
	name string
	e    expr
}

type parser struct {
	name  string
	toks  []token
	i     int
	depth int
	loops int // enclosing for bodies, for break and continue
}

// maxParseDepth bounds the nesting of blocks and expressions.
const maxParseDepth = 200

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxParseDepth {
		return p.errAt(p.peek(), "template nests too deep")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &Error{Name: p.name, Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == op
}

func (p *parser) isName(n string) bool {
	t := p.peek()
	return t.kind == tName && t.val == n
}

func (p *parser) expectOp(op string) error {
	if !p.isOp(op) {
		return p.errAt(p.peek(), "expected '%s', got %s", op, describe(p.peek()))
	}
	p.next()
	return nil
}

func (p *parser) expectName() (token, error) {
	t := p.peek()
	if t.kind != tName {
		return t, p.errAt(t, "expected a name, got %s", describe(t))
	}
	return p.next(), nil
}

func (p *parser) expectBlockEnd() error {
	t := p.peek()
	if t.kind != tBlockEnd {
		return p.errAt(t, "expected end of statement block, got %s", describe(t))
	}
	p.next()
	return nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of template"
	case tData:
		return "template data"
	case tBlockBegin:
		return "'{%'"
	case tBlockEnd:
		return "end of statement block"
	case tVarBegin:
		return "'{{'"
	case tVarEnd:
		return "end of print statement"
	case tName:
		return fmt.Sprintf("'%s'", t.val)
	case tString:
		return "string"
	case tInt, tFloat:
		return "number"
	}
	return fmt.Sprintf("'%s'", t.val)
}

// parseBody reads nodes until a block whose keyword is one of ends; it
// returns that keyword, leaving the parser after the keyword's name.
func (p *parser) parseBody(ends ...string) ([]node, string, error) {
	if err := p.enter(); err != nil {
		return nil, "", err
	}
	defer p.leave()
	var out []node
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			if len(ends) > 0 {
				return nil, "", p.errAt(t, "unexpected end of template; expected one of %v", ends)
			}
			return out, "", nil
		case tData:
			p.next()
			out = append(out, &textNode{t.val})
		case tVarBegin:
			p.next()
			e, err := p.parseExpr()
			if err != nil {
				return nil, "", err
			}
			if p.peek().kind != tVarEnd {
				return nil, "", p.errAt(p.peek(), "expected end of print statement, got %s", describe(p.peek()))
			}
			p.next()
			out = append(out, &outNode{pos{t.line, t.col}, e})
		case tBlockBegin:
			p.next()
			kw := p.peek()
			if kw.kind != tName {
				return nil, "", p.errAt(kw, "expected a statement name, got %s", describe(kw))
			}
			for _, e := range ends {
				if kw.val == e {
					p.next()
					return out, e, nil
				}
			}
			n, err := p.parseStmt(t)
			if err != nil {
				return nil, "", err
			}
			out = append(out, n)
		default:
			return nil, "", p.errAt(t, "unexpected %s", describe(t))
		}
	}
}

func (p *parser) parseStmt(begin token) (node, error) {
	kw := p.next()
	at := pos{kw.line, kw.col}
	switch kw.val {
	case "if":
		n := &ifNode{pos: at}
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		for {
			if err := p.expectBlockEnd(); err != nil {
				return nil, err
			}
			body, end, err := p.parseBody("elif", "else", "endif")
			if err != nil {
				return nil, err
			}
			n.conds = append(n.conds, cond)
			n.bodies = append(n.bodies, body)
			switch end {
			case "elif":
				if cond, err = p.parseExpr(); err != nil {
					return nil, err
				}
				continue
			case "else":
				if err := p.expectBlockEnd(); err != nil {
					return nil, err
				}
				body, _, err := p.parseBody("endif")
				if err != nil {
					return nil, err
				}
				n.bodies = append(n.bodies, body)
			}
			return n, p.expectBlockEnd()
		}
	case "for":
		n := &forNode{pos: at}
		for {
			t, err := p.expectName()
			if err != nil {
				return nil, err
			}
			n.targets = append(n.targets, t.val)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
		if !p.isName("in") {
			return nil, p.errAt(p.peek(), "expected 'in', got %s", describe(p.peek()))
		}
		p.next()
		iter, err := p.parseCond(false)
		if err != nil {
			return nil, err
		}
		n.iter = iter
		if p.isName("if") {
			p.next()
			if n.filter, err = p.parseCond(true); err != nil {
				return nil, err
			}
		}
		if p.isName("recursive") {
			return nil, p.errAt(p.peek(), "recursive loops are not supported")
		}
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		p.loops++
		body, end, err := p.parseBody("else", "endfor")
		p.loops--
		if err != nil {
			return nil, err
		}
		n.body = body
		if end == "else" {
			if err := p.expectBlockEnd(); err != nil {
				return nil, err
			}
			if n.els, _, err = p.parseBody("endfor"); err != nil {
				return nil, err
			}
		}
		return n, p.expectBlockEnd()
	case "set":
		n := &setNode{pos: at}
		t, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.targets = []string{t.val}
		if p.isOp(".") {
			p.next()
			a, err := p.expectName()
			if err != nil {
				return nil, err
			}
			n.attr = a.val
		} else {
			for p.isOp(",") {
				p.next()
				t, err := p.expectName()
				if err != nil {
					return nil, err
				}
				n.targets = append(n.targets, t.val)
			}
		}
		if p.peek().kind == tBlockEnd && len(n.targets) == 1 && n.attr == "" {
			p.next()
			body, _, err := p.parseBody("endset")
			if err != nil {
				return nil, err
			}
			n.body = body
			if n.body == nil {
				n.body = []node{}
			}
			return n, p.expectBlockEnd()
		}
		if err := p.expectOp("="); err != nil {
			return nil, err
		}
		if n.e, err = p.parseTuple(); err != nil {
			return nil, err
		}
		return n, p.expectBlockEnd()
	case "macro":
		n := &macroNode{pos: at}
		t, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.name = t.val
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		for !p.isOp(")") {
			if len(n.params) > 0 {
				if err := p.expectOp(","); err != nil {
					return nil, err
				}
				if p.isOp(")") {
					break
				}
			}
			a, err := p.expectName()
			if err != nil {
				return nil, err
			}
			var def expr
			if p.isOp("=") {
				p.next()
				if def, err = p.parseExpr(); err != nil {
					return nil, err
				}
			} else if len(n.defaults) > 0 && n.defaults[len(n.defaults)-1] != nil {
				return nil, p.errAt(a, "non-default argument follows default argument")
			}
			n.params = append(n.params, a.val)
			n.defaults = append(n.defaults, def)
		}
		p.next()
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		loops := p.loops
		p.loops = 0
		n.body, _, err = p.parseBody("endmacro")
		p.loops = loops
		if err != nil {
			return nil, err
		}
		return n, p.expectBlockEnd()
	case "call":
		n := &callBlockNode{pos: at}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if _, ok := e.(*callExpr); !ok {
			return nil, p.errAt(kw, "expected a call after 'call'")
		}
		n.call = e
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		loops := p.loops
		p.loops = 0
		n.body, _, err = p.parseBody("endcall")
		p.loops = loops
		if err != nil {
			return nil, err
		}
		return n, p.expectBlockEnd()
	case "break", "continue":
		if p.loops == 0 {
			return nil, p.errAt(kw, "'%s' outside a loop", kw.val)
		}
		return &loopCtlNode{at, kw.val == "break"}, p.expectBlockEnd()
	case "generation":
		if err := p.expectBlockEnd(); err != nil {
			return nil, err
		}
		body, _, err := p.parseBody("endgeneration")
		if err != nil {
			return nil, err
		}
		return &genNode{body}, p.expectBlockEnd()
	}
	return nil, p.errAt(kw, "unknown statement '%s'", kw.val)
}

// parseTuple: an expression, or several separated by commas (a list).
func (p *parser) parseTuple() (expr, error) {
	first := p.peek()
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if !p.isOp(",") {
		return e, nil
	}
	items := []expr{e}
	for p.isOp(",") {
		p.next()
		if p.peek().kind == tBlockEnd || p.peek().kind == tVarEnd {
			break
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	return &listExpr{pos{first.line, first.col}, items, true}, nil
}

func (p *parser) parseExpr() (expr, error) { return p.parseCond(true) }

// parseCond parses `a if c else b` (withCond) or just an or-expression.
func (p *parser) parseCond(withCond bool) (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	e, err := p.parseOr()
	if err != nil || !withCond {
		return e, err
	}
	for p.isName("if") {
		t := p.next()
		c, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var b expr
		if p.isName("else") {
			p.next()
			if b, err = p.parseCond(true); err != nil {
				return nil, err
			}
		}
		e = &condExpr{pos{t.line, t.col}, c, e, b}
	}
	return e, nil
}

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	for err == nil && p.isName("or") {
		t := p.next()
		var r expr
		if r, err = p.parseAnd(); err == nil {
			l = &binExpr{pos{t.line, t.col}, "or", l, r}
		}
	}
	return l, err
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseNot()
	for err == nil && p.isName("and") {
		t := p.next()
		var r expr
		if r, err = p.parseNot(); err == nil {
			l = &binExpr{pos{t.line, t.col}, "and", l, r}
		}
	}
	return l, err
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		t := p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{pos{t.line, t.col}, "not", x}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	l, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op := ""
		switch {
		case t.kind == tOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == ">" || t.val == "<=" || t.val == ">="):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.toks[p.i+1].kind == tName && p.toks[p.i+1].val == "in":
			op = "not in"
			p.next()
			p.next()
		default:
			return l, nil
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		l = &binExpr{pos{t.line, t.col}, op, l, r}
	}
}

func (p *parser) parseMath1() (expr, error) {
	l, err := p.parseConcat()
	for err == nil && (p.isOp("+") || p.isOp("-")) {
		t := p.next()
		var r expr
		if r, err = p.parseConcat(); err == nil {
			l = &binExpr{pos{t.line, t.col}, t.val, l, r}
		}
	}
	return l, err
}

func (p *parser) parseConcat() (expr, error) {
	l, err := p.parseMath2()
	for err == nil && p.isOp("~") {
		t := p.next()
		var r expr
		if r, err = p.parseMath2(); err == nil {
			l = &binExpr{pos{t.line, t.col}, "~", l, r}
		}
	}
	return l, err
}

func (p *parser) parseMath2() (expr, error) {
	l, err := p.parsePow()
	for err == nil && (p.isOp("*") || p.isOp("/") || p.isOp("//") || p.isOp("%")) {
		t := p.next()
		var r expr
		if r, err = p.parsePow(); err == nil {
			l = &binExpr{pos{t.line, t.col}, t.val, l, r}
		}
	}
	return l, err
}

func (p *parser) parsePow() (expr, error) {
	l, err := p.parseUnary(true)
	for err == nil && p.isOp("**") {
		t := p.next()
		var r expr
		if r, err = p.parseUnary(true); err == nil {
			l = &binExpr{pos{t.line, t.col}, "**", l, r}
		}
	}
	return l, err
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	t := p.peek()
	var x expr
	var err error
	if t.kind == tOp && (t.val == "-" || t.val == "+") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		p.next()
		if x, err = p.parseUnary(false); err != nil {
			return nil, err
		}
		x = &unaryExpr{pos{t.line, t.col}, t.val, x}
	} else if x, err = p.parsePrimary(); err != nil {
		return nil, err
	}
	if x, err = p.parsePostfix(x); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilterExpr(x)
	}
	return x, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.next()
	at := pos{t.line, t.col}
	switch t.kind {
	case tName:
		switch t.val {
		case "true", "True":
			return &litExpr{at, true}, nil
		case "false", "False":
			return &litExpr{at, false}, nil
		case "none", "None":
			return &litExpr{at, nil}, nil
		}
		return &nameExpr{at, t.val}, nil
	case tString:
		s := t.val
		for p.peek().kind == tString {
			s += p.next().val
		}
		return &litExpr{at, s}, nil
	case tInt:
		return &litExpr{at, t.num}, nil
	case tFloat:
		return &litExpr{at, t.fnum}, nil
	case tOp:
		switch t.val {
		case "(":
			if p.isOp(")") {
				p.next()
				return &listExpr{at, nil, true}, nil
			}
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") {
				items := []expr{e}
				for p.isOp(",") {
					p.next()
					if p.isOp(")") {
						break
					}
					e, err := p.parseExpr()
					if err != nil {
						return nil, err
					}
					items = append(items, e)
				}
				e = &listExpr{at, items, true}
			}
			return e, p.expectOp(")")
		case "[":
			l := &listExpr{pos: at}
			for !p.isOp("]") {
				if len(l.items) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.isOp("]") {
						break
					}
				}
				e, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, e)
			}
			p.next()
			return l, nil
		case "{":
			d := &dictExpr{pos: at}
			for !p.isOp("}") {
				if len(d.keys) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.isOp("}") {
						break
					}
				}
				k, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys = append(d.keys, k)
				d.vals = append(d.vals, v)
			}
			p.next()
			return d, nil
		}
	}
	return nil, p.errAt(t, "unexpected %s", describe(t))
}

func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		t := p.peek()
		at := pos{t.line, t.col}
		switch {
		case p.isOp("."):
			p.next()
			n := p.next()
			switch n.kind {
			case tName:
				x = &attrExpr{at, x, n.val}
			case tInt:
				x = &itemExpr{at, x, &litExpr{at, n.num}}
			default:
				return nil, p.errAt(n, "expected a name after '.', got %s", describe(n))
			}
		case p.isOp("["):
			p.next()
			var parts [3]expr
			nparts, colons := 0, 0
			for {
				if p.isOp("]") {
					break
				}
				if p.isOp(":") {
					p.next()
					colons++
					if colons > 2 {
						return nil, p.errAt(t, "too many ':' in subscript")
					}
					continue
				}
				if parts[colons] != nil {
					return nil, p.errAt(p.peek(), "expected ']' or ':', got %s", describe(p.peek()))
				}
				e, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				parts[colons] = e
				nparts++
			}
			p.next()
			if colons == 0 {
				if parts[0] == nil {
					return nil, p.errAt(t, "empty subscript")
				}
				x = &itemExpr{at, x, parts[0]}
			} else {
				x = &sliceExpr{at, x, parts[0], parts[1], parts[2]}
			}
		case p.isOp("("):
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{posOf(x), x, args, kwargs}
		default:
			return x, nil
		}
	}
}

func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	if err := p.expectOp("("); err != nil {
		return nil, nil, err
	}
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if len(args)+len(kwargs) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.isOp(")") {
				break
			}
		}
		if p.peek().kind == tName && p.toks[p.i+1].kind == tOp && p.toks[p.i+1].val == "=" {
			n := p.next()
			p.next()
			e, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{n.val, e})
			continue
		}
		if len(kwargs) > 0 {
			return nil, nil, p.errAt(p.peek(), "positional argument follows keyword argument")
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, nil, err
		}
		args = append(args, e)
	}
	p.next()
	return args, kwargs, nil
}

func (p *parser) parseFilterExpr(x expr) (expr, error) {
	for {
		t := p.peek()
		at := pos{t.line, t.col}
		switch {
		case p.isOp("|"):
			p.next()
			n, err := p.expectName()
			if err != nil {
				return nil, err
			}
			f := &filterExpr{pos: pos{n.line, n.col}, x: x, name: n.val}
			if p.isOp("(") {
				if f.args, f.kwargs, err = p.parseArgs(); err != nil {
					return nil, err
				}
			}
			x = f
		case p.isName("is"):
			p.next()
			te := &testExpr{pos: at, x: x}
			if p.isName("not") {
				p.next()
				te.neg = true
			}
			n, err := p.expectName()
			if err != nil {
				return nil, err
			}
			te.name = n.val
			nt := p.peek()
			if p.isOp("(") {
				args, kwargs, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				if len(kwargs) > 0 {
					return nil, p.errAt(n, "tests take no keyword arguments here")
				}
				te.args = args
			} else if (nt.kind == tName && nt.val != "else" && nt.val != "or" && nt.val != "and" && nt.val != "is" && nt.val != "if" && nt.val != "in" && nt.val != "not") ||
				nt.kind == tString || nt.kind == tInt || nt.kind == tFloat || (nt.kind == tOp && (nt.val == "[" || nt.val == "{")) {
				a, err := p.parsePrimary()
				if err != nil {
					return nil, err
				}
				if a, err = p.parsePostfix(a); err != nil {
					return nil, err
				}
				te.args = []expr{a}
			}
			x = te
		case p.isOp("("):
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{at, x, args, kwargs}
		default:
			return x, nil
		}
	}
}

// Template is a parsed template, safe for concurrent Render calls.
type Template struct {
	name string
	body []node
}

// Parse parses src, a Jinja template, under the environment transformers
// renders chat templates with (trim_blocks and lstrip_blocks on, trailing
// newline dropped). name appears in errors.
func Parse(name, src string) (t *Template, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, &Error{Name: name, Line: 1, Col: 1, Msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	toks, err := lex(name, src)
	if err != nil {
		return nil, err
	}
	p := &parser{name: name, toks: toks}
	body, _, err := p.parseBody()
	if err != nil {
		return nil, err
	}
	if err := checkNames(name, body, false); err != nil {
		return nil, err
	}
	return &Template{name: name, body: body}, nil
}

// checkNames reports an unknown filter or test as Jinja's compiler does:
// at parse time, except inside an if statement or a conditional expression
// (soft), where it is an error only if it runs.
func checkNames(name string, nodes []node, soft bool) error {
	for _, n := range nodes {
		var err error
		switch n := n.(type) {
		case *outNode:
			err = checkExpr(name, n.e, soft)
		case *ifNode:
			for _, c := range n.conds {
				if err = checkExpr(name, c, true); err != nil {
					return err
				}
			}
			for _, b := range n.bodies {
				if err = checkNames(name, b, true); err != nil {
					return err
				}
			}
		case *forNode:
			if err = checkExpr(name, n.iter, soft); err == nil && n.filter != nil {
				err = checkExpr(name, n.filter, false)
			}
			if err == nil {
				err = checkNames(name, n.body, false)
			}
			if err == nil {
				err = checkNames(name, n.els, false)
			}
		case *setNode:
			if n.e != nil {
				err = checkExpr(name, n.e, soft)
			} else {
				err = checkNames(name, n.body, false)
			}
		case *macroNode:
			for _, d := range n.defaults {
				if d != nil {
					if err = checkExpr(name, d, false); err != nil {
						return err
					}
				}
			}
			err = checkNames(name, n.body, false)
		case *callBlockNode:
			if err = checkExpr(name, n.call, soft); err == nil {
				err = checkNames(name, n.body, false)
			}
		case *genNode:
			err = checkNames(name, n.body, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkExpr(name string, e expr, soft bool) error {
	var subs []expr
	switch e := e.(type) {
	case *filterExpr:
		if _, ok := filters[e.name]; !ok && !soft {
			return &Error{Name: name, Line: e.line, Col: e.col, Msg: fmt.Sprintf("no filter named '%s'", e.name)}
		}
		subs = append([]expr{e.x}, e.args...)
		for _, k := range e.kwargs {
			subs = append(subs, k.e)
		}
	case *testExpr:
		if _, ok := tests[e.name]; !ok && !soft {
			return &Error{Name: name, Line: e.line, Col: e.col, Msg: fmt.Sprintf("no test named '%s'", e.name)}
		}
		subs = append([]expr{e.x}, e.args...)
	case *condExpr:
		soft = true
		subs = []expr{e.cond, e.a, e.b}
	case *listExpr:
		subs = e.items
	case *dictExpr:
		subs = append(append([]expr{}, e.keys...), e.vals...)
	case *attrExpr:
		subs = []expr{e.x}
	case *itemExpr:
		subs = []expr{e.x, e.key}
	case *sliceExpr:
		subs = []expr{e.x, e.start, e.stop, e.step}
	case *callExpr:
		subs = append([]expr{e.fn}, e.args...)
		for _, k := range e.kwargs {
			subs = append(subs, k.e)
		}
	case *binExpr:
		subs = []expr{e.l, e.r}
	case *unaryExpr:
		subs = []expr{e.x}
	}
	for _, s := range subs {
		if s == nil {
			continue
		}
		if err := checkExpr(name, s, soft); err != nil {
			return err
		}
	}
	return nil
}
