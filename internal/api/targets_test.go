package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// TestTargetsHealth: GET /v1/targets shows each target's breaker, rate
// limit, concurrency and pause, as the engine sees them.
func TestTargetsHealth(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/"
	l.Close() // a dead upstream: a port bound and closed
	cfg, err := config.Parse(fmt.Appendf(nil, `
targets:
  down:
    url: %q
    retry: { max_attempts: 3, initial: 1h, max: 1h }
    breaker: { min_requests: 1, failure_ratio: 1, open_for: 1h }
  limited:
    url: "http://127.0.0.1:1/?token=secret"
    concurrency: 4
    rate_limit: { per_second: 10, burst: 3, shared: true }
  nobreaker:
    url: "http://127.0.0.1:1/"
    breaker: { disabled: true }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: down }] }
`, down), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quietLogger(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: eng, Logger: quietLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	eng.SetReplicas(2)
	if _, err := eng.Ingest(ctx, "r", &engine.Inbound{Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	get := func() map[string]map[string]json.RawMessage {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/v1/targets")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/targets: %d %s", resp.StatusCode, b)
		}
		var list struct {
			Targets []map[string]json.RawMessage `json:"targets"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]json.RawMessage{}
		for _, tv := range list.Targets {
			var name string
			_ = json.Unmarshal(tv["name"], &name)
			out[name] = tv
		}
		return out
	}
	var breaker struct {
		State       string     `json:"state"`
		NextProbeAt *time.Time `json:"next_probe_at"`
		Threshold   float64    `json:"threshold"`
		MinRequests int        `json:"min_requests"`
		OpenForMS   int64      `json:"open_for_ms"`
	}
	waitFor(t, "the breaker of the dead target to open", func() bool {
		_ = json.Unmarshal(get()["down"]["breaker"], &breaker)
		return breaker.State == "open"
	})
	all := get()
	wantKeys(t, "target", all["down"], "name", "url", "method", "queue", "breaker", "rate_limit",
		"in_flight", "concurrency", "concurrency_limit", "paused_until")
	var full map[string]json.RawMessage
	_ = json.Unmarshal(all["down"]["breaker"], &full)
	wantKeys(t, "breaker", full, "state", "failure_ratio", "requests", "failures", "next_probe_at", "probes",
		"threshold", "min_requests", "window_ms", "open_for_ms")
	if breaker.NextProbeAt == nil || time.Until(*breaker.NextProbeAt) < 50*time.Minute ||
		breaker.Threshold != 1 || breaker.MinRequests != 1 || breaker.OpenForMS != time.Hour.Milliseconds() {
		t.Errorf("open breaker %+v, want the next probe in about an hour", breaker)
	}
	if s := string(all["down"]["rate_limit"]); s != "null" {
		t.Errorf("rate_limit of an unlimited target: %s", s)
	}

	var limit struct {
		PerSecond          float64 `json:"per_second"`
		Burst              int     `json:"burst"`
		Shared             bool    `json:"shared"`
		Replicas           int     `json:"replicas"`
		EffectivePerSecond float64 `json:"effective_per_second"`
		EffectiveBurst     int     `json:"effective_burst"`
		Tokens             float64 `json:"tokens"`
	}
	if err := json.Unmarshal(all["limited"]["rate_limit"], &limit); err != nil {
		t.Fatal(err)
	}
	if limit.PerSecond != 10 || limit.Burst != 3 || !limit.Shared || limit.Replicas != 2 ||
		limit.EffectivePerSecond != 5 || limit.EffectiveBurst != 2 || limit.Tokens > 2 {
		t.Errorf("rate limit shared by two replicas: %+v", limit)
	}
	if c, cl := string(all["limited"]["concurrency"]), string(all["limited"]["concurrency_limit"]); c != "4" || cl != "4" {
		t.Errorf("concurrency %s limit %s, want 4 and 4", c, cl)
	}
	if u := string(all["limited"]["url"]); u != `"http://127.0.0.1:1/?token=xxxxx"` {
		t.Errorf("url %s: a query value is shown", u)
	}
	_ = json.Unmarshal(all["nobreaker"]["breaker"], &breaker)
	if breaker.State != "disabled" {
		t.Errorf("breaker of a target without one: %q", breaker.State)
	}
}
