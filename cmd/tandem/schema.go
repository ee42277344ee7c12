package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"

	"github.com/tandem-run/tandem/internal/config"
)

// schemaDocs holds the doc comment of every field of the config types,
// keyed "Type.Field", read from internal/config/config.go by
// TestSchemaDocs (go test ./cmd/tandem -run SchemaDocs -update rewrites it).
//
//go:embed schema_docs.json
var schemaDocs []byte

// schemaEnums are the fields whose values are a fixed set.
var schemaEnums = map[string][]any{
	"Store.Driver": {"sqlite", "postgres"},
	"Log.Format":   {"text", "json"},
	"Log.Level":    {"debug", "info", "warn", "error"},
	// Trust at the edges (internal/config/trust.go).
	"ServerTLS.ClientAuth": {"require", "verify_if_given"},
	"HMACSign.Algorithm":   {"sha256", "sha512"},
	"HMACSign.Encoding":    {"hex", "base64"},
	"HMACSign.Format":      {"plain", "stripe"},
}

var (
	durationPattern = `^(0|([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*)$`
	sizePattern     = `^[0-9]+\s*([kKmMgGtT][iI]?)?[bB]?$`
	requiredDoc     = regexp.MustCompile(`(^|\. )Required[.,]`)
)

// configSchema builds the JSON Schema (2020-12) of tandem.yaml from the
// config types: every key with its type, description and default as the
// field's doc comment says, unknown keys refused as tandem refuses them.
func configSchema() (map[string]any, error) {
	var docs map[string]string
	if err := json.Unmarshal(schemaDocs, &docs); err != nil {
		return nil, err
	}
	g := &schemaGen{docs: docs, defs: schemaDefs()}
	root := g.object(reflect.TypeFor[config.Config]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://tandem.run/schema/tandem.yaml.json"
	root["title"] = "tandem.yaml"
	root["description"] = "The config of tandem: targets (downstream APIs), routes (inbound entry points) and their steps. See docs/config.md."
	root["$defs"] = g.defs
	return root, nil
}

type schemaGen struct {
	docs map[string]string
	defs map[string]any
}

// of returns the schema of a field or element type.
func (g *schemaGen) of(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[config.Duration]():
		return map[string]any{"$ref": "#/$defs/duration"}
	case reflect.TypeFor[config.Size]():
		return map[string]any{"$ref": "#/$defs/size"}
	case reflect.TypeFor[config.Respond]():
		return map[string]any{"$ref": "#/$defs/respond"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.of(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		name := strings.ToLower(t.Name()[:1]) + t.Name()[1:]
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = true // placeholder: stops recursion
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Interface:
		return map[string]any{} // a template: any YAML value
	}
	return map[string]any{}
}

// object is the schema of a struct: its yaml-tagged fields.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		s := map[string]any{}
		for k, v := range g.of(f.Type) {
			s[k] = v
		}
		doc := g.docs[t.Name()+"."+f.Name]
		if doc != "" {
			s["description"] = doc
			if requiredDoc.MatchString(doc) {
				required = append(required, key)
			}
		}
		if e, ok := schemaEnums[t.Name()+"."+f.Name]; ok {
			s["enum"] = e
		}
		props[key] = s
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if doc := g.docs[t.Name()]; doc != "" {
		o["description"] = doc
	}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// schemaDefs are the definitions of the scalar types.
func schemaDefs() map[string]any {
	return map[string]any{
		"duration": map[string]any{
			"description": `A duration: "500ms", "30s", "5m", "24h", "7d" or 0.`,
			"anyOf": []any{
				map[string]any{"type": "string", "pattern": durationPattern},
				map[string]any{"const": 0},
			},
		},
		"size": map[string]any{
			"description": `A byte count: 512, "64KiB", "1MiB", "10KB".`,
			"anyOf": []any{
				map[string]any{"type": "integer", "minimum": 0},
				map[string]any{"type": "string", "pattern": sizePattern},
			},
		},
		"respond": map[string]any{
			"description": `When the caller gets an answer: "accepted" (202 at once), "all" (every step), or a list of step names.`,
			"anyOf": []any{
				map[string]any{"enum": []any{"accepted", "all"}},
				map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			},
		},
	}
}

// schema prints the JSON Schema of tandem.yaml.
func (m *Main) schema(_ context.Context, args []string) error {
	fs := m.newFlags("schema", "schema > tandem.schema.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, err := configSchema()
	if err != nil {
		return err
	}
	return printJSON(m.Stdout, s)
}
