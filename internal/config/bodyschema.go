package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// maxViolations bounds the violations one body reports.
const maxViolations = 50

// maxSchemaFile bounds a schema file.
const maxSchemaFile = 4 << 20

// compiledSchema is a route's body schema, compiled at load.
type compiledSchema struct {
	schema *jsonschema.Schema
	// doc is the schema document as JSON values, for /openapi.json.
	doc any
	// external is set when the document refers to other documents (a
	// $ref that does not start with "#"); it cannot be embedded whole.
	external bool
}

// SchemaViolation is one way a body fails its route's schema.
type SchemaViolation struct {
	// Pointer is the failing value's place in the body, as a JSON pointer
	// (RFC 6901); "" is the whole body.
	Pointer string
	// Message says what is wrong there.
	Message string
}

// ErrSchemaMismatch is matched (errors.Is) by every *SchemaError.
var ErrSchemaMismatch = errors.New("the body fails the route's schema")

// SchemaError is a body that fails its route's JSON Schema.
type SchemaError struct {
	Route      string
	Violations []SchemaViolation
}

// Error names the route and the first violations.
func (e *SchemaError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the body fails the schema of route %s", e.Route)
	for i, v := range e.Violations {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Violations)-3)
			break
		}
		p := v.Pointer
		if p == "" {
			p = "(the body)"
		}
		fmt.Fprintf(&b, "; %s: %s", p, v.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrSchemaMismatch) hold.
func (e *SchemaError) Is(target error) bool { return target == ErrSchemaMismatch }

// HasSchema reports whether the route checks its bodies against a schema.
func (r *Route) HasSchema() bool { return r.bodySchema != nil }

// SchemaDocument returns the route's schema as JSON values (nil without
// one), and whether it refers to other documents.
func (r *Route) SchemaDocument() (doc any, external bool) {
	if r.bodySchema == nil {
		return nil, false
	}
	return r.bodySchema.doc, r.bodySchema.external
}

// CheckBody checks body against the route's schema; nil when it passes or
// the route has none, else a *SchemaError. A body that is not JSON fails.
func (r *Route) CheckBody(body []byte) error {
	if r.bodySchema == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &SchemaError{Route: r.Name, Violations: []SchemaViolation{{Message: "the body is not JSON"}}}
	}
	err = r.bodySchema.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &SchemaError{Route: r.Name, Violations: []SchemaViolation{{Message: err.Error()}}}
	}
	p := message.NewPrinter(language.English)
	se := &SchemaError{Route: r.Name}
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(se.Violations) >= maxViolations {
			return
		}
		if len(e.Causes) == 0 {
			se.Violations = append(se.Violations, SchemaViolation{Pointer: jsonPointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(p)})
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(ve)
	return se
}

// jsonPointer writes tokens as an RFC 6901 pointer.
func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// routeSchema compiles a route's schema (a file path relative to the
// config file, or an inline mapping) and reports a bad one at the schema
// key.
func (v *validator) routeSchema(p string, r *Route) {
	if r.Schema == nil {
		return
	}
	sp := joinKey(p, "schema")
	cs, err := compileSchema(r.Schema, v.cfg.File, r.Name)
	if err != nil {
		v.errf(sp, "%v", err)
		return
	}
	r.bodySchema = cs
}

// compileSchema compiles a schema given as a path or a mapping, as draft
// 2020-12 unless it names another draft with $schema. Formats are
// asserted. $refs resolve against the schema file (or, inline, the config
// file's directory); only files are loaded, never URLs.
func compileSchema(spec any, configFile, route string) (*compiledSchema, error) {
	dir := "."
	if configFile != "" {
		dir = filepath.Dir(configFile)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var doc any
	var loc string
	switch s := spec.(type) {
	case string:
		if s == "" {
			return nil, errors.New("schema: give a file path or an inline mapping")
		}
		path := s
		if !filepath.IsAbs(path) {
			path = filepath.Join(absDir, path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", s, errors.Unwrap(err))
		}
		if !fi.Mode().IsRegular() || fi.Size() > maxSchemaFile {
			return nil, fmt.Errorf("schema: %s must be a regular file of at most %d bytes", s, maxSchemaFile)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", s, errors.Unwrap(err))
		}
		if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
			var y any
			if err := yaml.Unmarshal(data, &y); err != nil {
				return nil, fmt.Errorf("schema: %s is not YAML: %w", s, err)
			}
			if data, err = json.Marshal(y); err != nil {
				return nil, fmt.Errorf("schema: %s: %w", s, err)
			}
		}
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("schema: %s is not JSON: %w", s, err)
		}
		loc = fileURL(path)
	case map[string]any, bool:
		data, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		loc = fileURL(filepath.Join(absDir, "route-"+url.PathEscape(route)+".schema.json"))
	default:
		return nil, fmt.Errorf("schema: give a file path or an inline mapping, not a %T", spec)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(jsonschema.SchemeURLLoader{"file": jsonschema.FileLoader{}})
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &compiledSchema{schema: sch, doc: doc, external: refersOut(doc)}, nil
}

// fileURL is the file: URL of an absolute path.
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// refersOut reports whether a schema document has a $ref (or $dynamicRef)
// to another document.
func refersOut(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "$ref" || k == "$dynamicRef") && !strings.HasPrefix(s, "#") {
				return true
			}
			if refersOut(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if refersOut(e) {
				return true
			}
		}
	}
	return false
}
