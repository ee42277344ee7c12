package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
)

// TestRetentionSoak measures disk use and ingest latency under a bounded
// load, with and without store.retention. It runs only when TANDEM_SOAK
// is a duration (e.g. TANDEM_SOAK=60s go test ./cmd/tandem -run Soak -v);
// the figures go to docs/operations.md. With retention on, the number of
// stored messages must stay bounded by what the retention and the purge
// interval allow.
func TestRetentionSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("TANDEM_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set TANDEM_SOAK=60s to run the soak")
	}
	for _, keep := range []string{"", "{ succeeded: 5s }"} {
		name := "retention off"
		if keep != "" {
			name = "retention " + keep
		}
		t.Run(name, func(t *testing.T) { soak(t, d, keep) })
	}
}

func soak(t *testing.T, d time.Duration, keep string) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x"}`)
	}))
	defer ok.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "soak.db")
	ret := ""
	if keep != "" {
		ret = ", retention: " + keep
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`server: { listen: "127.0.0.1:0", shutdown_grace: 5s, max_body: 64KiB }
store: { dsn: %q%s }
log: { level: warn }
targets:
  a: { url: %q }
  b: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s1, target: a }, { name: s2, target: b }] }
`, db, ret, ok.URL, ok.URL)), "soak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	url := "http://" + srv.addr.String() + "/r"
	body := `{"pad":"` + strings.Repeat("x", 1000) + `"}`
	const workers = 8
	const interval = 4 * time.Millisecond // per worker: at most ~2000 requests/s in all
	deadline := time.Now().Add(d)
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				<-tick.C
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				sent.Add(1)
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	size := func() int64 {
		var n int64
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if st, err := os.Stat(db + suffix); err == nil {
				n += st.Size()
			}
		}
		return n
	}
	ro, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	stored := func() int {
		var n int
		if err := ro.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil {
			t.Logf("count: %v", err)
		}
		return n
	}
	// Sample six times over the run (a measurement, not a wait).
	tick := time.NewTicker(d / 6)
	defer tick.Stop()
	var samples []string
	maxStored := 0
	for i := 1; i <= 6; i++ {
		<-tick.C
		n := stored()
		if i > 2 {
			maxStored = max(maxStored, n)
		}
		samples = append(samples, fmt.Sprintf("%2d/6: %6.1f MiB on disk, %7d messages stored, %7d accepted", i, float64(size())/(1<<20), n, sent.Load()))
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond)
	}
	t.Logf("%s over %s: %d accepted (%.0f/s), %d failed; ingest p50 %s p99 %s max %s",
		keep, d, sent.Load(), float64(sent.Load())/d.Seconds(), failed.Load(), q(0.5), q(0.99), q(1))
	for _, s := range samples {
		t.Logf("  %s", s)
	}
	if keep != "" {
		// 5s of retention plus a purge every 500ms, at the offered rate:
		// twice that is the bound.
		if limit := int(2 * 5.5 * float64(sent.Load()) / d.Seconds()); maxStored > limit {
			t.Errorf("%d messages stored, more than the retention allows (%d)", maxStored, limit)
		}
	}
}
