package contract

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Problem is one certain break of the request schema found in a body
// template. Path locates the value inside the template: mapping keys
// (string) and list indexes (int); empty for the whole body.
type Problem struct {
	Path []any
	Msg  string
}

// CheckTemplate walks a step's body template (a YAML-decoded value whose
// strings may hold {{ expressions }}) against the operation's JSON request
// schema and returns what is certain to fail: literals of the wrong type
// or outside an enum, required properties missing from an object
// template, properties additionalProperties: false forbids. A string that
// is exactly one {{ expression }} may become any type and is not judged;
// one with text around its expressions is a string. Nil means nothing
// certain was found.
func (o *Operation) CheckTemplate(body any) []Problem {
	if o.bodyJSON == nil {
		if !o.hasBody {
			return []Problem{{Msg: fmt.Sprintf("operation %s declares no request body, and the step sends one", o.ID)}}
		}
		return nil
	}
	c := &checker{}
	c.value(o.bodyJSON, body, nil, 0)
	return c.out
}

type checker struct {
	out []Problem
}

func (c *checker) add(path []any, format string, args ...any) {
	c.out = append(c.out, Problem{Path: slices.Clone(path), Msg: fmt.Sprintf(format, args...)})
}

// maxDepth bounds the walk (recursive schemas).
const maxDepth = 32

// value checks one template value v against schema s.
func (c *checker) value(s *openapi3.Schema, v any, path []any, depth int) {
	if s == nil || depth > maxDepth {
		return
	}
	if len(s.OneOf) > 0 || len(s.AnyOf) > 0 || s.Not != nil {
		return // judged at run time
	}
	for _, sub := range s.AllOf {
		if sub != nil {
			c.value(sub.Value, v, path, depth+1)
		}
	}
	kind := kindOf(v)
	if kind == "" {
		return // an expression: any type
	}
	if !permits(s, kind, v) {
		c.add(path, "%s, but the contract wants %s", describe(kind, v), want(s))
		return
	}
	if len(s.Enum) > 0 && kind != "template-string" && kind != "object" && kind != "array" {
		if !inEnum(s.Enum, v) {
			c.add(path, "the value %s is not one of the contract's values %s", show(v), enumList(s.Enum))
		}
	}
	switch kind {
	case "object":
		m := v.(map[string]any)
		for _, name := range s.Required {
			if _, ok := m[name]; ok {
				continue
			}
			if p := s.Properties[name]; p != nil && p.Value != nil && p.Value.ReadOnly {
				continue // a request does not send readOnly properties
			}
			c.add(path, "required property %q is missing", name)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := append(slices.Clone(path), k)
			if p := s.Properties[k]; p != nil {
				c.value(p.Value, m[k], sub, depth+1)
				continue
			}
			ap := s.AdditionalProperties
			switch {
			case ap.Has != nil && !*ap.Has:
				c.add(sub, "property %q is not in the contract (additionalProperties: false)", k)
			case ap.Schema != nil:
				c.value(ap.Schema.Value, m[k], sub, depth+1)
			}
		}
	case "array":
		if s.Items == nil {
			return
		}
		for i, item := range v.([]any) {
			c.value(s.Items.Value, item, append(slices.Clone(path), i), depth+1)
		}
	}
}

// kindOf names a template value's JSON type: object, array, string,
// template-string (text around expressions: still a string), integer,
// number, boolean, null; "" for a lone expression (unknown).
func kindOf(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		if !strings.Contains(x, "{{") {
			return "string"
		}
		t := strings.TrimSpace(x)
		if strings.HasPrefix(t, "{{") && strings.HasSuffix(t, "}}") && strings.Count(t, "{{") == 1 {
			return ""
		}
		return "template-string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	case int, int64, uint64, int32, uint32:
		return "integer"
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) {
			return "integer"
		}
		return "number"
	case float32:
		return "number"
	}
	return ""
}

// permits reports whether schema s allows a value of kind.
func permits(s *openapi3.Schema, kind string, v any) bool {
	if kind == "null" {
		return s.Nullable || s.Type == nil || s.Type.IsEmpty() || s.Type.IncludesNull()
	}
	if s.Type == nil || s.Type.IsEmpty() {
		return true
	}
	switch kind {
	case "template-string":
		return s.Type.Includes("string")
	case "integer":
		return s.Type.Includes("integer") || s.Type.Includes("number")
	default:
		return s.Type.Includes(kind)
	}
}

func want(s *openapi3.Schema) string {
	ts := s.Type.Slice()
	if len(ts) == 1 {
		return article(ts[0])
	}
	return strings.Join(ts, " or ")
}

func article(t string) string {
	switch t {
	case "object", "array", "integer":
		return "an " + t
	}
	return "a " + t
}

func describe(kind string, v any) string {
	switch kind {
	case "object", "array":
		return "the template is " + article(kind)
	case "template-string":
		return "the template makes a string"
	case "null":
		return "the value is null"
	}
	return fmt.Sprintf("the value %v is %s", show(v), article(kind))
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == fmt.Sprint(v) && kindOf(e) == kindOf(v) {
			return true
		}
		// Numbers decode differently from YAML and JSON: compare as floats.
		if a, ok := toFloat(e); ok {
			if b, ok := toFloat(v); ok && a == b {
				return true
			}
		}
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func enumList(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		parts[i] = show(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
