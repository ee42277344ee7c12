package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkIngest measures POST /orders through the handler, the real
// engine and a SQLite store (group commit shared by parallel callers).
//
//	go test ./internal/api -run '^$' -bench Ingest -cpu 1,8
func BenchmarkIngest(b *testing.B) {
	r := newRig(b, "")
	body := []byte(`{"total": 12.5, "items": ["a", "b"], "customer": "c-1"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			r.handler.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkIngestRejected measures a request refused before the engine
// (malformed JSON): the cost of the HTTP layer alone.
func BenchmarkIngestRejected(b *testing.B) {
	h, err := New(Options{Config: baseConfig(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"total": 12.5,`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			b.Fatalf("status %d", w.Code)
		}
	}
}
