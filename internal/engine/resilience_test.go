package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// health returns the engine's view of one target.
func health(t *testing.T, eng *engine.Engine, name string) engine.TargetHealth {
	t.Helper()
	for _, h := range eng.TargetHealth() {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no target %q in TargetHealth", name)
	return engine.TargetHealth{}
}

// eventually polls cond until it holds, failing the test after 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// keyCounter is a target handler's record of Idempotency-Keys.
type keyCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (k *keyCounter) add(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen == nil {
		k.seen = map[string]int{}
	}
	k.seen[key]++
	return k.seen[key]
}

func (k *keyCounter) count(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seen[key]
}

func (k *keyCounter) distinct() (keys, most int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range k.seen {
		most = max(most, n)
	}
	return len(k.seen), most
}

// TestBreakerOpensAndProbes sends 100 messages to a target that answers
// 500: the breaker opens after min_requests, no request reaches the target
// while it is open, one probe goes out per half-open period, and when the
// target recovers every message is delivered exactly once.
func TestBreakerOpensAndProbes(t *testing.T) {
	t.Parallel()
	const messages, minRequests, concurrency = 100, 10, 32
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var status atomic.Int64
	status.Store(500)
	var ok keyCounter
	tg := newTarget(t, func(_ int64, r *http.Request) (int, http.Header, string) {
		code := int(status.Load())
		if code == 200 {
			ok.add(r.Header.Get("Idempotency-Key"))
		}
		return code, nil, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  t:
    url: %q
    concurrency: %d
    retry: { max_attempts: 20, initial: 1s }
    breaker: { min_requests: %d, failure_ratio: 0.5, open_for: 30s, half_open_probes: 1 }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL, concurrency, minRequests), engine.Options{Now: clk.Now, Jitter: func() float64 { return 0.5 }, Logger: quiet()})

	ids := make([]string, messages)
	for i := range ids {
		ids[i] = ingest(t, s.eng, "r", `{}`, "").Body.ID
	}
	// The clock stands still, so a failed delivery's retry is never due:
	// every request until the breaker opens is a first attempt.
	eventually(t, "the breaker to open and attempts in flight to end", func() bool {
		h := health(t, s.eng, "t")
		return h.Breaker.State == resilience.BreakerOpen && h.InFlight == 0
	})
	opened := tg.calls.Load()
	t.Logf("requests before the breaker opened: %d (min_requests %d, concurrency %d)", opened, minRequests, concurrency)
	if opened < minRequests || opened > minRequests+concurrency {
		t.Fatalf("%d requests before the breaker opened, want %d..%d", opened, minRequests, minRequests+concurrency)
	}
	h := health(t, s.eng, "t")
	if want := clk.Now().Add(30 * time.Second); !h.Breaker.OpenUntil.Equal(want) {
		t.Errorf("next probe at %v, want %v", h.Breaker.OpenUntil, want)
	}
	now := clk.Now()
	stats, err := s.store.DeliveryStats(context.Background(), &now)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Running != 0 || stats[0].Due == 0 || stats[0].Dead != 0 {
		t.Fatalf("while open: %+v, want due deliveries left alone, none running or dead", stats)
	}

	// Just before open_for ends: still open, still nothing sent.
	clk.Advance(30*time.Second - time.Millisecond)
	s.eng.Wake("t")
	if h := health(t, s.eng, "t"); h.Breaker.State != resilience.BreakerOpen {
		t.Fatalf("breaker %s a millisecond before open_for ends", h.Breaker.State)
	}
	// Half-open: exactly one probe; it fails and the breaker opens again.
	clk.Advance(time.Millisecond)
	s.eng.Wake("t")
	eventually(t, "the failed probe to reopen the breaker", func() bool {
		h := health(t, s.eng, "t")
		return tg.calls.Load() > opened && h.Breaker.State == resilience.BreakerOpen && h.InFlight == 0
	})
	if n := tg.calls.Load(); n != opened+1 {
		t.Fatalf("%d requests in the half-open period, want 1 probe", n-opened)
	}

	// The target recovers; the next probe closes the breaker and the rest
	// is delivered, each message once.
	status.Store(200)
	clk.Advance(30 * time.Second)
	s.eng.Wake("t")
	eventually(t, "every message to be delivered", func() bool {
		keys, _ := ok.distinct()
		return keys == messages
	})
	if _, most := ok.distinct(); most != 1 {
		t.Errorf("a message was delivered %d times", most)
	}
	for _, id := range ids {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	}
	if h := health(t, s.eng, "t"); h.Breaker.State != resilience.BreakerClosed {
		t.Errorf("breaker %s after recovery, want closed", h.Breaker.State)
	}
	t.Logf("requests in all: %d (%d failed before opening, 1 failed probe, %d delivered)", tg.calls.Load(), opened, messages)
	if n := tg.calls.Load(); n != opened+1+messages {
		t.Errorf("%d requests in all, want %d", n, opened+1+messages)
	}
}

// TestBreakerIgnoresPermanentFailures: a target that answers 4xx is up; its
// breaker stays closed however many deliveries fail for good.
func TestBreakerIgnoresPermanentFailures(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, fixed(422, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, breaker: { min_requests: 5, failure_ratio: 0.5 } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Logger: quiet()})
	var ids []string
	for range 20 {
		ids = append(ids, ingest(t, s.eng, "r", `{}`, "").Body.ID)
	}
	for _, id := range ids {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageFailed })
	}
	h := health(t, s.eng, "t")
	if h.Breaker.State != resilience.BreakerClosed || h.Breaker.Requests != 20 || h.Breaker.Failures != 0 {
		t.Errorf("breaker %+v, want closed with 20 requests and no failures", h.Breaker)
	}
	if n := tg.calls.Load(); n != 20 {
		t.Errorf("%d requests, want 20", n)
	}
}

