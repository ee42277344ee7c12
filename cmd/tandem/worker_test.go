package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/gateway"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// workerOnce runs `tandem worker --once` in process and returns its
// stdout, stderr, error and exit code.
func workerOnce(t *testing.T, path string, extra ...string) (string, string, error, int) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := m.Run(ctx, append([]string{"worker", "--once", "--config", path}, extra...))
	return out.String(), errb.String(), err, exitCode(err)
}

// TestFunctionModeThenWorkerOnce: messages accepted through the function
// mode handler (an httptest server around gateway.New) land in
// PostgreSQL and nothing is delivered; `tandem worker --once` then
// delivers every step of every message, a retry and a dependent step
// included, each Idempotency-Key succeeding once, and exits 0.
func TestFunctionModeThenWorkerOnce(t *testing.T) {
	t.Parallel()
	dsn, count := pgSchema(t)
	a := newRecorder(func(_ string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable // retried within the window
		}
		return http.StatusOK
	})
	b := newRecorder(func(string, int) int { return http.StatusCreated })
	ta, tb := httptest.NewServer(a), httptest.NewServer(b)
	defer ta.Close()
	defer tb.Close()
	path := writeConfig(t, fmt.Sprintf(`
store: { driver: postgres, dsn: %q }
log: { level: warn }
targets:
  a: { url: %q, retry: { initial: 10ms, max: 50ms }, breaker: { disabled: true } }
  b: { url: %q }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: charge, target: a }
      - { name: notify, target: b, after: [charge], body: { charged: "{{ steps.charge.body.key }}" } }
`, dsn, ta.URL, tb.URL))

	h, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	fn := httptest.NewServer(h)
	const n = 20
	var ids []string
	for i := range n {
		resp, err := http.Post(fn.URL+"/orders", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /orders: %d %s", resp.StatusCode, body)
		}
		loc := resp.Header.Get("Location")
		ids = append(ids, strings.TrimPrefix(loc, "/v1/messages/"))
	}
	fn.Close()
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := count("SELECT count(*) FROM messages"); got != n {
		t.Fatalf("%d messages in PostgreSQL, want %d", got, n)
	}
	if seen, _, _ := a.snapshot(); len(seen) != 0 {
		t.Fatalf("the handler delivered %d keys; function mode must not deliver", len(seen))
	}

	stdout, stderr, err, code := workerOnce(t, path, "--window", "30s")
	if err != nil || code != exitOK {
		t.Fatalf("worker --once: exit %d, err %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	// Two attempts per charge (a 503, then 200) and one per notify.
	if !strings.Contains(stdout, fmt.Sprintf("worker: %d attempts; left: 0 due, 0 scheduled later, 0 waiting", 3*n)) {
		t.Errorf("worker --once summary = %q", stdout)
	}
	_, aok, _ := a.snapshot()
	_, bok, _ := b.snapshot()
	for _, id := range ids {
		if aok[id+".charge"] != 1 || bok[id+".notify"] != 1 {
			t.Errorf("message %s: charge succeeded %d times, notify %d; want once each", id, aok[id+".charge"], bok[id+".notify"])
		}
	}
	if got := count("SELECT count(*) FROM messages WHERE status = 'succeeded'"); got != n {
		t.Errorf("%d messages succeeded, want %d", got, n)
	}
}

// TestWorkerOnceExitCodes: dead letters and retries due after the window
// are not a worker failure (exit 0); a window that ends with deliveries
// still due exits 3. SQLite is allowed.
func TestWorkerOnceExitCodes(t *testing.T) {
	t.Parallel()
	gone := newRecorder(func(string, int) int { return http.StatusBadRequest }) // permanent
	down := newRecorder(func(string, int) int { return http.StatusServiceUnavailable })
	later := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120") // the retry falls after the window
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	tg, td := httptest.NewServer(gone), httptest.NewServer(down)
	// Cleanup, not defer: the parallel subtests run after this returns.
	t.Cleanup(tg.Close)
	t.Cleanup(td.Close)
	t.Cleanup(later.Close)
	cases := []struct {
		name    string
		target  string
		breaker string
		n       int
		code    int
		want    string
	}{
		{"dead letters exit 0", tg.URL, "{}", 3, exitOK, "0 due, 0 scheduled later, 0 waiting, 0 running elsewhere, 3 dead letters"},
		// The breaker opens on the first failures and stays open: the
		// deliveries are due, and held, when the window ends.
		{"still due exits 3", td.URL, "{ min_requests: 1, failure_ratio: 0.1, open_for: 1h }", 3, exitLeftDue, "still due"},
		// One message: its 503 also pauses the target for 120s, and a
		// second delivery given back by that pause would be due (exit 3).
		{"retries after the window exit 0", later.URL, "{}", 1, exitOK, "1 attempts; left: 0 due, 1 scheduled later"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "tandem.db")
			path := writeConfig(t, fmt.Sprintf(`
store: { dsn: %q }
log: { level: error }
targets:
  t: { url: %q, retry: { initial: 5ms, max: 5ms, max_attempts: 100000, max_retry_after: 10m }, breaker: %s }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, db, tc.target, tc.breaker))
			acceptOnly(t, path, "r", tc.n)
			stdout, stderr, err, code := workerOnce(t, path, "--window", "1s")
			if code != tc.code || !strings.Contains(stdout+fmt.Sprint(err), tc.want) {
				t.Errorf("exit %d (err %v), stdout %q; want exit %d and %q\nstderr: %s", code, err, stdout, tc.code, tc.want, stderr)
			}
		})
	}
}

// acceptOnly commits n messages to the config's store through the engine,
// with no worker running, as a function-mode handler would.
func acceptOnly(t *testing.T, path, route string, n int) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, cfg, discardLogger(), telemetry.NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(st)
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := eng.Ingest(ctx, route, &engine.Inbound{Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWorkerRuns: a long-running `tandem worker` delivers what a
// function-mode handler accepts while it runs (woken by PostgreSQL's
// notifications or its poll), and stops cleanly when its context ends.
func TestWorkerRuns(t *testing.T) {
	t.Parallel()
	dsn, _ := pgSchema(t)
	a := newRecorder(func(string, int) int { return http.StatusOK })
	ta := httptest.NewServer(a)
	defer ta.Close()
	path := writeConfig(t, fmt.Sprintf(`
store: { driver: postgres, dsn: %q }
server: { shutdown_grace: 5s }
log: { level: warn }
targets:
  a: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: a }] }
`, dsn, ta.URL))
	h, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	fn := httptest.NewServer(h)
	defer fn.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		done <- m.Run(ctx, []string{"worker", "--config", path})
	}()
	const n = 10
	for range n {
		resp, err := http.Post(fn.URL+"/r", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /r: %d", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, ok, _ := a.snapshot()
		if len(ok) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker delivered %d of %d messages\nstderr: %s", len(ok), n, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop after its context ended")
	}
}
