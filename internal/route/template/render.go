package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"
)

// RenderError is a render-time failure of one expression.
type RenderError struct {
	// Path locates the template string inside its value ("" for the
	// value itself), e.g. "items[0].sku".
	Path string
	// Expr is the expression as written.
	Expr string
	// Err is the cause; a *MissingError when a field was not there.
	Err error
}

// Error renders `items[0].sku: {{ request.body.sku }}: request.body.sku is missing`.
func (e *RenderError) Error() string {
	msg := "{{ " + clip(e.Expr) + " }}: " + e.Err.Error()
	var miss *MissingError
	if errors.As(e.Err, &miss) {
		msg += " (wrap it in default(..., fallback) if it may be absent)"
	}
	if e.Path != "" {
		return e.Path + ": " + msg
	}
	return msg
}

// Unwrap returns the cause.
func (e *RenderError) Unwrap() error { return e.Err }

// node is one compiled part of a value template.
type node interface {
	// appendJSON appends the node's JSON to dst.
	appendJSON(dst []byte, env *Env) ([]byte, error)
	// constant reports whether the node needs no env.
	constant() bool
}

// literal is JSON that needs no env.
type literal []byte

func (l literal) appendJSON(dst []byte, _ *Env) ([]byte, error) { return append(dst, l...), nil }
func (literal) constant() bool                                  { return true }

// exprNode is a string that is exactly one expression: its typed value.
type exprNode struct{ e *expression }

func (n *exprNode) appendJSON(dst []byte, env *Env) ([]byte, error) {
	v, err := eval(env, n.e)
	if err != nil {
		return dst, err
	}
	out, err := appendJSON(dst, v)
	if err != nil {
		return dst, &RenderError{Expr: n.e.src, Err: err}
	}
	return out, nil
}
func (*exprNode) constant() bool { return false }

// interpNode is text with expressions in it: a JSON string.
type interpNode struct{ parts []part }

func (n *interpNode) appendJSON(dst []byte, env *Env) ([]byte, error) {
	s, err := interpolate(n.parts, env, false)
	if err != nil {
		return dst, err
	}
	return appendString(dst, s), nil
}
func (*interpNode) constant() bool { return false }

type arrayNode struct{ items []node }

func (n *arrayNode) appendJSON(dst []byte, env *Env) ([]byte, error) {
	dst = append(dst, '[')
	for i, it := range n.items {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = it.appendJSON(dst, env); err != nil {
			return dst, prefixPath(err, "["+strconv.Itoa(i)+"]")
		}
	}
	return append(dst, ']'), nil
}
func (*arrayNode) constant() bool { return false }

// fold turns an array of constants into one literal.
func (n *arrayNode) fold() node {
	for _, it := range n.items {
		if !it.constant() {
			return n
		}
	}
	b, _ := n.appendJSON(nil, nil)
	return literal(b)
}

type objectNode struct {
	names []string
	keys  [][]byte // `"key":`
	vals  []node
}

func (n *objectNode) appendJSON(dst []byte, env *Env) ([]byte, error) {
	dst = append(dst, '{')
	for i, v := range n.vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, n.keys[i]...)
		var err error
		if dst, err = v.appendJSON(dst, env); err != nil {
			return dst, prefixPath(err, keyPath(n.names[i]))
		}
	}
	return append(dst, '}'), nil
}
func (*objectNode) constant() bool { return false }

func (n *objectNode) fold() node {
	for _, v := range n.vals {
		if !v.constant() {
			return n
		}
	}
	b, _ := n.appendJSON(nil, nil)
	return literal(b)
}

