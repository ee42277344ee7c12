package template

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Scope says what a template's expressions may read.
type Scope struct {
	// Steps names every step of the route, so a misspelt step is told
	// apart from one the template may not read.
	Steps []string
	// Visible holds the steps whose results the template may read. Nil
	// means none, unless All is set.
	Visible map[string]bool
	// All makes every step visible, and allows a bare `steps` (a response
	// template sees the whole message).
	All bool
	// Hint ends the message about a step that is not visible, e.g. "add it
	// to after to use its answer".
	Hint string
}

func (sc *Scope) visible(step string) bool {
	return sc != nil && (sc.All || sc.Visible[step])
}

// Error is one problem in a template, found at compile time.
type Error struct {
	// Path locates the offending string inside the compiled value: mapping
	// keys (string) and list indexes (int). Empty for the value itself.
	Path []any
	// Msg says what is wrong, naming the expression.
	Msg string
}

// Error renders "path: message".
func (e *Error) Error() string {
	if len(e.Path) == 0 {
		return e.Msg
	}
	return PathString(e.Path) + ": " + e.Msg
}

// Errors are every problem found in one template.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// PathString renders a path as `a.b[0]["odd key"]`.
func PathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(k) + "]")
		case string:
			if plainKey(k) {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(k)
			} else {
				b.WriteString("[" + strconv.Quote(k) + "]")
			}
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// part is a piece of a template string: literal text, or an expression.
type part struct {
	text string
	expr *expression // nil for text
}

// split cuts s into text and {{ expression }} parts. A "}}" inside a
// quoted string of the expression does not end it.
func split(s string) ([]part, error) {
	var parts []part
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				parts = append(parts, part{text: s})
			}
			return parts, nil
		}
		if i > 0 {
			parts = append(parts, part{text: s[:i]})
		}
		end := closing(s[i+2:])
		if end < 0 {
			return nil, fmt.Errorf("unclosed {{ in %s: end the expression with }}", strconv.Quote(clip(s[i:])))
		}
		src := strings.TrimSpace(s[i+2 : i+2+end])
		if src == "" {
			return nil, fmt.Errorf("empty {{ }}")
		}
		parts = append(parts, part{expr: &expression{src: src}})
		s = s[i+2+end+2:]
	}
}

// closing returns the index of the "}}" that ends an expression, skipping
// quoted strings; -1 if there is none.
func closing(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// HasExpression reports whether s holds a {{ }} part, i.e. whether it is a
// template rather than plain text.
func HasExpression(s string) bool { return strings.Contains(s, "{{") }

// String is a compiled string template: headers, query values, a path,
// a text body, a response status.
type String struct {
	src   string
	parts []part
	reads []string
}

// CompileString compiles s. Errors come back as Errors.
func CompileString(s string, sc *Scope) (*String, error) {
	c := &compiler{sc: sc}
	t := c.str(s, nil)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	t.reads = c.readList()
	return t, nil
}

// Source returns the template as written.
func (t *String) Source() string { return t.src }

// Expression reports whether the template is exactly one {{ expression }}
// with no text around it.
func (t *String) Expression() bool { return len(t.parts) == 1 && t.parts[0].expr != nil }

// Reads names the steps whose results the template reads, sorted; "*"
// when it reads the bare `steps`.
func (t *String) Reads() []string { return t.reads }

// Value is a compiled value template: a body, a response body.
type Value struct {
	root  node
	reads []string
}

// CompileValue compiles a YAML-decoded value (mappings, lists, strings,
// numbers, booleans, null). Errors come back as Errors, each with its path.
func CompileValue(v any, sc *Scope) (*Value, error) {
	c := &compiler{sc: sc}
	root := c.value(v, nil)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return &Value{root: root, reads: c.readList()}, nil
}

// Reads names the steps whose results the template reads, sorted; "*"
// when it reads the bare `steps`.
func (t *Value) Reads() []string { return t.reads }

// compiler gathers errors and the steps read while compiling one template.
type compiler struct {
	sc    *Scope
	errs  Errors
	reads map[string]bool
}

func (c *compiler) errf(path []any, format string, args ...any) {
	c.errs = append(c.errs, &Error{Path: slices.Clone(path), Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) readList() []string {
	out := make([]string, 0, len(c.reads))
	for s := range c.reads {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// str compiles one template string found at path.
func (c *compiler) str(s string, path []any) *String {
	t := &String{src: s}
	parts, err := split(s)
	if err != nil {
		c.errf(path, "%v", err)
		return t
	}
	for i := range parts {
		e := parts[i].expr
		if e == nil {
			continue
		}
		reads, errs := e.compile(c.sc)
		for _, msg := range errs {
			c.errf(path, "{{ %s }}: %s", clip(e.src), msg)
		}
		for _, r := range reads {
			if c.reads == nil {
				c.reads = map[string]bool{}
			}
			c.reads[r] = true
		}
	}
	t.parts = parts
	return t
}

// value compiles v at path into a node; constant subtrees become literals.
func (c *compiler) value(v any, path []any) node {
	switch x := v.(type) {
	case nil:
		return literal("null")
	case bool:
		return literal(strconv.FormatBool(x))
	case int:
		return literal(strconv.Itoa(x))
	case int64:
		return literal(strconv.FormatInt(x, 10))
	case uint64:
		return literal(strconv.FormatUint(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			c.errf(path, "%v is not a JSON number", x)
			return literal("null")
		}
		b, err := appendJSON(nil, x)
		if err != nil {
			c.errf(path, "%v", err)
		}
		return literal(b)
	case string:
		if !HasExpression(x) {
			return literal(appendString(nil, x))
		}
		t := c.str(x, path)
		if t.Expression() {
			return &exprNode{e: t.parts[0].expr}
		}
		return &interpNode{parts: t.parts}
	case []any:
		n := &arrayNode{items: make([]node, len(x))}
		for i, item := range x {
			n.items[i] = c.value(item, append(path, i))
		}
		return n.fold()
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		return c.object(keys, func(k string) any { return x[k] }, path)
	case map[any]any:
		keys := make([]string, 0, len(x))
		orig := make(map[string]any, len(x))
		for k, val := range x {
			ks := fmt.Sprint(k)
			keys = append(keys, ks)
			orig[ks] = val
		}
		return c.object(keys, func(k string) any { return orig[k] }, path)
	}
	c.errf(path, "unsupported value of type %T", v)
	return literal("null")
}

// object compiles a mapping with its keys sorted, so output is stable.
func (c *compiler) object(keys []string, get func(string) any, path []any) node {
	sort.Strings(keys)
	n := &objectNode{keys: make([][]byte, len(keys)), vals: make([]node, len(keys))}
	for i, k := range keys {
		key := appendString(nil, k)
		n.keys[i] = append(key, ':')
		n.vals[i] = c.value(get(k), append(path, k))
	}
	n.names = keys
	return n.fold()
}
