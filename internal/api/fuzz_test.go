package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzIngest drives the ingest handler with arbitrary bodies, content
// types, idempotency keys and query strings, through a real engine and a
// real SQLite store. Bad input must get a 4xx problem, never a 5xx or a
// panic.
//
//	go test ./internal/api -run '^$' -fuzz FuzzIngest -fuzztime 30s
func FuzzIngest(f *testing.F) {
	r := newRig(f, "")
	seeds := []struct {
		body        string
		contentType string
		key         string
		query       string
	}{
		{`{"total": 1}`, "application/json", "", ""},
		{`{"total": 1}`, "application/json", "k-1", "a=1&b=2"},
		{`{"total": 2}`, "application/json", "k-1", ""}, // conflict with the seed before
		{`{"a":}`, "application/json", "", ""},
		{``, "application/json", "", ""},
		{`[1, 2`, "application/problem+json; charset=utf-8", "", ""},
		{"\xff\xfe\x00", "application/octet-stream", "", "%zz"},
		{`<a/>`, "text/xml", "clé", ""},
		{`{}`, "application/json; charset=\"", "", ";;"},
		{`"x"`, "", "\x7f", "a=%"},
		{string(bytes.Repeat([]byte("a"), 1100)), "text/plain", "", ""},
		{`{"deep":` + string(bytes.Repeat([]byte("["), 600)) + `}`, "application/json", "", ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.contentType, s.key, s.query)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType, key, query string) {
		req := httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body))
		req.URL.RawQuery = query
		req.RemoteAddr = "192.0.2.7:4000"
		if contentType != "" {
			req.Header["Content-Type"] = []string{contentType}
		}
		if key != "" {
			req.Header["Idempotency-Key"] = []string{key}
		}
		w := httptest.NewRecorder()
		r.handler.ServeHTTP(w, req)

		ct := w.Header().Get("Content-Type")
		switch {
		case w.Code >= 500:
			t.Fatalf("status %d for body %q type %q key %q query %q: %s", w.Code, body, contentType, key, query, w.Body)
		case w.Code >= 400:
			var p Problem
			if ct != problemContentType || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Status != w.Code {
				t.Fatalf("status %d with content type %q and body %s", w.Code, ct, w.Body)
			}
		case w.Code == http.StatusAccepted:
			if ct != "application/json" || !json.Valid(w.Body.Bytes()) || w.Header().Get("Location") == "" {
				t.Fatalf("202 with content type %q, Location %q, body %s", ct, w.Header().Get("Location"), w.Body)
			}
		default:
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body)
		}
	})
}