func keyPath(k string) string {
	if plainKey(k) {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

// prefixPath puts one path step in front of a RenderError's path.
func prefixPath(err error, step string) error {
	var re *RenderError
	if !errors.As(err, &re) {
		return err
	}
	p := step + prefixDot(re.Path)
	re.Path = strings.TrimPrefix(p, ".")
	return re
}

func prefixDot(p string) string {
	if p == "" || p[0] == '[' {
		return p
	}
	return "." + p
}

// eval runs one expression, turning every failure into a *RenderError.
func eval(env *Env, e *expression) (any, error) {
	if e.prog == nil {
		return nil, &RenderError{Expr: e.src, Err: errors.New("not compiled")}
	}
	v, err := env.run(e)
	if err != nil {
		return nil, &RenderError{Expr: e.src, Err: cause(err)}
	}
	return v, nil
}

// cause unwraps expr's positioned error to the failure a person needs.
func cause(err error) error {
	var miss *MissingError
	if errors.As(err, &miss) {
		return miss
	}
	var fe *file.Error
	if errors.As(err, &fe) {
		return errors.New(fe.Message)
	}
	return err
}

// Render renders the template as one JSON value.
func (t *Value) Render(env *Env) ([]byte, error) {
	b, err := t.AppendJSON(nil, env)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendJSON appends the template's JSON to dst. On error, what it
// appended is not valid JSON and must be dropped.
func (t *Value) AppendJSON(dst []byte, env *Env) ([]byte, error) {
	return t.root.appendJSON(dst, env)
}

// Render renders the template as text. A lone expression's value is
// written as text: a string as is, null as "", other values as JSON.
func (t *String) Render(env *Env) (string, error) {
	return interpolate(t.parts, env, false)
}

// RenderPath renders the template as a URL path: each expression's text
// is path-escaped, so a value cannot add a query. A value may not hold a
// "/" or "\\" (it would add a segment once a server decodes %2F), and no
// segment of the result may be "." or ".." (also percent-encoded, at any
// depth of encoding): such a path fails with ErrPathTraversal, so that it
// is never sent.
func (t *String) RenderPath(env *Env) (string, error) {
	p, err := interpolate(t.parts, env, true)
	if err != nil {
		return "", err
	}
	if err := checkSegments(p); err != nil {
		return "", err
	}
	return p, nil
}

// ErrPathTraversal marks a rendered path that would climb out of the
// target's path, or that a value split into more segments.
var ErrPathTraversal = errors.New("path traversal")

// checkPathValue refuses an expression's value that would change a path's
// segments once the target decodes it.
func checkPathValue(s string) error {
	d := decodeFully(s)
	if strings.ContainsAny(d, "/\\") {
		return fmt.Errorf("%w: the value %s holds a \"/\" or a backslash (once decoded), which would add a path segment", ErrPathTraversal, clip(strconv.Quote(s)))
	}
	return nil
}

// checkSegments refuses a path with a "." or ".." segment, also when the
// segment is percent-encoded ("%2e%2e", "%252e").
func checkSegments(p string) error {
	for _, seg := range strings.Split(p, "/") {
		switch decodeFully(seg) {
		case ".", "..":
			return fmt.Errorf("%w: the rendered path %s has a %q segment; it is not sent", ErrPathTraversal, clip(strconv.Quote(p)), decodeFully(seg))
		}
	}
	return nil
}

// decodeFully percent-decodes s until it no longer changes (a few rounds
// at most), so a value encoded twice is judged by what it finally means.
func decodeFully(s string) string {
	for range 4 {
		if !strings.Contains(s, "%") {
			return s
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return s
		}
		s = d
	}
	return s
}

func interpolate(parts []part, env *Env, escapePath bool) (string, error) {
	if len(parts) == 1 && parts[0].expr == nil {
		return parts[0].text, nil
	}
	var b strings.Builder
	for _, p := range parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := eval(env, p.expr)
		if err != nil {
			return "", err
		}
		s, err := Stringify(v)
		if err != nil {
			return "", &RenderError{Expr: p.expr.src, Err: err}
		}
		if escapePath {
			if err := checkPathValue(s); err != nil {
				return "", &RenderError{Expr: p.expr.src, Err: err}
			}
			s = url.PathEscape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// Stringify writes a value as text: a string as is, nil as "", a time in
// RFC 3339, anything else as compact JSON.
func Stringify(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	b, err := appendJSON(nil, v)
	return string(b), err
}

// appendJSON appends v as JSON. Maps have their keys sorted. NaN and
// infinities are errors, so the output is always valid JSON.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case float64:
		return appendFloat(dst, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case time.Time:
		return appendString(dst, x.Format(time.RFC3339Nano)), nil
	case time.Duration:
		return appendString(dst, x.String()), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(dst, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(dst, rv.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(dst, rv.Float())
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return dst, fmt.Errorf("a %T cannot be written as JSON", v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("cannot be written as JSON: %w", err)
	}
	return append(dst, b...), nil
}

func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%v is not a JSON number", f)
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b, _ := json.Marshal(f)
		return append(dst, b...), nil
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped, as encoding/json does.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
