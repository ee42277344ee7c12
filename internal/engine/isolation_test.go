package engine_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// arrivals is a healthy target that reports each request's
// Idempotency-Key and arrival time on a channel.
type arrivals struct {
	srv *httptest.Server
	ch  chan arrival
}

type arrival struct {
	key string
	at  time.Time
}

func newArrivals(t *testing.T) *arrivals {
	t.Helper()
	a := &arrivals{ch: make(chan arrival, 1024)}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		a.ch <- arrival{r.Header.Get("Idempotency-Key"), at}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// latencies ingests n messages on route one after the other and returns,
// for each, the time from the ingest call to the request's arrival at the
// target.
func latencies(t *testing.T, eng *engine.Engine, route string, a *arrivals, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		began := time.Now()
		id := ingest(t, eng, route, `{}`, "").Body.ID
		timeout := time.NewTimer(10 * time.Second)
		select {
		case got := <-a.ch:
			timeout.Stop()
			if got.key != id+".s" {
				t.Fatalf("arrival %q, want %q", got.key, id+".s")
			}
			out = append(out, got.at.Sub(began))
		case <-timeout.C:
			t.Fatalf("message %s not delivered in 10s", id)
		}
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// attemptsOf sums the attempts of a target's deliveries.
func attemptsOf(t *testing.T, st store.Store, target string) int {
	t.Helper()
	n := 0
	p := &store.DeliveryListParams{Target: target, Limit: 1000}
	for {
		page, err := st.DeliveryList(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deliveries {
			n += d.Attempts
		}
		if page.NextCursor == "" {
			return n
		}
		p.Cursor = page.NextCursor
	}
}

// TestIsolation: a target that is down and retried as fast as its policy
// allows (breaker off, 1–5ms backoff), slow, or asking to back off (429)
// must not slow deliveries to a healthy target. The healthy target's p99
// from accept to arrival with the sick one busy stays within 1.5× its p99
// alone, plus 20ms for loopback noise.
//
// Under the race detector the store's single writer is the bottleneck
// (instrumented SQLite runs about twenty times slower), so the test runs
// the same traffic, fewer samples, and logs the figures without the bound.
//
// Not parallel: it measures latency, so it runs alone in the package.
func TestIsolation(t *testing.T) {
	samples := 300
	if raceEnabled {
		samples = 30
	}
	tests := []struct {
		name string
		// url returns the sick target's URL.
		url func(t *testing.T) string
		// down: every attempt fails at once, so the target is retried as
		// fast as its adaptive concurrency limit (down to 1) lets it.
		down bool
	}{
		{"refused", func(t *testing.T) string {
			// A dead upstream: a port bound and closed.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			return "http://" + l.Addr().String() + "/"
		}, true},
		{"503", func(t *testing.T) string { return newTarget(t, fixed(503, `{}`)).srv.URL }, true},
		{"slow", func(t *testing.T) string {
			return newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
				time.Sleep(100 * time.Millisecond) // the target's slowness
				return 200, nil, `{}`
			}).srv.URL
		}, false},
		{"429", func(t *testing.T) string {
			return newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
				return 429, http.Header{"Retry-After": {"1"}}, `{}`
			}).srv.URL
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The machine is shared, and noise from outside only ever
			// slows a measure down: a miss is measured again afresh, and
			// the test fails when every try misses.
			const tries = 3
			for try := 1; ; try++ {
				ok := isolationTry(t, tt.url(t), tt.down, samples)
				if ok || raceEnabled {
					return
				}
				if try == tries {
					t.Fatalf("p99 with a sick target above 1.5 × p99 alone + 20ms in %d tries", tries)
				}
			}
		})
	}
}

