package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/gateway"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pgSchema returns a DSN on a fresh schema of the test database (dropped
// when the test ends) and a connection to it that bypasses tandem.
func pgSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	base := os.Getenv("TANDEM_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TANDEM_TEST_POSTGRES is unset, and CI must run the PostgreSQL tests")
		}
		t.Skip("TANDEM_TEST_POSTGRES is unset")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "gateway_" + hex.EncodeToString(b)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	return u.String(), conn
}

// counter is a target that counts its requests.
func counter(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"key":%q}`, r.Header.Get("Idempotency-Key"))
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestNewRefusesWhatAFunctionCannotRun(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
store: { driver: sqlite, dsn: "file:x.db" }
targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - { name: wait, path: /wait, respond: all, steps: [{ name: s, target: a }] }
  - { name: some, path: /some, respond: [s], steps: [{ name: s, target: a }] }
`)
	_, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: quiet})
	if !errors.Is(err, gateway.ErrNotFunctionReady) {
		t.Fatalf("err = %v, want ErrNotFunctionReady", err)
	}
	for _, want := range []string{"store.driver is sqlite", "routes[0] (wait) has respond: all", "routes[1] (some) has respond: [s]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := gateway.New(context.Background(), gateway.Options{ConfigFile: filepath.Join(t.TempDir(), "none.yaml")}); err == nil {
		t.Error("a missing config file: no error")
	}
}

// TestInMemoryRoutesNeedNoStore: a config of durable: false routes only
// runs in the request, with no database.
func TestInMemoryRoutesNeedNoStore(t *testing.T) {
	t.Parallel()
	a, na := counter(t)
	b, nb := counter(t)
	path := writeConfig(t, fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q }
routes:
  - { name: quote, path: /quote, durable: false, respond: all, steps: [{ name: a, target: a }, { name: b, target: b }] }
`, a.URL, b.URL))
	h, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/quote", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"succeeded"`) || na.Load() != 1 || nb.Load() != 1 {
		t.Errorf("POST /quote: %d %s; targets saw %d and %d", resp.StatusCode, body, na.Load(), nb.Load())
	}
}

// TestAcceptsIntoPostgres: each 202 comes after the commit (the row is
// there the moment the answer is), nothing is delivered by the handler,
// bad input gets a problem, and an idempotent repeat creates nothing.
func TestAcceptsIntoPostgres(t *testing.T) {
	t.Parallel()
	dsn, conn := pgSchema(t)
	a, na := counter(t)
	path := writeConfig(t, fmt.Sprintf(`
store: { driver: postgres, dsn: %q }
targets:
  a: { url: %q }
routes:
  - name: orders
    path: /orders
    steps: [{ name: s, target: a }]
`, dsn, a.URL))
	h, err := gateway.New(context.Background(), gateway.Options{ConfigFile: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close(context.Background())
	post := func(body, key string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	count := func() int {
		var n int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM messages").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 5 {
		resp, body := post(fmt.Sprintf(`{"id":%d}`, i), "")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		// Read at once, over another connection: a 202 means committed.
		if got := count(); got != i+1 {
			t.Fatalf("after %d answers, %d rows", i+1, got)
		}
	}
	first, _ := post(`{"id":"k"}`, "key-1")
	again, _ := post(`{"id":"k"}`, "key-1")
	if first.StatusCode != http.StatusAccepted || again.Header.Get("Idempotent-Replayed") != "true" || count() != 6 {
		t.Errorf("idempotent repeat: %d then %d (replayed %q), %d rows; want one new message", first.StatusCode, again.StatusCode, again.Header.Get("Idempotent-Replayed"), count())
	}
	resp, err := http.Get(srv.URL + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
		t.Errorf("GET /orders: %d %s, want a 405 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The handler runs no worker: nothing may have reached the target.
	if na.Load() != 0 {
		t.Errorf("the target saw %d requests; function mode does not deliver", na.Load())
	}
}
