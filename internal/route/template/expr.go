package template

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/tandem-run/tandem/internal/typo"
)

// Cost limits of one expression.
const (
	// MaxNodes caps an expression's syntax tree at compile time.
	MaxNodes = 500
	// MemoryBudget caps what one run of an expression may allocate in
	// expr's VM (arrays, maps, ranges), in expr's units (about one per
	// element).
	MemoryBudget = 1_000_000
)

// Names the compiler rewrites to; a user cannot write them ($ is not an
// identifier character in expr, apart from expr's own $env).
const (
	fnFetch    = "$fetch"  // strict member access
	fnLookup   = "$lookup" // lenient member access (nil when missing)
	varNow     = "$now"    // the render's clock, replacing now()
	fnDefault  = "default" // default(x, y)
	identSteps = "steps"
	identReq   = "request"
	identMsg   = "message"
	identEnv   = "$env"    // expr's whole-environment variable: refused
	propHeader = "headers" // a headers map: literal keys are canonicalized
	maxPathLen = 200       // bounds the path text kept for errors
	stepsHint  = "steps.<name>"
)

// compileEnv declares the names expressions see; the values are stand-ins
// for type checking.
var compileEnv = map[string]any{
	identReq:   map[string]any{},
	identMsg:   map[string]any{},
	identSteps: map[string]any{},
	varNow:     time.Time{},
}

var exprOptions = []expr.Option{
	expr.Env(compileEnv),
	expr.DisableBuiltin("now"),
	expr.DisableBuiltin("repeat"),
	expr.Function(fnFetch, strictFetch, new(func(any, any, string) any)),
	expr.Function(fnLookup, lenientFetch, new(func(any, any, string) any)),
	expr.Function(fnDefault, func(p ...any) (any, error) {
		if p[0] == nil {
			return p[1], nil
		}
		return p[0], nil
	}, new(func(any, any) any)),
	expr.MaxNodes(MaxNodes),
}

// expression is one compiled {{ }} part.
type expression struct {
	src  string
	prog *vm.Program
}

// compile checks the expression against sc and compiles it. It returns
// the steps it reads and its problems.
func (e *expression) compile(sc *Scope) (reads []string, errs []string) {
	tree, err := parser.Parse(e.src)
	if err != nil {
		return nil, []string{exprMessage(err)}
	}
	ck := &namesChecker{sc: sc, bases: map[ast.Node]bool{}}
	ast.Walk(&tree.Node, ck)
	for _, id := range ck.stepsIdents {
		if ck.bases[id] {
			continue
		}
		if sc != nil && sc.All {
			ck.reads = append(ck.reads, "*")
			continue
		}
		ck.errs = append(ck.errs, "write "+stepsHint+" to read a step's result; steps alone is not available here")
	}
	if len(ck.errs) > 0 {
		return nil, ck.errs
	}
	opts := append(exprOptions[:len(exprOptions):len(exprOptions)], expr.Patch(&strictPatcher{}))
	prog, err := expr.Compile(e.src, opts...)
	if err != nil {
		return nil, []string{exprMessage(err)}
	}
	e.prog = prog
	return ck.reads, nil
}

// exprMessage turns an expr error into one line.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Column > 0 {
			return fmt.Sprintf("%s (at column %d)", fe.Message, fe.Column+1)
		}
		return fe.Message
	}
	return err.Error()
}

// namesChecker checks the names an expression reads, on its tree as
// parsed: the roots' fields, and which steps it reads.
type namesChecker struct {
	sc          *Scope
	errs        []string
	reads       []string
	bases       map[ast.Node]bool // identifiers used as the base of a member
	stepsIdents []ast.Node
}

var (
	requestFields = map[string]bool{"body": true, "headers": true, "query": true}
	messageFields = map[string]bool{"id": true}
	stepFields    = map[string]bool{"body": true, "status": true, "headers": true}
)

