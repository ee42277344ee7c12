package target

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// dropServer is a raw HTTP/1.1 server: on every connection it answers the
// first request 200 (keeping the connection alive) and drops the
// connection after reading the second, without answering. It counts every
// request it read.
type dropServer struct {
	ln   net.Listener
	reqs atomic.Int64
}

func newDropServer(t *testing.T) *dropServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dropServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *dropServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := 0; ; i++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		s.reqs.Add(1)
		if i > 0 {
			return // read, then drop: the request may have taken effect
		}
		answer := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		if req.Method == http.MethodHead {
			answer = answer[:len(answer)-2] // a HEAD answer has no body
		}
		if _, err := io.WriteString(conn, answer); err != nil {
			return
		}
	}
}

// TestNoResendAfterWrite: net/http resends a request it deems replayable
// (GET and friends, or any request with an Idempotency-Key header) when a
// kept-alive connection fails after the request was written. Each such
// resend would reach the target without being counted as an attempt. The
// caller must see exactly one request on the wire per Do.
func TestNoResendAfterWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		body   []byte
		header http.Header
		key    string
	}{
		{name: "post with body and key", method: http.MethodPost, body: []byte(`{"a":1}`), key: "m1.charge"},
		{name: "post without body, with key", method: http.MethodPost, key: "m1.charge"},
		{name: "put with a static X-Idempotency-Key", method: http.MethodPut, body: []byte(`{}`), header: http.Header{"X-Idempotency-Key": {"k"}}},
		{name: "get", method: http.MethodGet, key: "m1.read"},
		{name: "delete", method: http.MethodDelete, key: "m1.undo"},
		{name: "head", method: http.MethodHead},
		{name: "options", method: http.MethodOptions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newDropServer(t)
			c := NewCaller(CallerOptions{})
			defer c.Close()
			req := &Request{
				Endpoint:       &Endpoint{Name: "drop", URL: "http://" + srv.ln.Addr().String() + "/", Method: tc.method, TotalTimeout: 5 * time.Second},
				Body:           tc.body,
				Header:         tc.header,
				IdempotencyKey: tc.key,
			}
			ctx := context.Background()
			if res := c.Do(ctx, req); res.Outcome != record.OutcomeSuccess {
				t.Fatalf("first call: %v (status %d)", res.Err, res.Status)
			}
			res := c.Do(ctx, req)
			if got := srv.reqs.Load(); got != 2 {
				t.Errorf("the server read %d requests for 2 calls; the transport resent one on its own", got)
			}
			if res.Outcome != record.OutcomeTransient {
				t.Errorf("second call: outcome %s (status %d, error %v), want transient: the connection was dropped", res.Outcome, res.Status, res.Err)
			}
		})
	}
}

// TestKeyOnTheWire: the key still reaches the target under its usual name
// (header names are case-insensitive), once.
func TestKeyOnTheWire(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	c := NewCaller(CallerOptions{})
	defer c.Close()
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}, IdempotencyKey: "m1.charge",
		Header: http.Header{"X-Idempotency-Key": {"x"}}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	s := <-rec.reqs
	if got := s.Header.Values("Idempotency-Key"); len(got) != 1 || got[0] != "m1.charge" {
		t.Errorf("Idempotency-Key = %q, want [m1.charge]", got)
	}
	if got := s.Header.Values("X-Idempotency-Key"); len(got) != 1 || got[0] != "x" {
		t.Errorf("X-Idempotency-Key = %q, want [x]", got)
	}
}

// TestNoResendKeepsGetBodiless: the unrewindable body noResend gives a GET
// is not sent, over HTTP/1.1 or HTTP/2.
func TestNoResendKeepsGetBodiless(t *testing.T) {
	t.Parallel()
	for _, h2 := range []bool{false, true} {
		var clen atomic.Int64
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			clen.Store(r.ContentLength)
			io.WriteString(w, "ok")
		})
		rec.srv.EnableHTTP2 = h2
		rec.srv.StartTLS()
		t.Cleanup(rec.srv.Close)
		roots := rec.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		c := NewCaller(CallerOptions{TLSConfig: &tls.Config{RootCAs: roots}})
		res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, Method: http.MethodGet}, IdempotencyKey: "m.read"})
		c.Close()
		if res.Err != nil || string(res.Body) != "ok" {
			t.Fatalf("h2 %t: %v %q", h2, res.Err, res.Body)
		}
		s := rec.last(t)
		if s.Method != http.MethodGet || len(s.Body) != 0 || clen.Load() > 0 || s.Header.Get("Idempotency-Key") != "m.read" || (s.ProtoMajor == 2) != h2 {
			t.Errorf("h2 %t: server saw %s HTTP/%d, body %q, content length %d, key %q", h2, s.Method, s.ProtoMajor, s.Body, clen.Load(), s.Header.Get("Idempotency-Key"))
		}
		if te := s.Header.Get("Transfer-Encoding"); te != "" {
			t.Errorf("h2 %t: Transfer-Encoding %q on a GET", h2, te)
		}
	}
}
