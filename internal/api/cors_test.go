package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
)

func corsConfig(c *config.CORS) *config.Config {
	cfg := baseConfig()
	cfg.Server.CORS = c
	return cfg
}

func preflightHeaders(origin, method, headers string) map[string]string {
	h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
	if headers != "" {
		h["Access-Control-Request-Headers"] = headers
	}
	return h
}

func TestCORSOffByDefault(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	w := call(t, h, "OPTIONS", "/orders", loopback, nil, preflightHeaders("https://shop.example", "POST", "content-type"))
	problemOf(t, w, http.StatusMethodNotAllowed)
	if v := w.Header().Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("Access-Control-Allow-Origin %q without server.cors", v)
	}
	w = call(t, h, "POST", "/orders", loopback, []byte("x"), map[string]string{"Origin": "https://shop.example"})
	if v := w.Header().Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("Access-Control-Allow-Origin %q without server.cors", v)
	}
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	h := newHandler(t, withKeys(corsConfig(&config.CORS{
		AllowedOrigins: []string{"https://shop.example"},
		AllowedMethods: []string{"GET", "POST", "PUT"},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key"},
		MaxAge:         config.Duration(10 * time.Minute),
	})))
	const shop = "https://shop.example"

	// Allowed, on a route and on the admin API, with no credentials (a
	// browser sends none with a preflight, though keys are configured).
	for _, tt := range []struct{ path, method string }{{"/orders", "POST"}, {"/refunds", "PUT"}, {"/v1/messages", "GET"}, {"/v1/dead-letters/replay", "POST"}} {
		w := call(t, h, "OPTIONS", tt.path, "192.0.2.1:1000", nil, preflightHeaders("https://SHOP.example", tt.method, "Content-Type, idempotency-key,authorization"))
		if w.Code != http.StatusNoContent {
			t.Fatalf("preflight %s %s: %d %s", tt.method, tt.path, w.Code, w.Body)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":  "https://SHOP.example",
			"Access-Control-Allow-Methods": "GET, POST, PUT",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key",
			"Access-Control-Max-Age":       "600",
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("preflight %s %s: %s %q, want %q", tt.method, tt.path, k, got, v)
			}
		}
		if vary := strings.Join(w.Header().Values("Vary"), ","); !strings.Contains(vary, "Origin") || !strings.Contains(vary, "Access-Control-Request-Method") {
			t.Errorf("Vary %q", vary)
		}
	}

	// Refused, each with a problem that says why.
	for _, tt := range []struct {
		name, path string
		hdr        map[string]string
		status     int
		typ, says  string
	}{
		{"other origin", "/orders", preflightHeaders("https://evil.example", "POST", ""), 403, tapi.TypeForbidden, "allowed_origins"},
		{"method not allowed by cors", "/orders", preflightHeaders(shop, "DELETE", ""), 403, tapi.TypeForbidden, "allowed_methods"},
		{"header not allowed", "/orders", preflightHeaders(shop, "POST", "X-Secret"), 403, tapi.TypeForbidden, "allowed_headers"},
		{"method the path does not serve", "/orders", preflightHeaders(shop, "GET", ""), 405, tapi.TypeMethodNotAllowed, "allowed: POST"},
		{"no such path", "/nowhere", preflightHeaders(shop, "POST", ""), 404, tapi.TypeNotFound, "no route"},
	} {
		w := call(t, h, "OPTIONS", tt.path, loopback, nil, tt.hdr)
		p := problemOf(t, w, tt.status)
		if p.Type != tt.typ || !strings.Contains(p.Detail, tt.says) {
			t.Errorf("%s: %s %q, want %s saying %q", tt.name, p.Type, p.Detail, tt.typ, tt.says)
		}
		if v := w.Header().Get("Access-Control-Allow-Methods"); v != "" {
			t.Errorf("%s: Access-Control-Allow-Methods %q on a refusal", tt.name, v)
		}
	}

	// An OPTIONS that is not a preflight is an ordinary unserved method.
	problemOf(t, call(t, h, "OPTIONS", "/orders", loopback, nil, map[string]string{"Origin": shop}), http.StatusMethodNotAllowed)
}

func TestCORSActualRequests(t *testing.T) {
	t.Parallel()
	h := newHandler(t, corsConfig(&config.CORS{
		AllowedOrigins: []string{"https://shop.example"},
		AllowedMethods: []string{"GET", "POST"},
		AllowedHeaders: []string{"Content-Type"},
	}))
	// An allowed origin can read the answer and its Location and
	// Retry-After, error answers included.
	w := call(t, h, "POST", "/orders", loopback, []byte(`{}`), map[string]string{"Origin": "https://shop.example", "Content-Type": "application/json"})
	problemOf(t, w, http.StatusServiceUnavailable) // no engine behind this handler
	if w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Retry-After") ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Location") {
		t.Errorf("headers %v", w.Header())
	}
	w = call(t, h, "GET", "/v1/messages?limit=0", loopback, nil, map[string]string{"Origin": "https://shop.example"})
	problemOf(t, w, http.StatusUnprocessableEntity)
	if w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Errorf("admin answer without Access-Control-Allow-Origin: %v", w.Header())
	}
	// Another origin gets the answer without the header, so its browser
	// keeps it from the page; auth and everything else are unchanged.
	w = call(t, h, "GET", "/v1/messages?limit=0", loopback, nil, map[string]string{"Origin": "https://evil.example"})
	problemOf(t, w, http.StatusUnprocessableEntity)
	if v := w.Header().Get("Access-Control-Allow-Origin"); v != "" || w.Header().Get("Vary") != "Origin" {
		t.Errorf("other origin: Access-Control-Allow-Origin %q, Vary %q", v, w.Header().Get("Vary"))
	}
}

func TestCORSAnyOriginAnyHeader(t *testing.T) {
	t.Parallel()
	h := newHandler(t, corsConfig(&config.CORS{
		AllowedOrigins: []string{"*"}, AllowedMethods: []string{"POST"}, AllowedHeaders: []string{"*"},
	}))
	w := call(t, h, "OPTIONS", "/orders", loopback, nil, preflightHeaders("https://any.example", "POST", "authorization, x-trace"))
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
		w.Header().Get("Access-Control-Allow-Headers") != "authorization, x-trace" || w.Header().Get("Access-Control-Max-Age") != "" {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
}