// TestRateLimitAndConcurrency: 120 messages to a target limited to 40/s
// (burst 5) and 3 attempts at once. No second holds more than 40 + 5 of
// the engine's tokens, and never more than 3 requests are in flight.
//
// The bucket's bound holds, exactly, where the engine takes its tokens;
// the target sees each request a little later, by a delay that varies
// with scheduling (on a loaded machine, by more than one token's 25ms).
// So the count at the target is allowed two requests (50ms) of slack.
//
// Not parallel: it measures time, and it sets a package test hook.
func TestRateLimitAndConcurrency(t *testing.T) {
	const messages, perSecond, burst, concurrency = 120, 40, 5, 3
	const name = "limited"
	var mu sync.Mutex
	var arrivals, tokens []time.Time
	var inFlight, most atomic.Int64
	tg := newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		// A slowish target (its behaviour, not a wait of the test), so
		// that attempts overlap and the concurrency cap is what holds
		// them back.
		time.Sleep(30 * time.Millisecond)
		return 200, nil, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  %s: { url: %q, concurrency: %d, rate_limit: { per_second: %d, burst: %d } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: %s }] }
`, name, tg.srv.URL, concurrency, perSecond, burst, name), engine.Options{Logger: quiet()})

	// Warm up: open the connections, then let the bucket fill again, so
	// that the first measured requests do not also wait for a dial.
	for range concurrency {
		ingest(t, s.eng, "r", `{}`, "")
	}
	eventually(t, "the warm-up requests and a full bucket", func() bool {
		h := health(t, s.eng, name)
		return tg.calls.Load() == concurrency && h.InFlight == 0 && h.Limiter.Tokens >= burst
	})
	mu.Lock()
	arrivals = arrivals[:0]
	mu.Unlock()
	most.Store(0)
	defer engine.SetReserveHook(func(target string, at time.Time) {
		if target == name {
			mu.Lock()
			tokens = append(tokens, at)
			mu.Unlock()
		}
	})()

	began := time.Now()
	for range messages {
		ingest(t, s.eng, "r", `{}`, "")
	}
	eventually(t, "every message to reach the target", func() bool { return tg.calls.Load() >= messages+concurrency })
	took := time.Since(began)

	mu.Lock()
	defer mu.Unlock()
	atTokens, atTarget := busiestSecond(tokens), busiestSecond(arrivals)
	t.Logf("%d requests in %v; busiest second: %d tokens taken, %d requests at the target (limit %d+%d); most in flight %d (cap %d)",
		len(arrivals), took.Round(time.Millisecond), atTokens, atTarget, perSecond, burst, most.Load(), concurrency)
	if len(tokens) != messages {
		t.Errorf("%d tokens taken for %d messages", len(tokens), messages)
	}
	if atTokens > perSecond+burst {
		t.Errorf("%d tokens taken within one second, want at most %d", atTokens, perSecond+burst)
	}
	if atTarget > perSecond+burst+2 {
		t.Errorf("%d requests at the target within one second, want at most %d (+2 for delivery jitter)", atTarget, perSecond+burst)
	}
	if m := most.Load(); m > concurrency {
		t.Errorf("%d requests in flight at once, want at most %d", m, concurrency)
	}
	h := health(t, s.eng, name)
	if !h.Limiter.Enabled || h.Limiter.EffectivePerSecond != perSecond || h.Limiter.EffectiveBurst != burst || h.Concurrency != concurrency {
		t.Errorf("health %+v", h)
	}
}

// busiestSecond returns the most times that fall within one second
// ([t, t+1s)) of each other.
func busiestSecond(times []time.Time) int {
	s := slices.Clone(times)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i, a := range s {
		n := 0
		for _, b := range s[i:] {
			if b.Sub(a) >= time.Second {
				break
			}
			n++
		}
		most = max(most, n)
	}
	return most
}

// TestRetryAfterPausesOneTarget: a 429 with Retry-After pauses that target
// (its due deliveries wait, unattempted) while another target goes on.
func TestRetryAfterPausesOneTarget(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	slow := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"30"}}, `{}`
		}
		return 200, nil, `{}`
	})
	fast := newTarget(t, fixed(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  slow: { url: %q }
  fast: { url: %q }
routes:
  - { name: to-slow, path: /slow, steps: [{ name: s, target: slow }] }
  - { name: to-fast, path: /fast, steps: [{ name: s, target: fast }] }
`, slow.srv.URL, fast.srv.URL), engine.Options{Now: clk.Now, Logger: quiet()})
	t0 := clk.Now()
	first := ingest(t, s.eng, "to-slow", `{}`, "").Body.ID
	waitMessage(t, s.store, first, func(md *record.MessageDetail) bool { return md.Deliveries[0].Attempts == 1 })
	if h := health(t, s.eng, "slow"); !h.PausedUntil.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("slow paused until %v, want t0+30s", h.PausedUntil)
	}
	if h := health(t, s.eng, "fast"); !h.PausedUntil.IsZero() {
		t.Fatalf("fast paused until %v", h.PausedUntil)
	}
	var slowIDs, fastIDs []string
	for range 5 {
		slowIDs = append(slowIDs, ingest(t, s.eng, "to-slow", `{}`, "").Body.ID)
		fastIDs = append(fastIDs, ingest(t, s.eng, "to-fast", `{}`, "").Body.ID)
	}
	for _, id := range fastIDs {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	}
	if n := slow.calls.Load(); n != 1 {
		t.Fatalf("the paused target got %d requests, want only the first", n)
	}
	for _, id := range slowIDs {
		md, err := s.store.MessageGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d := md.Deliveries[0]; d.Status != record.DeliveryScheduled || d.Attempts != 0 {
			t.Fatalf("delivery to the paused target: %s with %d attempts, want scheduled, none", d.Status, d.Attempts)
		}
	}
	clk.Advance(30 * time.Second)
	s.eng.Wake("slow")
	for _, id := range append(slowIDs, first) {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	}
	if n := slow.calls.Load(); n != 7 {
		t.Errorf("slow got %d requests, want 7 (one 429, six deliveries)", n)
	}
}

