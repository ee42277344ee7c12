package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/internal/config"
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

// TestOpenAPIRouteAnswers: each route declares the answers its respond
// mode and durability give, and no others.
func TestOpenAPIRouteAnswers(t *testing.T) {
	t.Parallel()
	no := false
	cfg := baseConfig()
	step := []*config.Step{{Name: "charge", Target: "payments"}}
	cfg.Routes = []*config.Route{
		{Name: "accept", Path: "/accept", Steps: step},
		{Name: "all", Path: "/all", Respond: config.Respond{Mode: config.RespondAll}, Steps: step},
		{Name: "list", Path: "/list", Respond: config.Respond{Mode: config.RespondSteps, Steps: []string{"charge"}}, Steps: step},
		{Name: "mem", Path: "/mem", Respond: config.Respond{Mode: config.RespondAll}, Durable: &no, Steps: step},
	}
	h := newHandler(t, cfg)
	w := call(t, h, "GET", "/openapi.json", loopback, nil, nil)
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Headers map[string]any `json:"headers"`
			} `json:"responses"`
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		answers  []string
		location bool
	}{
		{"/accept", []string{"202"}, true},
		{"/all", []string{"200", "202", "207", "502"}, true},
		{"/list", []string{"200", "202", "502"}, true},
		{"/mem", []string{"200", "207", "502"}, false},
	}
	for _, tt := range tests {
		op, ok := doc.Paths[tt.path]["post"]
		if !ok {
			t.Errorf("%s: not documented", tt.path)
			continue
		}
		var got []string
		for code, r := range op.Responses {
			if code >= "400" && code != "502" {
				continue // problems; a route's 502 is its answer
			}
			got = append(got, code)
			if _, has := r.Headers["Location"]; has != tt.location {
				t.Errorf("%s %s: Location header declared: %v, want %v", tt.path, code, has, tt.location)
			}
			if _, has := r.Headers["Idempotent-Replayed"]; !has {
				t.Errorf("%s %s: no Idempotent-Replayed header", tt.path, code)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.answers) {
			t.Errorf("%s: answers %v, want %v", tt.path, got, tt.answers)
		}
		for _, code := range []string{"405", "400", "413", "422", "503"} {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: %s not declared", tt.path, code)
			}
		}
		if len(op.Security) != 0 {
			t.Errorf("%s: security %v with no keys configured", tt.path, op.Security)
		}
	}
}
