package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/tandem-run/tandem/internal/typo"
)

// The schema walk checks the YAML tree against the Go types before the
// decoder runs. It reports every unknown key and every value of the wrong
// shape at once (the decoder stops at the first), and it builds the index
// from key path to line that placed errors need later. It prunes what it
// reports (a mapping entry is removed, a list item becomes null) and marks
// its path failed, so the decoder and validation still run on the rest:
// one pass reports every problem, and none twice.

const (
	maxNodes = 100_000 // bounds alias expansion ("billion laughs")
	maxDepth = 100
)

var (
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
	respondType  = reflect.TypeFor[Respond]()
)

type schemaWalker struct {
	c       *collector
	aliases map[*ast.AliasNode]ast.Node
	active  map[ast.Node]bool // anchors being expanded, to stop cycles
	nodes   int
	tooBig  bool
}

// collectAliases maps each alias to the anchor defined before it, walking
// the document in order as YAML requires.
func collectAliases(body ast.Node) (map[*ast.AliasNode]ast.Node, []*ast.AliasNode) {
	v := &aliasVisitor{anchors: map[string]ast.Node{}, aliases: map[*ast.AliasNode]ast.Node{}}
	ast.Walk(v, body)
	return v.aliases, v.unknown
}

type aliasVisitor struct {
	anchors map[string]ast.Node
	aliases map[*ast.AliasNode]ast.Node
	unknown []*ast.AliasNode
}

func (v *aliasVisitor) Visit(n ast.Node) ast.Visitor {
	switch x := n.(type) {
	case *ast.AnchorNode:
		if x.Name != nil {
			v.anchors[x.Name.String()] = x.Value
		}
	case *ast.AliasNode:
		if x.Value == nil {
			v.unknown = append(v.unknown, x)
			return v
		}
		if t, ok := v.anchors[x.Value.String()]; ok && t != nil {
			v.aliases[x] = t
		} else {
			v.unknown = append(v.unknown, x)
		}
	}
	return v
}

// nodeStart is where a node is written: a block mapping starts at its
// first key, not at its first ":".
func nodeStart(n ast.Node) pos {
	switch x := n.(type) {
	case nil:
		return pos{}
	case *ast.MappingNode:
		if len(x.Values) > 0 && !x.IsFlowStyle {
			return nodeStart(x.Values[0].Key)
		}
		return tokenPos(x.Start)
	case *ast.MappingValueNode:
		return nodeStart(x.Key)
	case *ast.AnchorNode:
		return tokenPos(x.Start)
	case *ast.AliasNode:
		return tokenPos(x.Start)
	case *ast.TagNode:
		return tokenPos(x.Start)
	case *ast.MappingKeyNode:
		return tokenPos(x.Start)
	case *ast.LiteralNode:
		return tokenPos(x.Start)
	}
	return tokenPos(n.GetToken())
}

// deref follows anchors, tags and aliases; it reports unknown or cyclic
// aliases. done must be called when the caller has finished with the node.
func (w *schemaWalker) deref(n ast.Node, path string) (ast.Node, func()) {
	var entered []ast.Node
	done := func() {
		for _, e := range entered {
			delete(w.active, e)
		}
	}
	for range 64 {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			t, ok := w.aliases[x]
			if !ok {
				return nil, done // reported by Parse
			}
			if w.active[t] {
				w.c.addAt(nodeStart(x), path, "alias refers to itself")
				return nil, done
			}
			w.active[t] = true
			entered = append(entered, t)
			n = t
		default:
			return n, done
		}
	}
	return nil, done
}

// walk checks node n against Go type t at path. It reports false when n
// is wrong and its caller must prune it.
func (w *schemaWalker) walk(n ast.Node, t reflect.Type, path string, depth int) bool {
	n, done := w.deref(n, path)
	defer done()
	if n == nil {
		return false // an unknown or cyclic alias
	}
	w.nodes++
	if w.nodes > maxNodes || depth > maxDepth {
		if !w.tooBig {
			w.tooBig = true
			w.c.addAt(nodeStart(n), path, "document is too large or too deeply nested (check for alias expansion)")
		}
		return false
	}
	switch t {
	case durationType:
		_, err := durationNode(n)
		if err != nil {
			w.c.addAt(pos{err.Line, err.Column}, path, err.Msg)
		}
		return err == nil
	case sizeType:
		_, err := sizeNode(n)
		if err != nil {
			w.c.addAt(pos{err.Line, err.Column}, path, err.Msg)
		}
		return err == nil
	case respondType:
		_, errs := respondNode(n, w.aliases, path, w.c.record)
		for _, err := range errs {
			w.c.addAt(pos{err.Line, err.Column}, err.Path, err.Msg)
		}
		return len(errs) == 0
	}
	if _, null := n.(*ast.NullNode); null {
		return true
	}
	return w.kind(n, t, path, depth)
}

