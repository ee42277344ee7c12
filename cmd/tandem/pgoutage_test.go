package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// pgProxy starts an in-process TCP proxy in front of the test database and
// returns it with the proxied form of dsn (same parameters, the proxy's
// address, a 2s connect timeout). It is stopped when the test ends.
func pgProxy(t *testing.T, dsn string) (*toxiproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("the outage test needs TANDEM_TEST_POSTGRES as a postgres:// URL with a host")
		}
		t.Skip("the outage test needs TANDEM_TEST_POSTGRES as a postgres:// URL with a host")
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "postgres", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	u.Host = p.Listen
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return p, u.String()
}

// getStatus GETs url and returns the status code and headers; a
// connection error is a failure.
func getStatus(t *testing.T, url string) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestPostgresOutage cuts tandem's connection to PostgreSQL while it
// serves: accepts answer 503 with Retry-After, /readyz answers 503, and
// once the database is back the engine resumes by itself and every
// message acknowledged before the outage is delivered.
func TestPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	t.Parallel()
	dsn, count := pgSchema(t)
	proxy, proxied := pgProxy(t, dsn)

	// Until the outage begins, the targets answer 503 with Retry-After: 5,
	// which pauses them: when the outage begins every delivery waits in
	// the store, none in flight, and they fall due during the outage and
	// must be picked up once it ends. (An attempt in flight, or a claim
	// whose answer is cut off, when the database goes away cannot be
	// recorded: its lease, timeout.total plus 30s, must run out first.
	// The wait for delivery allows for that, should the machine be so slow
	// that the pause ends before the outage begins.)
	var outageBegun atomic.Bool
	fail := func(key string, n int) int {
		if !outageBegun.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	ta := newExclusiveTarget(0, fail)
	tb := newExclusiveTarget(0, fail)
	ta.retryAfter, tb.retryAfter = "5", "5"
	sa := httptest.NewServer(ta)
	defer sa.Close()
	sb := httptest.NewServer(tb)
	defer sb.Close()
	cfgPath := writeConfig(t, fmt.Sprintf(`
server: { shutdown_grace: 10s }
store: { driver: postgres, dsn: %q }
log: { format: json, level: info }
targets:
  a: { url: "%s/a", timeout: { total: 1s }, retry: { max_attempts: 10, initial: 50ms, max: 1s }, breaker: { disabled: true } }
  b: { url: "%s/b", timeout: { total: 1s }, retry: { max_attempts: 10, initial: 50ms, max: 1s }, breaker: { disabled: true } }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: a }
      - { name: b, target: b }
`, proxied, sa.URL, sb.URL))
	p := startServe(t, cfgPath)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	const n = 40
	var keys []string
	for i := range n {
		key := fmt.Sprintf("before-%02d", i)
		id, err := sendAcked(client, []string{p.base}, 0, "/orders", key, fmt.Sprintf(`{"order":%d}`, i), 10*time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		keys = append(keys, id)
	}
	waitFor(t, 15*time.Second, "both targets paused and every delivery waiting in the store", func() bool {
		return ta.requests() > 0 && tb.requests() > 0 &&
			count("SELECT count(*) FROM deliveries WHERE status = 'scheduled'") == 2*n
	})

	outageBegun.Store(true)
	// The outage resets every connection through the proxy, open or new.
	// (Stopping the proxy would free its port for the outage's length, and
	// a parallel test could take it.)
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(
		`{"name":"outage","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
		t.Fatalf("begin the outage: %v", err)
	}
	outage := time.Now()
	t.Log("database unreachable")
	waitFor(t, 15*time.Second, "/readyz to answer 503", func() bool {
		code, _ := getStatus(t, p.base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, _ := getStatus(t, p.base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200", code)
	}
	// The caller keeps what was refused and sends it again later.
	var refused []string
	for i := range 5 {
		key := fmt.Sprintf("during-%02d", i)
		req, _ := http.NewRequest(http.MethodPost, p.base+"/orders", strings.NewReader(`{"order":"late"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST during the outage: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("POST during the outage: %d %s, want 503", resp.StatusCode, body)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 during the outage without Retry-After")
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("503 content type %q, want application/problem+json", ct)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("POST during the outage took %v to fail", d)
		}
		refused = append(refused, key)
	}

	// Keep the database away until the deliveries fall due, so the
	// engine has work waiting when it comes back.
	waitFor(t, 15*time.Second, "every delivery due", func() bool {
		return count("SELECT count(*) FROM deliveries WHERE status = 'scheduled' AND next_attempt_at <= now()") == 2*n
	})
	if err := proxy.Toxics.RemoveToxic(context.Background(), "outage"); err != nil {
		t.Fatalf("end the outage: %v", err)
	}
	back := time.Now()
	t.Logf("database back after %v", back.Sub(outage).Round(10*time.Millisecond))
	waitFor(t, 15*time.Second, "/readyz to answer 200", func() bool {
		code, _ := getStatus(t, p.base+"/readyz")
		return code == http.StatusOK
	})
	for i, key := range refused {
		id, err := sendAcked(client, []string{p.base}, 0, "/orders", key, `{"order":"late"}`, 10*time.Second)
		if err != nil {
			t.Fatalf("resend %d after the outage: %v", i, err)
		}
		keys = append(keys, id)
	}
	keysA, keysB := make([]string, len(keys)), make([]string, len(keys))
	for i, id := range keys {
		keysA[i], keysB[i] = id+".a", id+".b"
	}
	waitFor(t, 60*time.Second, "every acknowledged message at both targets", func() bool {
		return ta.delivered(keysA) == len(keys) && tb.delivered(keysB) == len(keys)
	})
	t.Logf("all delivered %v after the database came back", time.Since(back).Round(10*time.Millisecond))
	waitFor(t, 15*time.Second, "every message recorded as succeeded", func() bool {
		return count("SELECT count(*) FROM messages WHERE status <> 'succeeded'") == 0
	})
	if got := count("SELECT count(*) FROM messages"); got != len(keys) {
		t.Errorf("%d messages stored, want %d", got, len(keys))
	}
	for name, x := range map[string]*exclusiveTarget{"a": ta, "b": tb} {
		x.mu.Lock()
		if len(x.overlaps) > 0 || x.missing > 0 {
			t.Errorf("target %s: %d overlaps, %d requests without a key", name, len(x.overlaps), x.missing)
		}
		x.mu.Unlock()
	}
	p.stop(t, 15*time.Second)
}

// silentServer accepts connections and never answers, like a database
// host that stopped responding.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// `tandem serve` that cannot reach its database exits non-zero at once
// with one line naming the server and what failed.
func TestServeBadDSN(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	t.Parallel()
	refused := closedPort(t)
	silent := silentServer(t)
	tests := []struct {
		name   string
		dsn    func(t *testing.T) string
		line   []string // the one line holds each of these
		within time.Duration
	}{
		{"connection refused", func(t *testing.T) string {
			return "postgres://tandem@" + refused + "/orders?sslmode=disable"
		}, []string{"connect postgres " + refused + "/orders", "connection refused"}, 10 * time.Second},
		{"server does not answer", func(t *testing.T) string {
			return "postgres://tandem@" + silent + "/orders?sslmode=disable&connect_timeout=1"
		}, []string{"connect postgres " + silent + "/orders", "timed out"}, 10 * time.Second},
		{"no such database", func(t *testing.T) string {
			u, err := url.Parse(pgDSN(t))
			if err != nil || u.Host == "" {
				t.Skip("needs TANDEM_TEST_POSTGRES as a postgres:// URL")
			}
			u.Path = "/no_such_db_for_tandem"
			return u.String()
		}, []string{"/no_such_db_for_tandem", `database "no_such_db_for_tandem" does not exist`}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgPath := writeConfig(t, fmt.Sprintf(`
store: { driver: postgres, dsn: %q }
log: { format: json }
targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - { name: orders, path: /orders, steps: [{ name: a, target: a }] }
`, tt.dsn(t)))
			ctx, cancel := context.WithTimeout(context.Background(), 2*tt.within)
			defer cancel()
			cmd := exec.CommandContext(ctx, tandemBinary(t), "serve", "--config", cfgPath, "--listen", "127.0.0.1:0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 || ctx.Err() != nil {
				t.Fatalf("serve: %v (want a non-zero exit)\n%s", err, stderr.String())
			}
			if took > tt.within {
				t.Errorf("took %v to give up, want under %v", took, tt.within)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("stderr has %d lines, want 1:\n%s", len(lines), stderr.String())
			}
			for _, want := range tt.line {
				if !strings.Contains(lines[0], want) {
					t.Errorf("stderr %q does not say %q", lines[0], want)
				}
			}
		})
	}
}
