package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/config"
)

// Tests of the HTTP layer alone (no engine): problems, auth, 404/405,
// input checks. Tests with the real engine and store are in
// engine_test.go.

func baseConfig() *config.Config {
	return &config.Config{
		Server: config.Server{MaxBody: 64},
		Targets: map[string]*config.Target{
			"payments": {Name: "payments", URL: "http://user:pw@127.0.0.1:1/charge?token=s3cret", Headers: map[string]string{"X-Secret": "hidden"},
				Auth: config.TargetAuth{Bearer: "bearer-value"}},
		},
		Routes: []*config.Route{
			{Name: "orders", Path: "/orders", Steps: []*config.Step{{Name: "charge", Target: "payments"}}},
			{Name: "refunds", Path: "/refunds", Method: "PUT", Steps: []*config.Step{{Name: "charge", Target: "payments"}}},
		},
	}
}

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func withKeys(cfg *config.Config) *config.Config {
	cfg.Auth.Keys = []config.Key{
		{Name: "ops", Hash: keyHash("admin-key"), Scopes: []string{"admin"}},
		{Name: "shop", Hash: keyHash("shop-key"), Scopes: []string{"ingest:orders"}},
		{Name: "all", Hash: keyHash("all-key"), Scopes: []string{"ingest:*"}},
	}
	return cfg
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHandler(t *testing.T, cfg *config.Config) http.Handler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // ends a JWKS refresh goroutine
	h, err := New(Options{Config: cfg, Logger: quietLogger(), Context: ctx})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// call runs one request through h, from remote (host:port) when set.
func call(t *testing.T, h http.Handler, method, target, remote string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	if remote != "" {
		r.RemoteAddr = remote
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// problemOf checks that w holds a problem with the status and returns it.
func problemOf(t *testing.T, w *httptest.ResponseRecorder, status int) Problem {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem: %v; body %s", err, w.Body)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type == "" {
		t.Fatalf("problem %+v does not match status %d", p, status)
	}
	return p
}

const loopback = "127.0.0.1:40000"

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	tests := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"unknown path", "GET", "/nope", 404, ""},
		{"unknown admin path", "GET", "/v1/nope", 404, ""},
		{"route with wrong method", "GET", "/orders", 405, "POST"},
		{"put route with post", "POST", "/refunds", 405, "PUT"},
		{"admin list with delete", "DELETE", "/v1/messages", 405, "GET, HEAD"},
		{"admin item with put", "PUT", "/v1/messages/abc", 405, "GET, HEAD"},
		{"replay with get", "GET", "/v1/dead-letters/replay", 405, "POST"},
		{"healthz with post", "POST", "/healthz", 405, "GET, HEAD"},
		{"route subpath", "POST", "/orders/x", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(t, h, tt.method, tt.path, loopback, nil, nil)
			p := problemOf(t, w, tt.status)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if p.Instance != tt.path {
				t.Errorf("instance %q, want %q", p.Instance, tt.path)
			}
		})
	}
}

func TestLoopbackRule(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	tests := []struct {
		name, remote, path string
		status             int
	}{
		{"ipv4 loopback", "127.0.0.1:5000", "/v1/targets", 200},
		{"other loopback address", "127.8.9.10:5000", "/v1/targets", 200},
		{"ipv6 loopback", "[::1]:5000", "/v1/targets", 200},
		{"mapped ipv4 loopback", "[::ffff:127.0.0.1]:5000", "/v1/targets", 200},
		{"remote admin", "192.0.2.1:5000", "/v1/targets", 403},
		{"remote ipv6 admin", "[2001:db8::1]:5000", "/v1/targets", 403},
		{"remote metrics", "192.0.2.1:5000", "/metrics", 403},
		{"remote openapi", "192.0.2.1:5000", "/openapi.json", 403},
		{"remote healthz", "192.0.2.1:5000", "/healthz", 200},
		{"remote readyz", "192.0.2.1:5000", "/readyz", 503}, // no engine: not ready, but not forbidden
		{"remote ingest", "192.0.2.1:5000", "/orders", 503}, // open; no engine
		{"garbage remote", "nonsense", "/v1/targets", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "GET"
			if tt.path == "/orders" {
				method = "POST"
			}
			w := call(t, h, method, tt.path, tt.remote, []byte("x"), nil)
			if tt.status >= 400 {
				problemOf(t, w, tt.status)
				return
			}
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
		})
	}
}

