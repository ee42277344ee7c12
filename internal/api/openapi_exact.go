package api

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/engine"
)

// answerTypes are the roots of every schema of an answer; the Go types
// reachable from them are what exactDocument reads nullability from.
var answerTypes = []reflect.Type{
	reflect.TypeFor[tapi.MessageList](), reflect.TypeFor[tapi.MessageDetail](),
	reflect.TypeFor[tapi.DeadLetterList](), reflect.TypeFor[tapi.ReplayResult](),
	reflect.TypeFor[tapi.RouteList](), reflect.TypeFor[tapi.TargetList](),
	reflect.TypeFor[purgeResult](), reflect.TypeFor[sourceList](),
	reflect.TypeFor[engine.MessageAnswer](), reflect.TypeFor[tapi.Problem](),
}

// exactDocument makes huma's document say exactly what the server sends:
//
//   - lists are arrays, never null (every list is sent as [] when empty;
//     huma types a Go slice as array-or-null);
//   - a field the server sends as null (a Go pointer to a struct without
//     omitempty: a delivery's response, a target's breaker and rate_limit)
//     is anyOf its schema and null;
//   - every admin operation declares the admin guard's answers (403, 421,
//     and 415 on those that change state, which all take a JSON body), and
//     every operation 405 (another method on its path), with the headers
//     that come with them (Allow, WWW-Authenticate, Retry-After);
//   - security is what the config asks: the bearer key on the admin API
//     (and routes) when auth.keys is set; with no keys, none at all (the
//     admin API then answers loopback clients only);
//   - a route's JSON Schema is a component, its own "#/..." references
//     rewritten to point inside it.
func (s *server) exactDocument(doc map[string]any) error {
	components, _ := doc["components"].(map[string]any)
	if components == nil {
		return fmt.Errorf("openapi document has no components")
	}
	schemas, _ := components["schemas"].(map[string]any)
	if schemas == nil {
		return fmt.Errorf("openapi document has no schemas")
	}
	for name, rt := range s.routeSchemas {
		sd, external := rt.SchemaDocument()
		if external {
			// A schema that refers to other files cannot be embedded whole.
			schemas[name] = map[string]any{"description": "The body must meet the JSON Schema of route " + rt.Name + " (its file refers to other files; see the config)."}
			continue
		}
		schemas[name] = embedSchema(sd, "#/components/schemas/"+name)
	}
	walkJSON(doc, func(m map[string]any) {
		if t, ok := m["type"].([]any); ok && len(t) == 2 && slices.Contains(t, any("array")) && slices.Contains(t, any("null")) {
			m["type"] = "array"
		}
	})
	for _, nf := range nullableFields(answerTypes) {
		sch, _ := schemas[nf.schema].(map[string]any)
		props, _ := sch["properties"].(map[string]any)
		p, _ := props[nf.field].(map[string]any)
		if ref, ok := p["$ref"].(string); ok {
			delete(p, "$ref")
			p["anyOf"] = []any{map[string]any{"$ref": ref}, map[string]any{"type": "null"}}
		}
	}
	responses, _ := components["responses"].(map[string]any)
	if responses == nil {
		responses = map[string]any{}
		components["responses"] = responses
	}
	problem := map[string]any{problemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}
	responses["MethodNotAllowed"] = map[string]any{
		"description": "The path is served for other methods; Allow lists them.",
		"headers":     map[string]any{"Allow": header("The methods this path serves.")},
		"content":     problem,
	}
	// The routes' answer headers, once, as components.
	hdrs, _ := components["headers"].(map[string]any)
	if hdrs == nil {
		hdrs = map[string]any{}
		components["headers"] = hdrs
	}
	hdrs["IdempotentReplayed"] = map[string]any{
		"description": "\"true\" on the answer to a repeat of an Idempotency-Key.",
		"schema":      map[string]any{"type": "string", "enum": []any{"true"}},
	}
	hdrs["Location"] = header("The message: /v1/messages/{id}.")
	security := []any{}
	if s.auth.enabled() {
		security = []any{map[string]any{"bearer": []any{}}}
	}
	info, _ := doc["info"].(map[string]any)
	if info != nil {
		d, _ := info["description"].(string)
		info["description"] = d + " With auth.keys configured, the admin API and the routes take an API key as a bearer token; " +
			"with none, the admin API needs no credentials and answers loopback clients only (and Host names that are loopback names or in server.hosts), " +
			"and the routes are open."
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, o := range ops {
			op, ok := o.(map[string]any)
			if !ok {
				continue
			}
			rs, _ := op["responses"].(map[string]any)
			if rs == nil {
				rs = map[string]any{}
				op["responses"] = rs
			}
			rs["405"] = map[string]any{"$ref": "#/components/responses/MethodNotAllowed"}
			admin := isAdminPath(path)
			switch {
			case admin:
				op["security"] = security
				addProblem(rs, http.StatusForbidden, "The key lacks the admin scope; or, with no keys, the client is not on loopback; or the request is cross-site (Sec-Fetch-Site).")
				addProblem(rs, http.StatusMisdirectedRequest, "The Host is neither a loopback name nor in server.hosts.")
				if strings.EqualFold(method, http.MethodPost) {
					addProblem(rs, http.StatusUnsupportedMediaType, "The request was not sent with Content-Type: application/json.")
					if op["requestBody"] == nil {
						op["requestBody"] = map[string]any{
							"required":    true,
							"description": "Send {} with Content-Type: application/json.",
							"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
								"type": "object", "additionalProperties": false, "description": "Empty.",
							}}},
						}
					}
				}
				if !s.auth.enabled() {
					delete(rs, "401")
				}
			case strings.HasPrefix(path, "/healthz"), strings.HasPrefix(path, "/readyz"):
				op["security"] = []any{}
			default: // a route
				op["security"] = security
				for _, r := range rs {
					rh, _ := r.(map[string]any)["headers"].(map[string]any)
					if _, ok := rh["Idempotent-Replayed"]; ok {
						rh["Idempotent-Replayed"] = map[string]any{"$ref": "#/components/headers/IdempotentReplayed"}
					}
					if _, ok := rh["Location"]; ok {
						rh["Location"] = map[string]any{"$ref": "#/components/headers/Location"}
					}
				}
			}
			if r, ok := rs["401"].(map[string]any); ok {
				r["headers"] = map[string]any{"WWW-Authenticate": header(`Bearer realm="tandem", with error="invalid_token" or "invalid_request" when a token was sent.`)}
			}
			if r, ok := rs["503"].(map[string]any); ok {
				r["headers"] = map[string]any{"Retry-After": header("Seconds to wait before trying again.")}
			}
		}
	}
	return nil
}

