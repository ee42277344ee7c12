package target

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestResponseHeadersBounded: a target's response headers are kept only
// up to max_response_body bytes, like its body.
func TestResponseHeadersBounded(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 50 {
			w.Header().Add("X-Big", strings.Repeat(string(rune('a'+i%26)), 1000))
		}
		w.Header().Set("A-Small", "1")
		w.WriteHeader(200)
	}))
	t.Cleanup(srv.Close)
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: srv.URL, MaxResponseBody: 4096}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var n int
	for k, vs := range res.Header {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	if n > 4096 || res.Header.Get("A-Small") != "1" || len(res.Header.Values("X-Big")) == 0 {
		t.Errorf("kept %d bytes of headers: %d X-Big, A-Small %q", n, len(res.Header.Values("X-Big")), res.Header.Get("A-Small"))
	}
}
