package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzAdminParams drives the admin API with arbitrary query strings, path
// ids and replay bodies, through a real engine and a real SQLite store
// holding a message and a dead letter. Every answer must be a 2xx with a
// JSON body or a 4xx problem; never a 5xx or a panic. Each iteration is
// one in-process request.
//
//	go test ./internal/api -run '^$' -fuzz FuzzAdminParams -fuzztime 30s
func FuzzAdminParams(f *testing.F) {
	r := newSweepRig(f)
	// Something to find: a message, and a cursor the server handed out.
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:5000"
	r.handler.ServeHTTP(w, req)
	var m struct{ ID string }
	if w.Code != http.StatusAccepted || json.Unmarshal(w.Body.Bytes(), &m) != nil {
		f.Fatalf("seed message: %d %s", w.Code, w.Body)
	}
	seeds := []struct {
		op    uint8
		query string
		id    string
		body  string
	}{
		{0, "limit=1", "", ""},
		{0, "limit=-1&status=bogus", "", ""},
		{0, "limit=1e9", "", ""},
		{0, "status=running&route=orders&cursor=x", "", ""},
		{0, "cursor=%ff%00", "", ""},
		{0, "limit=1&limit=2&limit=", "", ""},
		{1, "", m.ID, ""},
		{1, "", "\x00", ""},
		{1, "", "../../v1/routes", ""},
		{1, "", strings.Repeat("9", 300), ""},
		{2, "target=ok&limit=1000", "", ""},
		{2, "cursor=eyJ9", "", ""},
		{3, "", "", `{"all":true}`},
		{3, "", "", `{"ids":["` + m.ID + `"]}`},
		{3, "", "", `{"ids":[1,2]}`},
		{3, "", "", `{"route":"orders","limit":0}`},
		{3, "", "", `{"ids":[`},
		{3, "", "", "{\"ids\":[\"\xff\"]}"},
		{4, "", m.ID, ""},
		{4, "", "%2e%2e", ""},
		{5, "x=1", "", ""},
		{6, "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.op, s.query, s.id, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, op uint8, query, id string, body []byte) {
		method, path := http.MethodGet, ""
		switch op % 7 {
		case 0:
			path = "/v1/messages"
		case 1:
			path = "/v1/messages/" + id
		case 2:
			path = "/v1/dead-letters"
		case 3:
			method, path = http.MethodPost, "/v1/dead-letters/replay"
		case 4:
			method, path = http.MethodPost, "/v1/deliveries/"+id+"/replay"
		case 5:
			path = "/v1/routes"
		default:
			path = "/v1/targets"
		}
		req := httptest.NewRequest(method, "/", bytes.NewReader(body))
		// Set the URL by hand: an arbitrary id or query must reach the
		// server as it is, not be refused by a URL parser first.
		req.URL = &url.URL{Path: path, RawQuery: query}
		if esc := (&url.URL{Path: path}).EscapedPath(); esc != path {
			req.URL.RawPath = esc
		}
		req.RequestURI = ""
		req.RemoteAddr = "127.0.0.1:5000"
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.handler.ServeHTTP(w, req)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s?%q (body %q): no answer within 10s", method, path, query, body)
		}
		a := sweepAnswer{code: w.Code, ctype: w.Header().Get("Content-Type"), header: w.Header(), body: w.Body.Bytes()}
		if w.Code >= 300 && w.Code < 400 && w.Header().Get("Location") != "" {
			return // ServeMux redirects a path with "..", "." or "//" to its clean form
		}
		want := "2xx"
		if w.Code >= 300 {
			want = "4xx"
		}
		if v := a.verdict(want, false); v != "" {
			t.Fatalf("%s %s?%s: %s", method, path, query, v)
		}
	})
}