func (ck *namesChecker) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case identEnv:
			ck.errs = append(ck.errs, "$env is not available: use request, message and steps")
		case identSteps:
			ck.stepsIdents = append(ck.stepsIdents, n)
		}
	case *ast.MemberNode:
		prop, literal := n.Property.(*ast.StringNode)
		if id, ok := n.Node.(*ast.IdentifierNode); ok {
			ck.bases[id] = true
			switch id.Value {
			case identReq:
				if !literal || !requestFields[prop.Value] {
					ck.errs = append(ck.errs, fmt.Sprintf("request has no field %s: use request.body, request.headers or request.query", propName(n.Property)))
				}
			case identMsg:
				if !literal || !messageFields[prop.Value] {
					ck.errs = append(ck.errs, fmt.Sprintf("message has no field %s: use message.id", propName(n.Property)))
				}
			case identSteps:
				if !literal {
					ck.errs = append(ck.errs, "write "+stepsHint+" with a step name, not a computed index")
					return
				}
				ck.step(prop.Value)
			}
			return
		}
		// steps.<name>.<field>
		if inner, ok := n.Node.(*ast.MemberNode); ok {
			if id, ok := inner.Node.(*ast.IdentifierNode); ok && id.Value == identSteps {
				if name, ok := inner.Property.(*ast.StringNode); ok && (!literal || !stepFields[prop.Value]) {
					ck.errs = append(ck.errs, fmt.Sprintf("steps.%s has no field %s: use body, status or headers", name.Value, propName(n.Property)))
				}
			}
		}
	}
}

// step checks that the template may read step name.
func (ck *namesChecker) step(name string) {
	known := false
	if ck.sc != nil {
		for _, s := range ck.sc.Steps {
			if s == name {
				known = true
				break
			}
		}
	}
	switch {
	case !known:
		msg := fmt.Sprintf("unknown step %q", name)
		if ck.sc != nil {
			if s := typo.Closest(name, ck.sc.Steps); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
		}
		ck.errs = append(ck.errs, msg)
	case !ck.sc.visible(name):
		msg := fmt.Sprintf("step %q is not in after (directly or through another step)", name)
		if ck.sc.Hint != "" {
			msg += ": " + ck.sc.Hint
		}
		ck.errs = append(ck.errs, msg)
	default:
		ck.reads = append(ck.reads, name)
	}
}

func propName(n ast.Node) string {
	if s, ok := n.(*ast.StringNode); ok {
		return strconv.Quote(s.Value)
	}
	return n.String()
}

// strictPatcher rewrites the compiled tree so a missing field is an
// error: every member access becomes $fetch(base, key, path), which fails
// on an absent key; inside default(x, _), on the left of ??, and in an
// optional chain it becomes $lookup, which yields nil instead. It also
// turns now() into the render's clock and canonicalizes literal header
// names. expr walks the tree children first, so a node's children are
// already rewritten when it is visited.
type strictPatcher struct{}

func (p *strictPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		if n.Method {
			return
		}
		if s, ok := n.Property.(*ast.StringNode); ok && isHeaders(n.Node) {
			s.Value = http.CanonicalHeaderKey(s.Value)
		}
		fn := fnFetch
		if n.Optional {
			fn = fnLookup
		}
		ast.Patch(node, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fn},
			Arguments: []ast.Node{n.Node, n.Property, &ast.StringNode{Value: pathText(n)}},
		})
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		switch {
		case id.Value == "now" && len(n.Arguments) == 0:
			ast.Patch(node, &ast.IdentifierNode{Value: varNow})
		case id.Value == fnDefault && len(n.Arguments) > 0:
			lenient(n.Arguments[0])
		}
	case *ast.BinaryNode:
		if n.Operator == "??" {
			lenient(n.Left)
		}
	case *ast.ChainNode:
		lenient(n.Node)
	}
}

// isHeaders reports whether n reads a headers map of the env
// (request.headers or steps.<name>.headers), already rewritten to a fetch;
// a "headers" field inside a JSON body is not one.
func isHeaders(n ast.Node) bool {
	base, prop, ok := fetchParts(n)
	if !ok || prop != propHeader {
		return false
	}
	if id, ok := base.(*ast.IdentifierNode); ok {
		return id.Value == identReq
	}
	root, _, ok := fetchParts(base) // steps.<name>
	id, isIdent := root.(*ast.IdentifierNode)
	return ok && isIdent && id.Value == identSteps
}