// TestSetReplicasScalesSharedLimits: shared limits divide by the replica
// count; others keep theirs.
func TestSetReplicasScalesSharedLimits(t *testing.T) {
	t.Parallel()
	s := start(t, `
targets:
  shared: { url: "http://127.0.0.1:1/", rate_limit: { per_second: 100, burst: 20, shared: true } }
  own:    { url: "http://127.0.0.1:1/", rate_limit: { per_second: 100, burst: 20 } }
  free:   { url: "http://127.0.0.1:1/" }
routes:
  - { name: r, path: /r, steps: [{ name: a, target: shared }, { name: b, target: own }, { name: c, target: free }] }
`, engine.Options{Logger: quiet()})
	s.eng.SetReplicas(4)
	tests := []struct {
		name      string
		enabled   bool
		rate      float64
		burst     int
		wantLease time.Duration
	}{
		{"shared", true, 25, 5, 10*time.Second + time.Second + 30*time.Second},
		{"own", true, 100, 20, 10*time.Second + time.Second + 30*time.Second},
		{"free", false, 0, 0, 10*time.Second + 30*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := health(t, s.eng, tt.name)
			l := h.Limiter
			if l.Enabled != tt.enabled || l.EffectivePerSecond != tt.rate || l.EffectiveBurst != tt.burst {
				t.Errorf("limiter %+v, want %g/s burst %d", l, tt.rate, tt.burst)
			}
			if h.Lease != tt.wantLease {
				t.Errorf("lease %v, want %v", h.Lease, tt.wantLease)
			}
		})
	}
	_ = store.ErrNotFound
}