// kind checks a node that is not null against the kind of t.
func (w *schemaWalker) kind(n ast.Node, t reflect.Type, path string, depth int) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := yamlFields(t)
		known := make([]string, 0, len(fields))
		for k := range fields {
			known = append(known, k)
		}
		return w.mapping(n, path, depth, known, func(key string) (reflect.Type, bool) {
			f, ok := fields[key]
			return f, ok
		})
	case reflect.Map:
		return w.mapping(n, path, depth, nil, func(string) (reflect.Type, bool) { return t.Elem(), true })
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			return w.wrong(n, path, "expected a list, got "+nodeKind(n))
		}
		for i, item := range seq.Values {
			p := joinIndex(path, i)
			w.c.record(p, nodeStart(item))
			if !w.walk(item, t.Elem(), p, depth+1) {
				// A null keeps the later items' indexes (and paths).
				seq.Values[i] = nullAt(item)
				w.c.failed[p] = true
			}
		}
	case reflect.Interface:
		switch n.(type) {
		case *ast.MappingNode:
			return w.mapping(n, path, depth, nil, func(string) (reflect.Type, bool) { return t, true })
		case *ast.SequenceNode:
			return w.walk(n, reflect.TypeFor[[]any](), path, depth)
		}
	case reflect.String:
		if _, _, ok := scalarText(n); !ok {
			if _, isBool := n.(*ast.BoolNode); !isBool {
				return w.wrong(n, path, "expected a string, got "+nodeKind(n))
			}
		}
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); !ok {
			return w.wrong(n, path, "expected true or false, got "+nodeKind(n))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return w.integer(n, path, t.Bits())
	case reflect.Float64, reflect.Float32:
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		case *ast.InfinityNode, *ast.NanNode:
			return w.wrong(n, path, "expected a finite number")
		default:
			return w.wrong(n, path, "expected a number, got "+nodeKind(n))
		}
	}
	return true
}

// nullAt is a null node written where n is.
func nullAt(n ast.Node) ast.Node {
	var at *token.Position
	if tk := n.GetToken(); tk != nil {
		at = tk.Position
	}
	return ast.Null(token.New("null", "null", at))
}

// wrong reports n and returns false, for walk's callers to prune it.
func (w *schemaWalker) wrong(n ast.Node, path, msg string) bool {
	w.c.addAt(nodeStart(n), path, msg)
	return false
}

func (w *schemaWalker) integer(n ast.Node, path string, bits int) bool {
	iv, ok := n.(*ast.IntegerNode)
	if sn, isString := n.(*ast.StringNode); isString && !ok && looksNumeric(sn) {
		return w.wrong(n, path, fmt.Sprintf("number %s is out of range", sn.Value))
	}
	if !ok {
		return w.wrong(n, path, "expected an integer, got "+nodeKind(n))
	}
	limit := int64(1)<<(bits-1) - 1
	switch v := iv.Value.(type) {
	case int64:
		if v > limit || v < -limit-1 {
			return w.wrong(n, path, fmt.Sprintf("number %d is out of range", v))
		}
	case uint64:
		if v > uint64(limit) {
			return w.wrong(n, path, fmt.Sprintf("number %d is out of range", v))
		}
	default:
		return w.wrong(n, path, fmt.Sprintf("number %s is out of range", iv.GetToken().Value))
	}
	return true
}

// mapping walks a mapping whose keys field resolves, removing the entries
// it reports. Merge keys are gone by now (see merge.go).
func (w *schemaWalker) mapping(n ast.Node, path string, depth int, known []string, field func(string) (reflect.Type, bool)) bool {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return w.wrong(n, path, "expected a mapping, got "+nodeKind(n))
	}
	seen := map[string]bool{}
	var meant []string // keys an unknown key was likely meant to be
	kept := m.Values[:0:0]
	for _, mv := range m.Values {
		key, ok := w.keyText(mv.Key)
		if !ok {
			w.c.addAt(nodeStart(mv), path, "mapping keys must be strings")
			continue
		}
		if seen[key] {
			w.c.addAt(nodeStart(mv), path, fmt.Sprintf("duplicate key %q", key))
			continue
		}
		seen[key] = true
		p := joinKey(path, key)
		w.c.record(p, nodeStart(mv))
		ft, ok := field(key)
		if !ok {
			w.c.addAt(nodeStart(mv), path, unknownKeyMsg(key, known))
			if s := typo.Closest(key, known); s != "" {
				meant = append(meant, s)
			}
			continue
		}
		if !w.walk(mv.Value, ft, p, depth+1) {
			w.c.failed[p] = true
			continue
		}
		kept = append(kept, mv)
	}
	m.Values = kept
	// "taget: pay" is one mistake, not also a missing target.
	for _, k := range meant {
		if !seen[k] {
			w.c.failed[joinKey(path, k)] = true
		}
	}
	return true
}

// keyText returns a mapping key as text.
func (w *schemaWalker) keyText(k ast.MapKeyNode) (string, bool) {
	var n ast.Node = k
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	n, done := w.deref(n, "")
	defer done()
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return x.GetToken().Value, true
	case *ast.NullNode:
		return "null", true
	}
	return "", false
}

func unknownKeyMsg(key string, known []string) string {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := typo.Closest(key, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg
}

// yamlFields maps a struct's YAML keys to field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out[name] = f.Type
	}
	return out
}

// looksNumeric reports whether a plain (unquoted) scalar is an integer the
// YAML library could not hold, e.g. 99999999999999999999.
func looksNumeric(n *ast.StringNode) bool {
	if n.Token == nil || n.Token.Type != token.StringType {
		return false
	}
	v := strings.TrimLeft(n.Value, "+-")
	return v != "" && strings.Trim(v, "0123456789") == ""
}