// isolationTry measures the healthy target's latency alone, then with the
// sick target at sickURL busy, on a fresh engine and store, and reports
// whether the p99 stayed within the bound.
func isolationTry(t *testing.T, sickURL string, down bool, samples int) bool {
	t.Helper()
	const sickMessages = 300
	healthy := newArrivals(t)
	cfg, err := config.Parse(fmt.Appendf(nil, `
targets:
  sick:
    url: %q
    retry: { max_attempts: 100000, initial: 1ms, max: 5ms, max_age: 1h }
    breaker: { disabled: true }
  ok: { url: %q }
routes:
  - { name: to-sick, path: /sick, steps: [{ name: s, target: sick }] }
  - { name: to-ok, path: /ok, steps: [{ name: s, target: ok }] }
`, sickURL, healthy.srv.URL), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quiet(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
	}()

	latencies(t, eng, "to-ok", healthy, 20) // warm up
	alone := latencies(t, eng, "to-ok", healthy, samples)

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range sickMessages / 4 {
				if _, err := eng.Ingest(ctx, "to-sick", sickInbound(w)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "the sick target to be busy", func() bool {
		h := health(t, eng, "sick")
		if down {
			return h.ConcurrencyLimit == 1 && attemptsOf(t, st, "sick") >= sickMessages/4
		}
		return h.InFlight > 0 || !h.PausedUntil.IsZero()
	})
	before, began := attemptsOf(t, st, "sick"), time.Now()
	sick := latencies(t, eng, "to-ok", healthy, samples)
	churn := float64(attemptsOf(t, st, "sick")-before) / time.Since(began).Seconds()
	h := health(t, eng, "sick")

	p99Alone, p99Sick := percentile(alone, 0.99), percentile(sick, 0.99)
	limit := p99Alone*3/2 + 20*time.Millisecond
	t.Logf("healthy target, accept→arrival over %d messages: alone p50 %v p99 %v; sick target busy (%.0f attempts/s, %d in flight, limit %d): p50 %v p99 %v (bound %v)",
		samples, percentile(alone, 0.5), p99Alone, churn, h.InFlight, h.ConcurrencyLimit, percentile(sick, 0.5), p99Sick, limit)
	if down && churn < 10 {
		t.Errorf("the sick target was attempted %.0f times/s during the measure; the test did not load it", churn)
	}
	return p99Sick <= limit
}

// sickInbound is a message for the sick target, tagged by the worker that
// sends it.
func sickInbound(w int) *engine.Inbound {
	return &engine.Inbound{Body: []byte(fmt.Sprintf(`{"w":%d}`, w))}
}

// TestLeaseOutlastsRequest: two engines (two replicas) share a store. A
// request stays in flight while the engines' clock moves past what a naive
// lease would give it (but within the target's total timeout): no replica
// claims it again, so the target sees its Idempotency-Key once. Moved
// past the real lease (total timeout + margin), the delivery is claimed
// again, as a crashed worker's would be: the check is not vacuous.
func TestLeaseOutlastsRequest(t *testing.T) {
	t.Parallel()
	// total is long in real time too: the first request hangs until the
	// test lets it go, and must not time out on a loaded machine.
	const total, margin = 60 * time.Second, 50 * time.Millisecond
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var keys keyCounter
	entered := make(chan string, 16)
	release := make(chan struct{})
	tg := newTarget(t, func(call int64, r *http.Request) (int, http.Header, string) {
		key := r.Header.Get("Idempotency-Key")
		keys.add(key)
		entered <- key
		if call == 1 {
			<-release // the first request hangs until the test lets go
		}
		return 200, nil, `{}`
	})
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the target's server closes

	cfg, err := config.Parse(fmt.Appendf(nil, `
targets:
  t: { url: %q, timeout: { total: %s } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL, total), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	var engines []*engine.Engine
	for _, owner := range []string{"one", "two"} {
		eng, err := engine.New(engine.Options{Config: cfg, Store: st, Now: clk.Now, Owner: owner, Logger: quiet(),
			PollInterval: 5 * time.Millisecond, LeaseMargin: margin})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		engines = append(engines, eng)
	}
	t.Cleanup(func() {
		letGo()
		for _, eng := range engines {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = eng.Shutdown(sctx)
			cancel()
		}
		_ = st.Close()
	})
	inFlight := func() int {
		n := 0
		for _, eng := range engines {
			n += health(t, eng, "t").InFlight
		}
		return n
	}
	wake := func() {
		for _, eng := range engines {
			eng.Wake("t")
		}
	}

	t0 := clk.Now()
	first := ingest(t, engines[0], "r", `{}`, "").Body.ID
	key := first + ".s"
	if got := <-entered; got != key {
		t.Fatalf("first arrival %q", got)
	}
	if h := health(t, engines[0], "t"); h.Lease != total+margin {
		t.Fatalf("lease %v, want total timeout + margin = %v", h.Lease, total+margin)
	}
	md, err := st.MessageGet(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if d := md.Deliveries[0]; d.Status != record.DeliveryRunning || !d.NextAttemptAt.Equal(t0.Add(total+margin)) {
		t.Fatalf("in flight: %s, lease until t0+%v; want running until t0+%v", d.Status, d.NextAttemptAt.Sub(t0), total+margin)
	}

	// Within the total timeout, past any lease shorter than it.
	clk.Advance(total - time.Second)
	second := ingest(t, engines[1], "r", `{}`, "").Body.ID
	// The second message is due only now, so the claim that took it ran
	// at t0+59s, and it would have taken the first too had its lease ended.
	if got := <-entered; got != second+".s" {
		t.Fatalf("arrival %q, want the second message; the first was sent again", got)
	}
	wake()
	eventually(t, "claims to settle", func() bool { return inFlight() == 1 })
	if n := keys.count(key); n != 1 {
		t.Fatalf("the in-flight request was sent %d times within its lease", n)
	}

	// Past the lease: a replica takes the delivery over.
	clk.Advance(time.Second + margin)
	wake()
	eventually(t, "the delivery to be claimed again after its lease", func() bool { return keys.count(key) == 2 })
	letGo()
	waitMessage(t, st, first, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	waitMessage(t, st, second, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
}
