// Package sampleapi holds small HTTP APIs that stand in for the targets of
// the example configs (order, registration, publishing), for the examples'
// end-to-end tests and for `tandem demo --example`. Each records every
// call, answers a repeated Idempotency-Key with its first answer, and can be
// held (every request waits until Release) to play a slow service.
package sampleapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Call is one request a Service received.
type Call struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
	At                  time.Time
	// Status and Answer are what the service answered.
	Status int
	Answer []byte
}

// JSON decodes the call's body into v.
func (c *Call) JSON(v any) error { return json.Unmarshal(c.Body, v) }

// Handler answers one call with a status and a JSON-encodable body.
type Handler func(c *Call) (int, any)

type answer struct {
	status int
	body   []byte
}

// Service is one sample API.
type Service struct {
	// Name identifies the service in output.
	Name string

	mu     sync.Mutex
	routes map[string]Handler // "METHOD /path-prefix"
	calls  []Call
	seen   map[string]answer // Idempotency-Key → first answer
	seq    map[string]int
	held   chan struct{} // non-nil while held: closed by Release
	header http.Header   // sent with every answer (catalog.go)
	notify chan struct{} // closed and replaced on every call
}

// New returns a service with no routes; unknown paths answer 404.
func New(name string) *Service {
	return &Service{Name: name, routes: map[string]Handler{}, seen: map[string]answer{},
		seq: map[string]int{}, notify: make(chan struct{})}
}

// Handle routes method and every path under prefix to h.
func (s *Service) Handle(method, prefix string, h Handler) {
	s.mu.Lock()
	s.routes[method+" "+prefix] = h
	s.mu.Unlock()
}

// Next returns the next number of a sequence ("ch", "rs", ...), from 1.
func (s *Service) Next(seq string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq[seq]++
	return s.seq[seq]
}

// Hold makes every request wait until Release (or until the request ends).
func (s *Service) Hold() {
	s.mu.Lock()
	if s.held == nil {
		s.held = make(chan struct{})
	}
	s.mu.Unlock()
}

// Release lets held requests go on.
func (s *Service) Release() {
	s.mu.Lock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
	s.mu.Unlock()
}

// Calls returns the calls received so far whose path starts with prefix,
// in arrival order.
func (s *Service) Calls(prefix string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// WaitCalls waits until n calls under prefix arrived, or ctx ends.
func (s *Service) WaitCalls(ctx context.Context, prefix string, n int) ([]Call, error) {
	for {
		s.mu.Lock()
		ch := s.notify
		s.mu.Unlock()
		if cs := s.Calls(prefix); len(cs) >= n {
			return cs, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %d calls to %s did not arrive: %w", s.Name, n, prefix, ctx.Err())
		case <-ch:
		}
	}
}

// ServeHTTP records the call, waits while held, and answers.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	c := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body, At: time.Now()}
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	a, repeat := s.seen[key]
	h := s.route(r.Method, r.URL.Path)
	s.mu.Unlock()
	if !repeat || key == "" {
		a = answer{status: http.StatusNotFound, body: []byte(`{"error":"no such endpoint"}`)}
		if h != nil {
			st, v := h(&c)
			b, err := json.Marshal(v)
			if err != nil {
				st, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
			}
			a = answer{status: st, body: b}
		}
	}
	c.Status, c.Answer = a.status, a.body
	s.mu.Lock()
	if key != "" && !repeat && a.status < 500 {
		s.seen[key] = a
	}
	s.calls = append(s.calls, c)
	close(s.notify)
	s.notify = make(chan struct{})
	for k, vs := range s.header {
		w.Header()[k] = vs
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// route finds the handler with the longest matching prefix. s.mu is held.
func (s *Service) route(method, path string) Handler {
	var keys []string
	for k := range s.routes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		m, prefix, _ := strings.Cut(k, " ")
		if m == method && strings.HasPrefix(path, prefix) {
			return s.routes[k]
		}
	}
	return nil
}

// Serve runs s on a new loopback listener until ctx ends; it returns the
// base URL ("http://127.0.0.1:port").
func (s *Service) Serve(ctx context.Context) (string, error) {
	return s.ServeAddr(ctx, "127.0.0.1:0")
}

// ServeAddr runs s on addr ("127.0.0.1:9001"; port 0 picks one) until ctx
// ends; it returns the base URL.
func (s *Service) ServeAddr(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("start %s: %w", s.Name, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		s.Release()
		_ = srv.Close()
	}()
	return "http://" + ln.Addr().String(), nil
}
