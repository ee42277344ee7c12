package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
)

// TestProblemTypes checks that every kind of error answer, from the plain
// handlers and from huma alike, carries its stable type.
func TestProblemTypes(t *testing.T) {
	t.Parallel()
	plain := newHandler(t, baseConfig())
	keyed := newHandler(t, withKeys(baseConfig()))
	jsonCT := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name                 string
		h                    http.Handler
		method, target, body string
		remote               string
		header               map[string]string
		status               int
		typ                  string
	}{
		{"no such path", plain, "GET", "/nowhere", "", loopback, nil, 404, tapi.TypeNotFound},
		{"wrong method", plain, "DELETE", "/orders", "", loopback, nil, 405, tapi.TypeMethodNotAllowed},
		{"no token", keyed, "GET", "/v1/messages", "", loopback, nil, 401, tapi.TypeUnauthorized},
		{"no scope", keyed, "PUT", "/refunds", "{}", loopback, map[string]string{"Authorization": "Bearer shop-key"}, 403, tapi.TypeForbidden},
		{"remote admin", plain, "GET", "/v1/messages", "", "192.0.2.1:1000", nil, 403, tapi.TypeForbidden},
		{"ingest bad json", plain, "POST", "/orders", `{"a":`, loopback, jsonCT, 400, tapi.TypeMalformedRequest},
		{"ingest bad key", plain, "POST", "/orders", `{}`, loopback, map[string]string{"Idempotency-Key": ""}, 400, tapi.TypeMalformedRequest},
		{"ingest too large", plain, "POST", "/orders", strings.Repeat("a", 65), loopback, nil, 413, tapi.TypeTooLarge},
		{"ingest without engine", plain, "POST", "/orders", `{}`, loopback, jsonCT, 503, tapi.TypeUnavailable},
		{"admin bad json", plain, "POST", "/v1/dead-letters/replay", `{"ids":`, loopback, jsonCT, 400, tapi.TypeMalformedRequest},
		{"admin too large", plain, "POST", "/v1/dead-letters/replay", `{"route":"` + strings.Repeat("a", adminMaxBody) + `"}`, loopback, jsonCT, 413, tapi.TypeTooLarge},
		{"admin not json", plain, "POST", "/v1/dead-letters/replay", `all`, loopback, map[string]string{"Content-Type": "text/plain"}, 415, tapi.TypeUnsupportedMediaType},
		{"admin bad limit", plain, "GET", "/v1/messages?limit=0", "", loopback, nil, 422, tapi.TypeValidation},
		{"admin replay selects nothing", plain, "POST", "/v1/dead-letters/replay", `{}`, loopback, jsonCT, 422, tapi.TypeValidation},
		{"admin without engine", plain, "GET", "/v1/messages", "", loopback, nil, 503, tapi.TypeUnavailable},
		{"readyz without engine", plain, "GET", "/readyz", "", loopback, nil, 503, tapi.TypeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(t, tt.h, tt.method, tt.target, tt.remote, []byte(tt.body), tt.header)
			p := problemOf(t, w, tt.status)
			if p.Type != tt.typ {
				t.Errorf("type %q, want %q: %s", p.Type, tt.typ, w.Body)
			}
			if tt.status == 503 && w.Header().Get("Retry-After") != "1" {
				t.Errorf("503 without Retry-After: 1")
			}
		})
	}
}

// TestOneTooLargeText checks that a route and the admin API word the 413
// the same way, each with its own limit.
func TestOneTooLargeText(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig()) // server.max_body: 64
	ingest := problemOf(t, call(t, h, "POST", "/orders", loopback, []byte(strings.Repeat("a", 65)), nil), 413)
	admin := problemOf(t, call(t, h, "POST", "/v1/dead-letters/replay", loopback,
		[]byte(`{"route":"`+strings.Repeat("a", adminMaxBody)+`"}`), map[string]string{"Content-Type": "application/json"}), 413)
	if want := "the body is larger than the limit of 64 bytes"; ingest.Detail != want {
		t.Errorf("route 413 detail %q, want %q", ingest.Detail, want)
	}
	if want := fmt.Sprintf("the body is larger than the limit of %d bytes", adminMaxBody); admin.Detail != want {
		t.Errorf("admin 413 detail %q, want %q", admin.Detail, want)
	}
}

