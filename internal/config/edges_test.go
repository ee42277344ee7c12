package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEdgeKeysErrors: bad edge keys are reported with file, line and
// key path, all at once.
func TestEdgeKeysErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"type": "object", "minimum": "ten"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notjson.json"), []byte(`{type: object`), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `server:
  hosts: ["https://gateway.example/", ok.example]
  write_timeout: 5s
  store_headers: [X-Api-Key, "bad header"]
targets:
  t: { url: "http://127.0.0.1:9/" }
routes:
  - name: a
    path: /a
    respond: all
    deadline: 20s
    schema: bad.json
    steps: [{ name: s, target: t }]
  - name: b
    path: /b
    schema: missing.json
    steps: [{ name: s, target: t }]
  - name: c
    path: /c
    schema: notjson.json
    steps: [{ name: s, target: t }]
  - name: d
    path: /d
    schema: { type: 7 }
    steps: [{ name: s, target: t }]
`
	path := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`t.yaml:2: server.hosts[0]: host "https://gateway.example/" must be a host name`,
		`t.yaml:3: server.write_timeout: write_timeout 5s is shorter than the longest route deadline (20s)`,
		`t.yaml:4: server.store_headers[0]: "X-Api-Key" carries credentials`,
		`t.yaml:4: server.store_headers[1]: "bad header" is not a valid HTTP header name`,
		`t.yaml:12: routes[0].schema: schema:`,
		`t.yaml:16: routes[1].schema: schema: read missing.json`,
		`t.yaml:20: routes[2].schema: schema: notjson.json is not JSON`,
		`t.yaml:24: routes[3].schema: schema:`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors lack %q:\n%s", want, msg)
		}
	}
}

// TestEdgeDefaults: the write timeout covers the longest deadline of a
// waiting route; routes keep the default store_headers plus the headers
// their templates read, never a credential.
func TestEdgeDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `targets:
  t: { url: "http://127.0.0.1:9/" }
routes:
  - { name: a, path: /a, respond: all, deadline: 2m, steps: [{ name: s, target: t, headers: { X-U: "{{ request.headers['x-user-id'] }}", X-A: "{{ request.headers[\"authorization\"] }}" } }] }
  - { name: b, path: /b, store_headers: [X-Tenant], steps: [{ name: s, target: t }] }
`, nil)
	if got := cfg.Server.WriteTimeout.D(); got != 2*time.Minute+10*time.Second {
		t.Errorf("write timeout %v", got)
	}
	a := cfg.StoredHeaders(cfg.Routes[0])
	if !slices.Contains(a, "X-User-Id") || !slices.Contains(a, "Traceparent") || slices.Contains(a, "Authorization") {
		t.Errorf("route a stores %v", a)
	}
	if b := cfg.StoredHeaders(cfg.Routes[1]); !slices.Equal(b, []string{"X-Tenant"}) {
		t.Errorf("route b stores %v", b)
	}
}

// TestRouteSchemaCheck: a compiled schema checks bodies, reporting every
// violation with its JSON pointer.
func TestRouteSchemaCheck(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `targets:
  t: { url: "http://127.0.0.1:9/" }
routes:
  - name: a
    path: /a
    schema:
      type: object
      required: [id]
      properties: { id: { type: string }, "a/b": { type: integer }, at: { type: string, format: date-time } }
    steps: [{ name: s, target: t }]
`, nil)
	r := cfg.Routes[0]
	if err := r.CheckBody([]byte(`{"id":"x","at":"2026-01-02T03:04:05Z"}`)); err != nil {
		t.Errorf("a good body: %v", err)
	}
	err := r.CheckBody([]byte(`{"a/b":"x","at":"yesterday"}`))
	var se *SchemaError
	if !errors.As(err, &se) || !errors.Is(err, ErrSchemaMismatch) {
		t.Fatalf("err = %v", err)
	}
	var ptrs []string
	for _, v := range se.Violations {
		ptrs = append(ptrs, v.Pointer)
	}
	slices.Sort(ptrs)
	if !slices.Equal(ptrs, []string{"", "/at", "/a~1b"}) {
		t.Errorf("pointers %q (%v)", ptrs, se.Violations)
	}
	if err := r.CheckBody([]byte(`not json`)); !errors.Is(err, ErrSchemaMismatch) {
		t.Errorf("not JSON: %v", err)
	}
}

// TestRedactDSN: a DSN printed in an error hides its password and a
// SQLite DSN's query.
func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"file:tandem.db", "file:tandem.db"},
		{"file:tandem.db?_pragma=key('s3cret')&_auth_pass=hunter2", "file:tandem.db?xxxxx"},
		{"/var/lib/tandem.db", "/var/lib/tandem.db"},
		{"postgres://app:hunter2@db:5432/tandem?sslmode=require", "postgres://app:xxxxx@db:5432/tandem?sslmode=require"},
		{"host=db user=app password=hunter2 dbname=tandem", "host=db user=app password=xxxxx dbname=tandem"},
	}
	for _, tt := range tests {
		if got := RedactDSN(tt.in); got != tt.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