func TestBearerKeys(t *testing.T) {
	t.Parallel()
	h := newHandler(t, withKeys(baseConfig()))
	tests := []struct {
		name, method, path, auth string
		status                   int
		challenge                bool
	}{
		{"admin without token", "GET", "/v1/targets", "", 401, true},
		{"admin from loopback without token", "GET", "/v1/targets", "", 401, true},
		{"admin with unknown token", "GET", "/v1/targets", "Bearer nope", 401, true},
		{"admin with basic auth", "GET", "/v1/targets", "Basic YTpi", 401, true},
		{"admin with empty bearer", "GET", "/v1/targets", "Bearer ", 401, true},
		{"admin with admin key", "GET", "/v1/targets", "Bearer admin-key", 200, false},
		{"lower-case scheme", "GET", "/v1/targets", "bearer admin-key", 200, false},
		{"admin with ingest key", "GET", "/v1/targets", "Bearer shop-key", 403, true},
		{"metrics with ingest key", "GET", "/metrics", "Bearer shop-key", 403, true},
		{"metrics with admin key", "GET", "/metrics", "Bearer admin-key", 200, false},
		{"openapi without token", "GET", "/openapi.json", "", 401, true},
		{"ingest without token", "POST", "/orders", "", 401, true},
		{"ingest with wrong token", "POST", "/orders", "Bearer nope", 401, true},
		{"ingest with route scope", "POST", "/orders", "Bearer shop-key", 503, false},
		{"ingest other route", "PUT", "/refunds", "Bearer shop-key", 403, true},
		{"ingest with star scope", "PUT", "/refunds", "Bearer all-key", 503, false},
		{"ingest with admin key", "PUT", "/refunds", "Bearer admin-key", 503, false},
		{"healthz open", "GET", "/healthz", "", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			// Keys replace the loopback rule: even loopback needs a key.
			w := call(t, h, tt.method, tt.path, loopback, []byte("x"), hdr)
			if tt.status >= 400 {
				problemOf(t, w, tt.status)
			} else if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			// 403 names the scope wanted (RFC 6750 §3.1: insufficient_scope).
			got := w.Header().Get("WWW-Authenticate")
			if tt.status == 403 && !strings.Contains(got, `error="insufficient_scope"`) {
				t.Errorf("WWW-Authenticate %q on 403, want insufficient_scope", got)
			}
			if tt.challenge != strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, challenge wanted: %v", got, tt.challenge)
			}
		})
	}
}

func TestIngestInputChecks(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig()) // max_body 64
	long := strings.Repeat("k", 256)
	tests := []struct {
		name   string
		body   string
		header map[string]string
		target string
		status int
		detail string
	}{
		{"too large", strings.Repeat("a", 65), nil, "/orders", 413, "64 bytes"},
		{"too large json", `"` + strings.Repeat("a", 70) + `"`, map[string]string{"Content-Type": "application/json"}, "/orders", 413, ""},
		{"malformed json", `{"a": 1,}`, map[string]string{"Content-Type": "application/json"}, "/orders", 400, "offset 9"},
		{"truncated json", `{"a": `, map[string]string{"Content-Type": "application/json; charset=utf-8"}, "/orders", 400, "offset"},
		{"two json values", `{} {}`, map[string]string{"Content-Type": "application/json"}, "/orders", 400, "offset"},
		{"malformed +json", `nope`, map[string]string{"Content-Type": "application/vnd.order+json"}, "/orders", 400, "not valid JSON"},
		{"empty json", ``, map[string]string{"Content-Type": "application/json"}, "/orders", 400, "empty"},
		{"key too long", `x`, map[string]string{"Idempotency-Key": long}, "/orders", 400, "255"},
		{"key not ascii", `x`, map[string]string{"Idempotency-Key": "clé"}, "/orders", 400, "printable ASCII"},
		{"key with tab", `x`, map[string]string{"Idempotency-Key": "a\tb"}, "/orders", 400, "printable ASCII"},
		{"malformed query", `x`, nil, "/orders?a=%zz", 400, "query"},
		// Accepted input reaches the engine; with none, that is a 503.
		{"opaque bytes", "\x00\xff not json", map[string]string{"Content-Type": "text/plain"}, "/orders", 503, "engine"},
		{"no content type", `{oops`, nil, "/orders", 503, "engine"},
		{"valid json", `{"a": [1, 2]}`, map[string]string{"Content-Type": "application/json"}, "/orders", 503, "engine"},
		{"key at limit", `x`, map[string]string{"Idempotency-Key": long[:255]}, "/orders", 503, "engine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(t, h, "POST", tt.target, "192.0.2.1:1", []byte(tt.body), tt.header)
			p := problemOf(t, w, tt.status)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tt.detail)
			}
			if tt.status == 503 && w.Header().Get("Retry-After") != "1" {
				t.Errorf("503 without Retry-After: 1")
			}
		})
	}
}