// TestUnsupportedMediaTypeSaysWhatToSend checks the 415 detail.
func TestUnsupportedMediaTypeSaysWhatToSend(t *testing.T) {
	t.Parallel()
	h := newHandler(t, baseConfig())
	w := call(t, h, "POST", "/v1/dead-letters/replay", loopback, []byte(`all`), map[string]string{"Content-Type": "text/plain"})
	p := problemOf(t, w, http.StatusUnsupportedMediaType)
	if !strings.Contains(p.Detail, "Content-Type: application/json") {
		t.Errorf("415 detail %q does not say which media type to send", p.Detail)
	}
}

// TestErrorRules runs the one error table over wrapped errors of the
// engine and the store, as a route and as the admin API.
func TestErrorRules(t *testing.T) {
	t.Parallel()
	s := &server{log: quietLogger()}
	tests := []struct {
		name       string
		err        error
		ingest     bool
		status     int
		typ        string
		detail     string // substring
		retryAfter bool
	}{
		{"idempotency conflict", fmt.Errorf("insert: %w", store.ErrIdempotencyConflict), true, 422, tapi.TypeIdempotencyConflict, "different body", false},
		{"idempotency key in flight", fmt.Errorf("ingest: %w", engine.ErrIdempotencyInFlight), true, 409, tapi.TypeIdempotencyInFlight, "still waiting", false},
		{"store unavailable on a route", fmt.Errorf("insert: %w", store.ErrUnavailable), true, 503, tapi.TypeUnavailable,
			"may have been accepted; resend with the same Idempotency-Key", true},
		{"store unavailable on the admin API", fmt.Errorf("list: %w", store.ErrUnavailable), false, 503, tapi.TypeUnavailable, "the store is unavailable; try again", true},
		{"shutting down", fmt.Errorf("ingest: %w", engine.ErrShuttingDown), true, 503, tapi.TypeShuttingDown, "shutting down", true},
		{"unknown route", fmt.Errorf("%w: %q", engine.ErrUnknownRoute, "x"), true, 404, tapi.TypeNotFound, "no such route", false},
		{"not found", store.ErrNotFound, false, 404, tapi.TypeNotFound, "not found", false},
		{"invalid cursor", fmt.Errorf("list: %w", store.ErrInvalidCursor), false, 400, tapi.TypeInvalidCursor, "cursor", false},
		{"anything else", errors.New("disk on fire"), true, 500, tapi.TypeInternal, "internal error", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := s.errorProblem(context.Background(), "test", tt.ingest, tt.err)
			if p.Status != tt.status || p.Type != tt.typ || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("got %d %s %q; want %d %s with %q", p.Status, p.Type, p.Detail, tt.status, tt.typ, tt.detail)
			}
			if got := p.GetHeaders().Get("Retry-After") == "1"; got != tt.retryAfter {
				t.Errorf("Retry-After: 1 is %v, want %v", got, tt.retryAfter)
			}
			if !tt.ingest && strings.Contains(p.Detail, "accepted") {
				t.Errorf("an admin answer talks of an accepted message: %q", p.Detail)
			}
		})
	}
	// A cancelled caller: unknown whether the message went in.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := s.errorProblem(ctx, "test", true, fmt.Errorf("insert: %w", context.Canceled))
	if p.Status != 503 || !strings.Contains(p.Detail, "resend with the same Idempotency-Key") {
		t.Errorf("cancelled ingest: %d %q", p.Status, p.Detail)
	}
}

// TestHumaGlobalsUntouched checks that building a server leaves huma's
// package-level error constructor alone, so a program that embeds tandem
// and uses huma itself keeps its own error type.
func TestHumaGlobalsUntouched(t *testing.T) {
	t.Parallel()
	newHandler(t, baseConfig())
	if _, ok := huma.NewError(400, "x").(*huma.ErrorModel); !ok {
		t.Errorf("huma.NewError was replaced: it returns %T", huma.NewError(400, "x"))
	}
}
