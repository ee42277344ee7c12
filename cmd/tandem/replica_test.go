package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"github.com/tandem-run/tandem/internal/store/postgres"
)

// pgDSN is the test database. Without TANDEM_TEST_POSTGRES the test skips,
// except in CI, where a missing database is a failure.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("TANDEM_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TANDEM_TEST_POSTGRES is unset, and CI must run the PostgreSQL tests")
		}
		t.Skip("TANDEM_TEST_POSTGRES is unset; set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return dsn
}

// dsnWith sets a parameter on a postgres:// URL or a key=value DSN.
func dsnWith(t *testing.T, dsn, key, value string) string {
	t.Helper()
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "=" + value
}

// pgSchema picks a fresh schema name, drops the schema when the test ends,
// and returns a DSN whose search_path is that schema (the store creates it
// at start-up), and count, which runs a count query on the
// schema directly (not through any proxy a test puts in front of tandem),
// over one connection kept for the test.
func pgSchema(t *testing.T) (dsn string, count func(query string) int) {
	t.Helper()
	base := pgDSN(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "cmd_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	dsn = dsnWith(t, base, "search_path", schema)
	var conn *pgx.Conn
	count = func(query string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			conn = c
			t.Cleanup(func() { _ = c.Close(context.Background()) })
		}
		var n int
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	return dsn, count
}

// exclusiveTarget is a target that notices when one Idempotency-Key is
// being delivered twice at the same moment (two replicas holding one
// delivery). Each request takes hold to answer, a service time that gives
// overlaps a window to show in; fail decides the status of the nth request
// for a key.
type exclusiveTarget struct {
	hold time.Duration
	fail func(key string, n int) int
	// retryAfter, when set, is sent as Retry-After with each failure.
	retryAfter string

	mu       sync.Mutex
	inflight map[string]bool
	seen     map[string]int // key → requests
	ok       map[string]int // key → 2xx answers
	overlaps []string
	missing  int
}

func newExclusiveTarget(hold time.Duration, fail func(key string, n int) int) *exclusiveTarget {
	return &exclusiveTarget{hold: hold, fail: fail, inflight: map[string]bool{}, seen: map[string]int{}, ok: map[string]int{}}
}

func (x *exclusiveTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	x.mu.Lock()
	if key == "" {
		x.missing++
	}
	if x.inflight[key] {
		x.overlaps = append(x.overlaps, key)
	}
	x.inflight[key] = true
	x.seen[key]++
	code := x.fail(key, x.seen[key])
	x.mu.Unlock()

	// The target's own work: an overlap can only show while it lasts.
	time.Sleep(x.hold)

	x.mu.Lock()
	delete(x.inflight, key)
	if code < 300 {
		x.ok[key]++
	}
	x.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if code >= 300 && x.retryAfter != "" {
		w.Header().Set("Retry-After", x.retryAfter)
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"key":%q}`, key)
}

// requests counts the requests received.
func (x *exclusiveTarget) requests() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, c := range x.seen {
		n += c
	}
	return n
}

// delivered counts the keys that got a 2xx.
func (x *exclusiveTarget) delivered(keys []string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, k := range keys {
		if x.ok[k] > 0 {
			n++
		}
	}
	return n
}

// sendAcked posts body with an Idempotency-Key, starting at replica first
// and moving to the next one on a connection error or a 503, until one
// answers 202; it returns the message id. A dead replica costs a retry,
// never the message.
func sendAcked(client *http.Client, bases []string, first int, path, key, body string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	var last error
	for i := first; time.Now().Before(deadline); i++ {
		req, err := http.NewRequest(http.MethodPost, bases[i%len(bases)]+path, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			var a struct{ ID string }
			if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
				return "", fmt.Errorf("bad 202 answer %s", b)
			}
			return a.ID, nil
		case http.StatusServiceUnavailable:
			last = fmt.Errorf("503 %s", b)
		default:
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
	}
	return "", fmt.Errorf("no replica accepted %s within %v: %w", key, within, last)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplicas runs three `tandem serve` processes on one PostgreSQL schema
// and sends them load round-robin; one is killed with SIGKILL mid-load.
// Every acknowledged message must reach both targets, once its leases ran
// out for those the dead replica held, and no delivery may ever be in
// flight on two replicas at once.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	t.Parallel()
	dsn, count := pgSchema(t)
	// About one key in seven fails once, so retries move between replicas
	// too.
	fail := func(key string, n int) int {
		if n == 1 && crc32.ChecksumIEEE([]byte(key))%7 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	ta := newExclusiveTarget(10*time.Millisecond, fail)
	tb := newExclusiveTarget(10*time.Millisecond, fail)
	sa := httptest.NewServer(ta)
	defer sa.Close()
	sb := httptest.NewServer(tb)
	defer sb.Close()

	// A short lease: timeout.total plus lease_margin (6s) is how long the
	// killed replica's deliveries wait.
	cfgPath := writeConfig(t, fmt.Sprintf(`
server: { shutdown_grace: 10s }
store: { driver: postgres, dsn: %q }
log: { format: json, level: info }
targets:
  a:
    url: %s/a
    timeout: { connect: 1s, total: 1s, lease_margin: 5s }
    concurrency: 8
    retry: { max_attempts: 50, initial: 20ms, max: 200ms }
  b:
    url: %s/b
    timeout: { connect: 1s, total: 1s, lease_margin: 5s }
    concurrency: 8
    retry: { max_attempts: 50, initial: 20ms, max: 200ms }
    rate_limit: { per_second: 3000, burst: 300, shared: true }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: a }
      - { name: b, target: b }
`, dsn, sa.URL, sb.URL))

	procs := []*process{startServe(t, cfgPath), startServe(t, cfgPath), startServe(t, cfgPath)}
	bases := make([]string, len(procs))
	for i, p := range procs {
		bases[i] = p.base
	}
	waitFor(t, 15*time.Second, "three live replicas in the replicas table", func() bool {
		return count("SELECT count(*) FROM replicas") == 3
	})
	// The last replica to start counts three at once; the shared limit
	// is divided by that.
	waitFor(t, 15*time.Second, "the last replica to divide the shared limit by three", func() bool {
		n, rate := sharedLimit(t, procs[2].base, "b")
		return n == 3 && rate == 1000
	})

	const n = 300
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	lim := rate.NewLimiter(150, 1) // ~2s of load, so the kill falls inside it
	ids := make([]string, n)
	var acked atomic.Int32
	var wg sync.WaitGroup
	work := make(chan int)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id, err := sendAcked(client, bases, i, "/orders", fmt.Sprintf("order-%04d", i), fmt.Sprintf(`{"order":%d}`, i), 30*time.Second)
				if err != nil {
					t.Errorf("message %d: %v", i, err)
					continue
				}
				ids[i] = id
				acked.Add(1)
			}
		}()
	}
	go func() {
		defer close(work)
		for i := range n {
			if lim.Wait(context.Background()) != nil {
				return
			}
			work <- i
		}
	}()
	waitFor(t, 30*time.Second, "a third of the load acknowledged", func() bool { return acked.Load() >= n/3 })
	if err := procs[0].cmd.Process.Kill(); err != nil {
		t.Fatalf("kill replica 0: %v", err)
	}
	<-procs[0].done
	killedAt := time.Now()
	t.Logf("killed replica 0 (SIGKILL) after %d acknowledged", acked.Load())
	wg.Wait()
	if t.Failed() {
		return
	}

	keysA, keysB := make([]string, n), make([]string, n)
	for i, id := range ids {
		keysA[i], keysB[i] = id+".a", id+".b"
	}
	// The killed replica's leases last timeout.total + lease_margin: a delivery it
	// had sent but not recorded is sent again only then, so the targets
	// may have every key well before the store records every success.
	waitFor(t, 75*time.Second, "every acknowledged message at both targets", func() bool {
		return ta.delivered(keysA) == n && tb.delivered(keysB) == n
	})
	t.Logf("all delivered %v after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	waitFor(t, 75*time.Second, "every message recorded as succeeded", func() bool {
		return count("SELECT count(*) FROM messages WHERE status <> 'succeeded'") == 0
	})
	t.Logf("all recorded as succeeded %v after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	if got := count("SELECT count(*) FROM messages"); got != n {
		t.Errorf("%d messages stored, want %d (one per Idempotency-Key)", got, n)
	}
	for name, x := range map[string]*exclusiveTarget{"a": ta, "b": tb} {
		x.mu.Lock()
		if len(x.overlaps) > 0 {
			t.Errorf("target %s: %d deliveries in flight twice at once, e.g. %s", name, len(x.overlaps), x.overlaps[0])
		}
		if x.missing > 0 {
			t.Errorf("target %s: %d requests without an Idempotency-Key", name, x.missing)
		}
		again := 0
		for _, c := range x.ok {
			if c > 1 {
				again++
			}
		}
		x.mu.Unlock()
		// At-least-once: a success the killed replica had not recorded
		// is sent again, one after the other, never at the same time.
		t.Logf("target %s: %d keys delivered more than once", name, again)
	}

	// The killed replica stops counting once its heartbeat is older than
	// the ttl (15s); the lease wait above outlasts that.
	waitFor(t, 20*time.Second, "the live replicas to divide the shared limit by two", func() bool {
		n1, _ := sharedLimit(t, procs[1].base, "b")
		n2, rate := sharedLimit(t, procs[2].base, "b")
		return n1 == 2 && n2 == 2 && rate == 1500
	})

	// A clean stop removes a replica's row; the killed one's stays until
	// its ttl passes.
	procs[1].stop(t, 15*time.Second)
	procs[2].stop(t, 15*time.Second)
	if got := count("SELECT count(*) FROM replicas"); got != 1 {
		t.Errorf("%d replicas rows after two clean stops, want 1 (the killed one)", got)
	}
}

// sharedLimit reads a target's rate limit from GET /v1/targets: the
// replicas it is divided by and the rate this replica allows.
func sharedLimit(t *testing.T, base, target string) (replicas int, perSecond float64) {
	t.Helper()
	var list struct {
		Targets []struct {
			Name      string
			RateLimit *struct {
				Replicas  int     `json:"replicas"`
				Effective float64 `json:"effective_per_second"`
			} `json:"rate_limit"`
		}
	}
	getJSON(t, base+"/v1/targets", &list)
	for _, tv := range list.Targets {
		if tv.Name == target && tv.RateLimit != nil {
			return tv.RateLimit.Replicas, tv.RateLimit.Effective
		}
	}
	t.Fatalf("GET /v1/targets: no rate limit on target %s", target)
	return 0, 0
}

// liveCounts collects what heartbeat passes to its set func.
type liveCounts struct {
	mu   sync.Mutex
	last int
}

func (c *liveCounts) set(n int) { c.mu.Lock(); c.last = n; c.mu.Unlock() }
func (c *liveCounts) get() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.last }

// Replicas heartbeating on one schema count each other, and a replica
// that stops is no longer counted.
func TestHeartbeatCounts(t *testing.T) {
	t.Parallel()
	dsn, count := pgSchema(t)
	quiet := slog.New(slog.DiscardHandler)
	open := func() *postgres.Store {
		t.Helper()
		st, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, Logger: quiet, MaxConns: 2})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a, b := open(), open()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bctx, bcancel := context.WithCancel(ctx)
	var ca, cb liveCounts
	const ttl, every = 3 * time.Second, 100 * time.Millisecond
	go heartbeat(ctx, a, "a", ttl, every, ca.set, quiet)
	go heartbeat(bctx, b, "b", ttl, every, cb.set, quiet)
	waitFor(t, 10*time.Second, "both replicas to count two", func() bool { return ca.get() == 2 && cb.get() == 2 })

	// b stops as serve stops: its context ends, then its store closes.
	bcancel()
	_ = b.Close()
	waitFor(t, 10*time.Second, "a to count one", func() bool { return ca.get() == 1 })
	if got := count("SELECT count(*) FROM replicas"); got != 1 {
		t.Errorf("%d replicas rows, want 1", got)
	}
}
