package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOpenAPIDocumentHolds checks the document's own consistency: every
// $ref resolves, and every error answer of every operation is described as
// the one Problem schema, in application/problem+json.
func TestOpenAPIDocumentHolds(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	w := call(t, h, "GET", "/openapi.json", loopback, nil, nil)
	if w.Code != 200 {
		t.Fatalf("openapi: %d %s", w.Code, w.Body)
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if schemas["Problem"] == nil || schemas["ErrorModel"] != nil {
		t.Fatalf("schemas %v: want Problem and no ErrorModel", keys(schemas))
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name, found := strings.CutPrefix(ref, "#/components/schemas/")
				if rn, isResp := strings.CutPrefix(ref, "#/components/responses/"); isResp {
					name, found = rn, doc["components"].(map[string]any)["responses"].(map[string]any)[rn] != nil
				} else if hn, isHdr := strings.CutPrefix(ref, "#/components/headers/"); isHdr {
					name, found = hn, doc["components"].(map[string]any)["headers"].(map[string]any)[hn] != nil
				} else if found {
					found = schemas[name] != nil
				}
				if !found {
					t.Errorf("%s: $ref %q does not resolve", path, ref)
				}
			}
			for k, x := range v {
				walk(path+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"/[]", x)
			}
		}
	}
	walk("", doc)

	ops := 0
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			ops++
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			for code, r := range responses {
				if code < "400" || code == "default" || code == "502" {
					continue // a route's 502 is its answer: no awaited step succeeded
				}
				if ref, ok := r.(map[string]any)["$ref"].(string); ok {
					name, _ := strings.CutPrefix(ref, "#/components/responses/")
					r = doc["components"].(map[string]any)["responses"].(map[string]any)[name]
				}
				content, _ := r.(map[string]any)["content"].(map[string]any)
				mt, _ := content[problemContentType].(map[string]any)
				schema, _ := mt["schema"].(map[string]any)
				if len(content) != 1 || schema["$ref"] != "#/components/schemas/Problem" {
					t.Errorf("%s %s %s: error answer described as %v, want the Problem schema", method, path, code, content)
				}
			}
		}
	}
	if ops < 10 {
		t.Errorf("only %d operations", ops)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
