package benchrun

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// sink is a sample target: it answers 200 with a small JSON body and
// counts the requests it answered.
type sink struct {
	srv   *http.Server
	url   string
	count atomic.Int64
}

func newSink() (*sink, error) {
	s := &sink{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true,"id":"abc123"}`)
		s.count.Add(1)
	})
	u, srv, err := serve(h)
	if err != nil {
		return nil, err
	}
	s.srv, s.url = srv, u
	return s, nil
}

func (s *sink) close() { _ = s.srv.Close() }

// serve serves h on a fresh loopback port.
func serve(h http.Handler) (string, *http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), srv, nil
}

// bareFanOut is the baseline a gateway is measured against: a stdlib
// handler that POSTs the body to both targets in parallel and answers with
// both bodies, with nothing else (no store, no retries, no checks).
func bareFanOut(a, b string) http.Handler {
	tr := &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	call := func(ctx context.Context, url string, body []byte) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ra, rb []byte
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); ra, ea = call(r.Context(), a, body) }()
		rb, eb = call(r.Context(), b, body)
		wg.Wait()
		if ea != nil || eb != nil {
			http.Error(w, "upstream failed", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"a":%s,"b":%s}`, ra, rb)
	})
}

// ceiling is the HTTP ceiling: a trivial handler that reads the body and
// answers 202, as fast as net/http goes on this machine.
func ceiling() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"01J00000000000000000000000","status":"accepted"}`)
	})
}
