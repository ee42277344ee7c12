package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
)

// TestDirectHonoursConcurrencyCap: 100 parallel callers of a durable: false
// route never have more than the target's concurrency open at the target
// (counted by the target itself), and the engine's in-flight count (what
// /v1/targets shows) sees them.
func TestDirectHonoursConcurrencyCap(t *testing.T) {
	t.Parallel()
	const callers, concurrency = 100, 4
	var open, most atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	tg := newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
		n := open.Add(1)
		defer open.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return 200, nil, `{"ok":true}`
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	s := start(t, fmt.Sprintf(`
targets:
  capped: { url: %q, concurrency: %d }
routes:
  - { name: r, path: /r, respond: all, durable: false, deadline: 60s, steps: [{ name: s, target: capped }] }
`, tg.srv.URL, concurrency), engine.Options{Logger: quiet()})

	var wg sync.WaitGroup
	answers := make([]*engine.Answer, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{}`)})
			if err != nil {
				t.Errorf("ingest: %v", err)
				return
			}
			answers[i] = a
		}()
	}
	eventually(t, "the cap to fill", func() bool {
		return open.Load() == concurrency && health(t, s.eng, "capped").InFlight == concurrency
	})
	// Give the other 96 a chance to (wrongly) get through.
	time.Sleep(100 * time.Millisecond)
	if n := open.Load(); n != concurrency {
		t.Errorf("%d requests open at the target, want %d", n, concurrency)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	t.Logf("%d callers, concurrency %d: at most %d requests open at the target", callers, concurrency, most.Load())
	if m := most.Load(); m > concurrency {
		t.Errorf("%d requests open at once at the target, cap %d", m, concurrency)
	}
	for i, a := range answers {
		if a == nil || a.HTTPStatus != 200 {
			t.Fatalf("caller %d: %+v", i, a)
		}
	}
	if h := health(t, s.eng, "capped"); h.InFlight != 0 {
		t.Errorf("in flight after all answered: %d", h.InFlight)
	}
}

// TestDirectRefusedByGates: an attempt the target's policies do not let
// through before the route's deadline is never sent and fails its step in
// the merged answer, saying why.
func TestDirectRefusedByGates(t *testing.T) {
	t.Parallel()
	t.Run("breaker open", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, fixed(503, `{}`))
		s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, retry: { max_attempts: 1 }, breaker: { min_requests: 2, failure_ratio: 0.5, open_for: 1h } }
routes:
  - { name: r, path: /r, respond: all, durable: false, deadline: 2s, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Logger: quiet()})
		for range 2 {
			ingest(t, s.eng, "r", `{}`, "")
		}
		if got := health(t, s.eng, "t").Breaker.State.String(); got != "open" {
			t.Fatalf("breaker %s after two failures, want open", got)
		}
		before := tg.calls.Load()
		a := ingest(t, s.eng, "r", `{}`, "")
		st := a.Body.Steps["s"]
		if a.HTTPStatus != http.StatusBadGateway || st.Status != record.DeliveryDead || st.Attempts != 0 || !strings.Contains(st.Error, "circuit breaker is open") {
			t.Errorf("answer %d %+v", a.HTTPStatus, st)
		}
		if n := tg.calls.Load(); n != before {
			t.Errorf("the target got %d calls while the breaker was open", n-before)
		}
	})
	t.Run("cap full past the deadline", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		tg := newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
			<-release
			return 200, nil, `{}`
		})
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(release) }) })
		s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, concurrency: 1 }
routes:
  - { name: slow, path: /slow, respond: all, durable: false, deadline: 60s, steps: [{ name: s, target: t }] }
  - { name: r, path: /r, respond: all, durable: false, deadline: 300ms, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Logger: quiet()})
		done := make(chan struct{})
		go func() {
			defer close(done)
			ingest(t, s.eng, "slow", `{}`, "")
		}()
		eventually(t, "the slot to be taken", func() bool { return health(t, s.eng, "t").InFlight == 1 })
		a := ingest(t, s.eng, "r", `{}`, "")
		st := a.Body.Steps["s"]
		if a.HTTPStatus != http.StatusBadGateway || st.Status != record.DeliveryDead || st.Attempts != 0 || !strings.Contains(st.Error, "concurrency cap") {
			t.Errorf("answer %d %+v", a.HTTPStatus, st)
		}
		once.Do(func() { close(release) })
		<-done
		if n := tg.calls.Load(); n != 1 {
			t.Errorf("target got %d calls, want 1", n)
		}
	})
	t.Run("paused past the deadline", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
			return 429, http.Header{"Retry-After": {"3600"}}, `{}`
		})
		s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, retry: { max_attempts: 1, max_retry_after: 1h } }
routes:
  - { name: r, path: /r, respond: all, durable: false, deadline: 1s, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Logger: quiet()})
		ingest(t, s.eng, "r", `{}`, "")
		if health(t, s.eng, "t").PausedUntil.IsZero() {
			t.Fatal("a 429 with Retry-After did not pause the target")
		}
		a := ingest(t, s.eng, "r", `{}`, "")
		st := a.Body.Steps["s"]
		if st.Status != record.DeliveryDead || st.Attempts != 0 || !strings.Contains(st.Error, "Retry-After") {
			t.Errorf("answer %d %+v", a.HTTPStatus, st)
		}
		if n := tg.calls.Load(); n != 1 {
			t.Errorf("target got %d calls, want 1", n)
		}
	})
}

// TestPathTraversalNeverSent: a step path that renders a "." or ".."
// segment (plainly, percent-encoded, or through a "/" in a value) is a
// permanent failure with the reason, on durable and in-memory routes
// alike, and the target (which records every path it gets) never sees it.
func TestPathTraversalNeverSent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	tg := newTarget(t, func(_ int64, r *http.Request) (int, http.Header, string) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		mu.Unlock()
		return 200, nil, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  users: { url: "%s/api/v1" }
routes:
  - name: durable
    path: /d
    respond: all
    steps: [{ name: s, target: users, path: "/users/{{ request.body.id }}/profile" }]
  - name: direct
    path: /m
    respond: all
    durable: false
    steps: [{ name: s, target: users, path: "/users/{{ request.body.id }}/profile" }]
`, tg.srv.URL), engine.Options{Logger: quiet()})
	for _, route := range []string{"durable", "direct"} {
		for _, id := range []string{"..", ".", "%2e%2e", "%2E%2e", "%252e%252e", "../../admin", "a/b"} {
			body := fmt.Sprintf(`{"id": %q}`, id)
			a := ingest(t, s.eng, route, body, "")
			st := a.Body.Steps["s"]
			if st.Status != record.DeliveryDead || st.Attempts > 1 || !strings.Contains(st.Error, "path traversal") {
				t.Errorf("%s id %q: step %+v", route, id, st)
			}
		}
		a := ingest(t, s.eng, route, `{"id": "u-1.2"}`, "")
		if st := a.Body.Steps["s"]; st.Status != record.DeliverySucceeded {
			t.Errorf("%s: a plain id failed: %+v", route, st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := "/api/v1/users/u-1.2/profile"
	if len(paths) != 2 || paths[0] != want || paths[1] != want {
		t.Errorf("the target saw %q, want only %q twice", paths, want)
	}
}