func TestAdminValidation(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	tests := []struct {
		name, method, target, body string
		status                     int
	}{
		{"limit zero", "GET", "/v1/messages?limit=0", "", 422},
		{"limit too big", "GET", "/v1/messages?limit=1001", "", 422},
		{"limit not a number", "GET", "/v1/messages?limit=ten", "", 422},
		{"bad status", "GET", "/v1/messages?status=happy", "", 422},
		{"dead letters limit", "GET", "/v1/dead-letters?limit=5000", "", 422},
		{"replay with nothing", "POST", "/v1/dead-letters/replay", `{}`, 422},
		{"replay ids and route", "POST", "/v1/dead-letters/replay", `{"ids":["a"],"route":"orders"}`, 422},
		{"replay unknown field", "POST", "/v1/dead-letters/replay", `{"id":"a"}`, 422},
		{"replay bad limit", "POST", "/v1/dead-letters/replay", `{"all":true,"limit":0}`, 422},
		{"replay malformed", "POST", "/v1/dead-letters/replay", `{"ids":`, 400},
		{"replay no body", "POST", "/v1/dead-letters/replay", ``, 400},
		// Valid input with no engine behind it.
		{"valid list", "GET", "/v1/messages?limit=10&status=failed", "", 503},
		{"valid replay", "POST", "/v1/dead-letters/replay", `{"all":true}`, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(t, h, tt.method, tt.target, loopback, []byte(tt.body), map[string]string{"Content-Type": "application/json"})
			p := problemOf(t, w, tt.status)
			if p.Instance == "" {
				t.Errorf("problem without instance: %s", w.Body)
			}
		})
	}
}

