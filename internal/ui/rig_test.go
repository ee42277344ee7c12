package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/events"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// A real stack for the dashboard's tests: SQLite store, event hub,
// engine, admin API and dashboard behind one httptest server, with real
// HTTP targets.

// target is a real HTTP target whose answer the test sets; while held,
// requests wait until released.
type target struct {
	srv    *httptest.Server
	status atomic.Int64
	// failFirst: this many requests get a 503 before status applies.
	failFirst atomic.Int64
	mu        sync.Mutex
	gate      chan struct{} // nil: answer at once
}

func newTarget(t testing.TB, status int) *target {
	t.Helper()
	tg := &target{}
	tg.status.Store(int64(status))
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tg.mu.Lock()
		gate := tg.gate
		tg.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if tg.failFirst.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"busy"}`)
			return
		}
		w.WriteHeader(int(tg.status.Load()))
		_, _ = fmt.Fprintf(w, `{"id":"c-%d","token":"s3cr3t-token","ok":%v}`, time.Now().UnixNano()%1000, tg.status.Load() < 300)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// hold makes requests wait until release.
func (tg *target) hold() {
	tg.mu.Lock()
	tg.gate = make(chan struct{})
	tg.mu.Unlock()
}

func (tg *target) release() {
	tg.mu.Lock()
	if tg.gate != nil {
		close(tg.gate)
		tg.gate = nil
	}
	tg.mu.Unlock()
}

const rigYAML = `
targets:
  payments:  { url: %q, retry: { initial: 100ms, max: 200ms } }
  inventory: { url: %q }
  shipping:  { url: %q, retry: { max_attempts: 1 }, rate_limit: { per_second: 50, burst: 10 }, concurrency: 4 }
  refunds:   { url: %q }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: charge, target: payments }
      - { name: ship, target: shipping, after: [charge] }
  - name: place-order
    path: /place-order
    saga: true
    steps:
      - name: charge
        target: payments
        compensate: { target: refunds }
      - { name: reserve, target: inventory, after: [charge] }
%s`

const adminKey = "ops-secret-key-1"

type stack struct {
	srv                                    *httptest.Server
	eng                                    *engine.Engine
	hub                                    *events.Hub
	payments, inventory, shipping, refunds *target
}

func keysYAML() string {
	sum := sha256.Sum256([]byte(adminKey))
	shop := sha256.Sum256([]byte("shop-key"))
	return fmt.Sprintf(`
auth:
  keys:
    - { name: ops, hash: "sha256:%s", scopes: [admin] }
    - { name: shop, hash: "sha256:%s", scopes: ["ingest:*"] }
`, hex.EncodeToString(sum[:]), hex.EncodeToString(shop[:]))
}

// newStack starts everything; with keys, auth.keys holds adminKey.
func newStack(t testing.TB, keys bool) *stack {
	t.Helper()
	s := &stack{payments: newTarget(t, 200), inventory: newTarget(t, 200), shipping: newTarget(t, 400), refunds: newTarget(t, 200)}
	extra := ""
	if keys {
		extra = keysYAML()
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(rigYAML, s.payments.srv.URL, s.inventory.srv.URL, s.shipping.srv.URL, s.refunds.srv.URL, extra)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "ui.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.hub = events.New(events.Options{Store: st, Logger: log})
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); s.hub.Run(ctx) }()
	reg := telemetry.NewRegistry()
	s.eng, err = engine.New(engine.Options{Config: cfg, Store: s.hub.Wrap(st), Logger: log, PollInterval: 20 * time.Millisecond, Metrics: telemetry.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stream := api.NewEventStream(api.EventStreamOptions{Hub: s.hub, Store: st, Heartbeat: time.Second})
	admin, err := api.NewAdmin(s.eng, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := New(Options{Engine: s.eng, Admin: admin, Hub: s.hub, Stream: stream, Gatherer: reg, Logger: log, TraceLink: "http://127.0.0.1:16686/trace/{trace_id}"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Engine: s.eng, Logger: log, Version: "test", Events: stream, UI: dash, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewUnstartedServer(h)
	s.srv.Config.RegisterOnShutdown(s.hub.Close)
	s.srv.Start()
	t.Cleanup(func() {
		s.shipping.release()
		s.hub.Close()
		s.srv.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = s.eng.Shutdown(sctx)
		cancel()
		<-hubDone
		_ = st.Close()
	})
	return s
}

// send posts body to a route (with the shop key when keys are on) and
// returns the message id.
func (s *stack) send(t testing.TB, path, body string, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.srv.URL+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer shop-key")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != 202 {
		t.Fatalf("POST %s: %d (%v)", path, resp.StatusCode, err)
	}
	return a.ID
}

// messageStatus reads a message's status from the store.
func (s *stack) messageStatus(t testing.TB, id string) string {
	t.Helper()
	md, err := s.eng.Store().MessageGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return string(md.Message.Status)
}

// waitFor polls cond until it holds or the deadline passes (generous:
// the browser tests share a loaded machine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
