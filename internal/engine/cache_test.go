package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/telemetry"
)

const cacheYAML = `
targets:
  products: { url: "%s/products", method: GET, retry: { max_attempts: 1 } }
  levels:   { url: "%s/levels", method: GET, retry: { max_attempts: 1 } }
routes:
  - name: product
    path: /product
    method: GET
    respond: all
    durable: false
    cache: { ttl: 30s%s }
    steps:
      - { name: product, target: products, query: { sku: "{{ request.query.sku }}" } }
      - { name: level, target: levels, query: { sku: "{{ request.query.sku }}" } }
`

func cacheEngine(t *testing.T, extra string, ph, lh func(int64, *http.Request) (int, http.Header, string)) (*engine.Engine, *target, *target, *clock) {
	t.Helper()
	p, l := newTarget(t, ph), newTarget(t, lh)
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := start(t, fmt.Sprintf(cacheYAML, p.srv.URL, l.srv.URL, extra), engine.Options{Now: clk.Now})
	return s.eng, p, l, clk
}

func get(t *testing.T, eng *engine.Engine, query, caller string) *engine.Answer {
	t.Helper()
	q, _ := url.ParseQuery(query)
	a, err := eng.Ingest(context.Background(), "product", &engine.Inbound{Query: q, Header: http.Header{}, Caller: caller})
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return a
}

func answerBody(t *testing.T, a *engine.Answer) []byte {
	t.Helper()
	if len(a.Raw) > 0 {
		return a.Raw
	}
	b, err := json.Marshal(a.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCacheHitAndMiss(t *testing.T) {
	t.Parallel()
	eng, p, l, clk := cacheEngine(t, "", fixed(200, `{"name":"tent"}`), fixed(200, `{"available":3}`))
	first := get(t, eng, "sku=tent", "")
	if first.Header.Get(engine.CacheHeader) != engine.CacheMiss || first.HTTPStatus != 200 {
		t.Fatalf("first answer %d %v", first.HTTPStatus, first.Header)
	}
	clk.Advance(10 * time.Second)
	second := get(t, eng, "sku=tent", "")
	if second.Header.Get(engine.CacheHeader) != engine.CacheHit || second.Header.Get("Age") != "10" {
		t.Fatalf("second answer headers %v, want a hit of age 10", second.Header)
	}
	if string(answerBody(t, second)) != string(answerBody(t, first)) {
		t.Errorf("hit %s, miss %s", answerBody(t, second), answerBody(t, first))
	}
	if p.calls.Load() != 1 || l.calls.Load() != 1 {
		t.Fatalf("targets called %d and %d times, want once each", p.calls.Load(), l.calls.Load())
	}
	// Another query is another key.
	get(t, eng, "sku=stove", "")
	if p.calls.Load() != 2 {
		t.Errorf("another sku did not miss")
	}
	// The ttl ends: the next request calls the targets again.
	clk.Advance(21 * time.Second)
	if a := get(t, eng, "sku=tent", ""); a.Header.Get(engine.CacheHeader) != engine.CacheMiss {
		t.Errorf("after the ttl: %v", a.Header)
	}
	if p.calls.Load() != 3 || l.calls.Load() != 3 {
		t.Errorf("calls %d %d after the ttl, want 3 each", p.calls.Load(), l.calls.Load())
	}
}

func TestCacheKeepsCallersApart(t *testing.T) {
	t.Parallel()
	eng, p, _, _ := cacheEngine(t, "", fixed(200, `{}`), fixed(200, `{}`))
	get(t, eng, "sku=tent", "caller-a")
	get(t, eng, "sku=tent", "caller-b")
	if p.calls.Load() != 2 {
		t.Fatalf("two callers with different credentials shared an answer: %d calls", p.calls.Load())
	}
	if a := get(t, eng, "sku=tent", "caller-a"); a.Header.Get(engine.CacheHeader) != engine.CacheHit {
		t.Errorf("the same caller missed: %v", a.Header)
	}
	shared, ps, _, _ := cacheEngine(t, ", shared: true", fixed(200, `{}`), fixed(200, `{}`))
	get(t, shared, "sku=tent", "caller-a")
	if a := get(t, shared, "sku=tent", "caller-b"); a.Header.Get(engine.CacheHeader) != engine.CacheHit || ps.calls.Load() != 1 {
		t.Errorf("shared: true did not share: %v, %d calls", a.Header, ps.calls.Load())
	}
}

func TestCacheHonoursCacheControl(t *testing.T) {
	t.Parallel()
	cc := func(v string) func(int64, *http.Request) (int, http.Header, string) {
		return func(int64, *http.Request) (int, http.Header, string) {
			return 200, http.Header{"Cache-Control": {v}}, `{}`
		}
	}
	tests := []struct {
		name, levels, extra string
		after               time.Duration
		wantHit             bool
	}{
		{"max-age lowers the ttl (still fresh)", "max-age=5", "", 4 * time.Second, true},
		{"max-age lowers the ttl (stale)", "max-age=5", "", 6 * time.Second, false},
		{"no-store", "no-store", "", 0, false},
		{"no-cache (tandem does not revalidate)", "no-cache", "", 0, false},
		{"private, per-caller cache", "private, max-age=60", "", time.Second, true},
		{"private, shared cache", "private", ", shared: true", 0, false},
		{"s-maxage rules a shared cache", "max-age=60, s-maxage=2", ", shared: true", 3 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng, p, _, clk := cacheEngine(t, tt.extra, fixed(200, `{}`), cc(tt.levels))
			get(t, eng, "sku=tent", "c")
			clk.Advance(tt.after)
			a := get(t, eng, "sku=tent", "c")
			if hit := a.Header.Get(engine.CacheHeader) == engine.CacheHit; hit != tt.wantHit {
				t.Errorf("hit %v, want %v (%d calls)", hit, tt.wantHit, p.calls.Load())
			}
		})
	}
}

func TestCacheKeepsOnlySuccess(t *testing.T) {
	t.Parallel()
	eng, p, _, _ := cacheEngine(t, "", fixed(200, `{}`), fixed(404, `{"error":"no"}`))
	for range 2 {
		if a := get(t, eng, "sku=tent", ""); a.Body.Status != record.MessagePartiallySucceeded || a.Header.Get(engine.CacheHeader) != engine.CacheMiss {
			t.Fatalf("answer %s %v", a.Body.Status, a.Header)
		}
	}
	if p.calls.Load() != 2 {
		t.Errorf("a partial answer was cached: %d calls", p.calls.Load())
	}
}

func TestCacheBoundedBySize(t *testing.T) {
	t.Parallel()
	big := `{"blob":"` + strings.Repeat("x", 300) + `"}`
	eng, p, _, _ := cacheEngine(t, ", max_bytes: 4KiB", fixed(200, big), fixed(200, `{}`))
	// Each answer is about 0.5KiB: 4KiB keeps a handful, never all 20.
	for i := range 20 {
		get(t, eng, fmt.Sprintf("sku=s%d", i), "")
	}
	before := p.calls.Load()
	get(t, eng, "sku=s19", "") // the most recent is kept
	if p.calls.Load() != before {
		t.Error("the most recently used answer was evicted")
	}
	get(t, eng, "sku=s0", "") // the oldest went first
	if p.calls.Load() != before+1 {
		t.Error("the least recently used answer was kept past max_bytes")
	}
}

func TestCacheKeyTemplate(t *testing.T) {
	t.Parallel()
	// The key names only sku: another query parameter does not split it.
	eng, p, _, _ := cacheEngine(t, `, key: "{{ request.query.sku }}"`, fixed(200, `{}`), fixed(200, `{}`))
	get(t, eng, "sku=tent&utm=a", "")
	if a := get(t, eng, "sku=tent&utm=b", ""); a.Header.Get(engine.CacheHeader) != engine.CacheHit || p.calls.Load() != 1 {
		t.Errorf("key template: %v, %d calls", a.Header, p.calls.Load())
	}
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	eng, _, _, _ := cacheEngine(t, ", max_bytes: 2KiB", fixed(200, `{"a":1}`), fixed(200, `{}`))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				get(t, eng, fmt.Sprintf("sku=%d", (g*7+i)%13), "")
			}
		}()
	}
	wg.Wait()
}