func TestHealthAndSpec(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	h, err := New(Options{Config: baseConfig(), Registry: reg, Logger: quietLogger(), Version: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get("/healthz")
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", resp.StatusCode, b)
	}
	resp, b = get("/metrics")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "tandem_test_total 1") {
		t.Errorf("metrics: %d %s", resp.StatusCode, b)
	}
	resp, b = get("/openapi.json")
	if resp.StatusCode != 200 {
		t.Fatalf("openapi: %d %s", resp.StatusCode, b)
	}
	var spec struct {
		OpenAPI string                    `json:"openapi"`
		Info    struct{ Version string }  `json:"info"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.OpenAPI != "3.1.0" || spec.Info.Version != "1.2.3" {
		t.Errorf("openapi %q version %q", spec.OpenAPI, spec.Info.Version)
	}
	for path, method := range map[string]string{
		"/v1/messages": "get", "/v1/messages/{id}": "get", "/v1/dead-letters": "get",
		"/v1/dead-letters/replay": "post", "/v1/deliveries/{id}/replay": "post",
		"/v1/routes": "get", "/v1/targets": "get", "/orders": "post", "/refunds": "put",
		"/healthz": "get", "/readyz": "get", "/metrics": "get",
	} {
		if spec.Paths[path][method] == nil {
			t.Errorf("openapi lacks %s %s", method, path)
		}
	}
	for _, bad := range []string{"cdn", "unpkg", "jsdelivr"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("openapi mentions %s", bad)
		}
	}
	for _, path := range []string{"/docs", "/schemas/Problem.json", "/openapi.yaml"} {
		if resp, _ := get(path); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestTargetsHideSecrets(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	w := call(t, h, "GET", "/v1/targets", loopback, nil, nil)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	for _, secret := range []string{"s3cret", "pw", "hidden", "bearer-value", "user"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("targets answer shows %q: %s", secret, w.Body)
		}
	}
	var got struct {
		Targets []targetView `json:"targets"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := targetView{Name: "payments", URL: "http://xxxxx@127.0.0.1:1/charge?token=xxxxx", Method: "POST"}
	if len(got.Targets) != 1 || !reflect.DeepEqual(got.Targets[0], want) {
		t.Errorf("targets %+v, want [%+v]", got.Targets, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*config.Config)
	}{
		{"reserved path", func(c *config.Config) { c.Routes[0].Path = "/v1/messages" }},
		{"reserved subpath", func(c *config.Config) { c.Routes[0].Path = "/metrics/x" }},
		{"duplicate route", func(c *config.Config) { c.Routes[1].Path, c.Routes[1].Method = "/orders", "POST" }},
		{"relative path", func(c *config.Config) { c.Routes[0].Path = "orders" }},
		{"bad hash", func(c *config.Config) {
			c.Auth.Keys = []config.Key{{Name: "k", Hash: "md5:00", Scopes: []string{"admin"}}}
		}},
		{"short hash", func(c *config.Config) {
			c.Auth.Keys = []config.Key{{Name: "k", Hash: "sha256:abcd", Scopes: []string{"admin"}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.mutate(cfg)
			if _, err := New(Options{Config: cfg, Logger: quietLogger()}); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted no config")
	}
}

func TestRoutePattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, path, want string
	}{
		{"", "/orders", "POST /orders"},
		{"put", "/a/b", "PUT /a/b"},
		{"POST", "/hooks/", "POST /hooks/{$}"},
		{"POST", "/x/{id}", "POST /x/%7Bid%7D"},
		{"POST", "/with space", "POST /with%20space"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := routePattern(tt.method, tt.path)
			if err != nil || got != tt.want {
				t.Fatalf("routePattern(%q, %q) = %q, %v; want %q", tt.method, tt.path, got, err, tt.want)
			}
		})
	}
}

func TestExactRoutePaths(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Routes = append(cfg.Routes,
		&config.Route{Name: "hooks", Path: "/hooks/", Steps: cfg.Routes[0].Steps},
		&config.Route{Name: "braces", Path: "/x/{id}", Steps: cfg.Routes[0].Steps})
	h := newHandler(t, cfg)
	tests := []struct {
		path   string
		status int
	}{
		{"/hooks/", 503}, // matched; no engine
		{"/hooks/deeper", 404},
		{"/x/%7Bid%7D", 503},
		{"/x/42", 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			problemOf(t, call(t, h, "POST", tt.path, loopback, []byte("x"), nil), tt.status)
		})
	}
}

func TestRecoverer(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	p := problemOf(t, w, 500)
	if strings.Contains(p.Detail, "boom") {
		t.Errorf("panic value leaked to the client: %q", p.Detail)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "127.255.0.1:1": true, "[::1]:1": true, "[::ffff:127.0.0.2]:1": true,
		"10.0.0.1:1": false, "[::2]:1": false, "": false, "localhost:1": false, "127.0.0.1": true,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestTargetsHideInterpolatedURL(t *testing.T) {
	t.Setenv("TANDEM_API_TEST_URL", "http://secret-host.internal/hook")
	cfg, err := config.Parse([]byte(`
targets:
  hook: { url: "${env:TANDEM_API_TEST_URL}" }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: hook }] }
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := call(t, newHandler(t, cfg), "GET", "/v1/targets", loopback, nil, nil)
	if w.Code != 200 || strings.Contains(w.Body.String(), "secret-host") || !strings.Contains(w.Body.String(), `"name":"hook"`) {
		t.Errorf("targets: %d %s", w.Code, w.Body)
	}
}
