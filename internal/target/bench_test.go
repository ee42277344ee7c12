package target

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkDo measures one call over a kept-alive loopback connection,
// run from GOMAXPROCS goroutines.
func BenchmarkDo(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	c := NewCaller(CallerOptions{})
	defer c.Close()
	ep := &Endpoint{URL: srv.URL}
	body := []byte(`{"order":"o-1","total":42}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res := c.Do(context.Background(), &Request{Endpoint: ep, Body: body, IdempotencyKey: "m.step"})
			if res.Err != nil {
				b.Error(res.Err)
				return
			}
		}
	})
}