// TestStrategyMetrics: cache hits and misses, and each host of a target
// with several urls, are in the metrics.
func TestStrategyMetrics(t *testing.T) {
	t.Parallel()
	p1, p2, l := newTarget(t, fixed(200, `{}`)), newTarget(t, fixed(200, `{}`)), newTarget(t, fixed(200, `{}`))
	yaml := strings.Replace(fmt.Sprintf(cacheYAML, p1.srv.URL, l.srv.URL, ""),
		fmt.Sprintf(`url: "%s/products"`, p1.srv.URL), fmt.Sprintf(`urls: ["%s/products", "%s/products"]`, p1.srv.URL, p2.srv.URL), 1)
	reg := prometheus.NewRegistry()
	s := start(t, yaml, engine.Options{Metrics: telemetry.NewMetrics(reg)})
	get(t, s.eng, "sku=a", "")
	get(t, s.eng, "sku=a", "")
	get(t, s.eng, "sku=b", "")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := ""
			for _, lp := range m.GetLabel() {
				labels += lp.GetName() + "=" + lp.GetValue() + ","
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[f.GetName()+"{"+labels+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"tandem_cache_requests_total{result=hit,route=product,}":                               1,
		"tandem_cache_requests_total{result=miss,route=product,}":                              2,
		"tandem_target_host_attempts_total{host=" + p1.srv.URL + "/products,target=products,}": 1,
		"tandem_target_host_attempts_total{host=" + p2.srv.URL + "/products,target=products,}": 1,
		"tandem_target_host_up{host=" + p2.srv.URL + "/products,target=products,}":             1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	for _, h := range s.eng.TargetHealth() {
		if h.Name == "products" && len(h.Hosts) != 2 {
			t.Errorf("TargetHealth hosts %+v", h.Hosts)
		}
	}
}

// TestCacheCollapsesConcurrentMisses: concurrent misses of one key run
// one fan-out; the others wait for it and are served its answer.
func TestCacheCollapsesConcurrentMisses(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	held := func(int64, *http.Request) (int, http.Header, string) {
		<-release
		return 200, nil, `{}`
	}
	eng, p, l, _ := cacheEngine(t, "", held, fixed(200, `{}`))
	const n = 8
	answers := make(chan *engine.Answer, n)
	go func() { answers <- get(t, eng, "sku=tent", "") }()
	waitUntil(t, "the first miss to reach the target", func() bool { return p.calls.Load() == 1 })
	for range n - 1 {
		go func() { answers <- get(t, eng, "sku=tent", "") }()
	}
	waitUntil(t, "the other misses to wait for it", func() bool { return engine.CacheJoined(eng, "product") == n-1 })
	close(release)
	hits := 0
	for range n {
		a := <-answers
		if a.HTTPStatus != 200 {
			t.Fatalf("answer %d", a.HTTPStatus)
		}
		if a.Header.Get(engine.CacheHeader) == engine.CacheHit {
			hits++
		}
	}
	if p.calls.Load() != 1 || l.calls.Load() != 1 || hits != n-1 {
		t.Errorf("targets called %d and %d times, %d hits; want one fan-out and %d hits", p.calls.Load(), l.calls.Load(), hits, n-1)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