// fetchParts splits a rewritten member access into its base and literal
// property.
func fetchParts(n ast.Node) (ast.Node, string, bool) {
	c, ok := n.(*ast.CallNode)
	if !ok || len(c.Arguments) != 3 {
		return nil, "", false
	}
	if id, ok := c.Callee.(*ast.IdentifierNode); !ok || id.Value != fnFetch && id.Value != fnLookup {
		return nil, "", false
	}
	s, ok := c.Arguments[1].(*ast.StringNode)
	if !ok {
		return nil, "", false
	}
	return c.Arguments[0], s.Value, true
}

// pathText is how a member access reads in an error: request.body.total.
func pathText(n *ast.MemberNode) string {
	base := "(value)"
	switch b := n.Node.(type) {
	case *ast.IdentifierNode:
		base = b.Value
	case *ast.PointerNode:
		base = "#"
	case *ast.CallNode:
		if len(b.Arguments) == 3 {
			if s, ok := b.Arguments[2].(*ast.StringNode); ok {
				base = s.Value
			}
		}
	}
	var out string
	switch p := n.Property.(type) {
	case *ast.StringNode:
		if validIdent(p.Value) {
			out = base + "." + p.Value
		} else {
			out = base + "[" + strconv.Quote(p.Value) + "]"
		}
	case *ast.IntegerNode:
		out = base + "[" + strconv.Itoa(p.Value) + "]"
	default:
		out = base + "[...]"
	}
	if len(out) > maxPathLen {
		out = "..." + out[len(out)-maxPathLen:]
	}
	return out
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// lenient turns every strict fetch under n into a lenient one.
func lenient(n ast.Node) {
	ast.Walk(&n, lenientVisitor{})
}

type lenientVisitor struct{}

func (lenientVisitor) Visit(node *ast.Node) {
	if c, ok := (*node).(*ast.CallNode); ok {
		if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == fnFetch {
			id.Value = fnLookup
		}
	}
}

// MissingError is a render-time failure to read a field.
type MissingError struct {
	// Path is the member access as written, e.g. request.body.total.
	Path string
	// Reason says why: "is missing", "is out of range", ...
	Reason string
}

// Error renders "request.body.total is missing".
func (e *MissingError) Error() string { return e.Path + " " + e.Reason }

// strictFetch reads key of from, failing when it is not there.
func strictFetch(p ...any) (any, error) {
	v, ok, reason := fetch(p[0], p[1])
	if !ok {
		path, _ := p[2].(string)
		return nil, &MissingError{Path: path, Reason: reason}
	}
	return v, nil
}

// lenientFetch reads key of from, or yields nil.
func lenientFetch(p ...any) (any, error) {
	v, _, _ := fetch(p[0], p[1])
	return v, nil
}

// fetch reads key of from. JSON values (objects, arrays) and the env's own
// maps take the fast path; anything else goes through expr's runtime.
func fetch(from, key any) (v any, ok bool, reason string) {
	switch m := from.(type) {
	case nil:
		return nil, false, "cannot be read: its parent is null"
	case map[string]any:
		k, isString := key.(string)
		if !isString {
			return nil, false, fmt.Sprintf("cannot be read: an object's key must be a string, not %T", key)
		}
		v, ok = m[k]
		if !ok {
			return nil, false, "is missing"
		}
		return v, true, ""
	case []any:
		i, isInt := toIndex(key)
		if !isInt {
			return nil, false, fmt.Sprintf("cannot be read: a list's index must be a whole number, not %T", key)
		}
		if i < 0 {
			i += len(m)
		}
		if i < 0 || i >= len(m) {
			return nil, false, fmt.Sprintf("is out of range (the list has %d items)", len(m))
		}
		return m[i], true, ""
	case string:
		return nil, false, "cannot be read: its parent is a string, not an object"
	case bool, int, float64:
		return nil, false, fmt.Sprintf("cannot be read: its parent is a %s, not an object", kindWord(m))
	}
	return fetchOther(from, key)
}

// fetchOther uses expr's reflection-based fetch, turning its panic into a
// failure.
func fetchOther(from, key any) (v any, ok bool, reason string) {
	defer func() {
		if r := recover(); r != nil {
			v, ok, reason = nil, false, fmt.Sprintf("cannot be read: %v", r)
		}
	}()
	return runtime.Fetch(from, key), true, ""
}

func toIndex(k any) (int, bool) {
	switch x := k.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	}
	return 0, false
}

func kindWord(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	default:
		return "number"
	}
}