// header is a response header object with a string schema.
func header(desc string) map[string]any {
	return map[string]any{"description": desc, "schema": map[string]any{"type": "string"}}
}

// addProblem declares a problem answer with code on a response map,
// unless it is declared already.
func addProblem(rs map[string]any, code int, desc string) {
	k := fmt.Sprint(code)
	if _, ok := rs[k]; ok {
		return
	}
	rs[k] = map[string]any{
		"description": desc,
		"content":     map[string]any{problemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
	}
}

// isAdminPath reports whether a path is behind the admin guard and the
// admin auth check.
func isAdminPath(p string) bool {
	return p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/metrics" || p == "/openapi.json"
}

// walkJSON calls fn on every object in v, depth first.
func walkJSON(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(x)
		for _, e := range x {
			walkJSON(e, fn)
		}
	case []any:
		for _, e := range x {
			walkJSON(e, fn)
		}
	}
}

// embedSchema copies a JSON Schema document for use as a component at
// base: "#..." references are rewritten to point below base, and $schema
// and $id (which name the document, not the component) are dropped.
func embedSchema(v any, base string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			switch k {
			case "$schema", "$id":
				continue
			case "$ref", "$dynamicRef":
				if s, ok := e.(string); ok && strings.HasPrefix(s, "#") {
					out[k] = base + strings.TrimPrefix(s, "#")
					continue
				}
			}
			out[k] = embedSchema(e, base)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = embedSchema(e, base)
		}
		return out
	}
	return v
}

// nullableField is a property the server may send as null.
type nullableField struct{ schema, field string }

// nullableFields lists the fields, in the struct types reachable from
// roots, that are pointers to structs without omitempty: encoding/json
// sends them as null.
func nullableFields(roots []reflect.Type) []nullableField {
	var out []nullableField
	seen := map[reflect.Type]bool{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				visit(f.Type)
				continue
			}
			if name == "" {
				name = f.Name
			}
			if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct && !strings.Contains(opts, "omitempty") {
				n := t.Name()
				out = append(out, nullableField{schema: strings.ToUpper(n[:1]) + n[1:], field: name})
			}
			visit(f.Type)
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return out
}

// internalKind is the kind of a failure to serve the document.
func internalKind() *tapi.Problem { return tapi.ErrInternal }
