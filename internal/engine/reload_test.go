package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
)

// keyTarget is a real target that counts requests by Idempotency-Key.
type keyTarget struct {
	*target
	mu   sync.Mutex
	keys map[string]int
}

func newKeyTarget(t *testing.T, delay time.Duration, answer func(n int64, r *http.Request) (int, http.Header, string)) *keyTarget {
	t.Helper()
	kt := &keyTarget{keys: map[string]int{}}
	kt.target = newTarget(t, func(n int64, r *http.Request) (int, http.Header, string) {
		kt.mu.Lock()
		kt.keys[r.Header.Get("Idempotency-Key")]++
		kt.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		return answer(n, r)
	})
	return kt
}

func (kt *keyTarget) counts() map[string]int {
	kt.mu.Lock()
	defer kt.mu.Unlock()
	out := make(map[string]int, len(kt.keys))
	for k, v := range kt.keys {
		out[k] = v
	}
	return out
}

func mustConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const reloadYAML = `
targets:
  a: { url: "%s/a", concurrency: %d, retry: { max_attempts: 5, initial: 10ms, max: 20ms } }
  b: { url: "%s/b", retry: { max_attempts: 5, initial: 10ms, max: 20ms } }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: a }
      - { name: b, target: b }
%s`

const extraRoute = `  - name: extra
    path: /extra
    steps:
      - { name: b, target: b }
`

// TestReloadUnderLoad sends a bounded stream of messages while the config
// is reloaded several times (a changed target, a route added and
// removed): every message finishes, and each target receives each
// message's step exactly once (counted by Idempotency-Key).
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	a := newKeyTarget(t, 2*time.Millisecond, fixed(200, `{}`))
	b := newKeyTarget(t, time.Millisecond, fixed(200, `{}`))
	cfgAt := func(i int) string {
		extra := ""
		if i%2 == 1 {
			extra = extraRoute
		}
		return fmt.Sprintf(reloadYAML, a.srv.URL, 4+i, b.srv.URL, extra)
	}
	s := start(t, cfgAt(0), engine.Options{})
	const n = 300
	ids := make(chan string, n)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= n {
				ans := ingest(t, s.eng, "orders", `{"x":1}`, "")
				ids <- ans.Body.ID
			}
		}()
	}
	for i := 1; i <= 6; i++ {
		for sent.Load() < int64(i*n/8) {
			time.Sleep(time.Millisecond)
		}
		res, err := s.eng.Reload(context.Background(), mustConfig(t, cfgAt(i)))
		if err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if len(res.TargetsChanged) != 1 || res.TargetsChanged[0] != "a" {
			t.Errorf("reload %d changed targets %v, want [a]", i, res.TargetsChanged)
		}
	}
	wg.Wait()
	close(ids)
	for id := range ids {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
		for _, tg := range []struct {
			name string
			kt   *keyTarget
		}{{"a", a}, {"b", b}} {
			if c := tg.kt.counts()[id+"."+tg.name]; c != 1 {
				t.Errorf("message %s: target %s got it %d times", id, tg.name, c)
			}
		}
	}
	if len(a.counts()) != n || len(b.counts()) != n {
		t.Errorf("targets saw %d and %d messages, want %d", len(a.counts()), len(b.counts()), n)
	}
	if got := s.eng.Config().Targets["a"].Concurrency; got != 10 {
		t.Errorf("config in force has concurrency %d, want the last reload's 10", got)
	}
}

const removeYAML = `
targets:
  a: { url: "%s/a" }
  slow: { url: "%s/slow", retry: { max_attempts: 10, initial: 30ms, max: 30ms } }
%s
routes:
  - name: keep
    path: /keep
    steps:
      - { name: a, target: a }
%s`

const goneRoute = `  - name: gone
    path: /gone
    steps:
      - { name: s, target: %s }
`

// TestReloadRemovedRoute: the messages of a route a reload removes still
// finish, their retries included, since their target stays.
func TestReloadRemovedRoute(t *testing.T) {
	t.Parallel()
	a := newKeyTarget(t, 0, fixed(200, `{}`))
	// slow fails its first three attempts: the message is between retries
	// when the route goes.
	slow := newKeyTarget(t, 0, func(n int64, _ *http.Request) (int, http.Header, string) {
		if n <= 3 {
			return 503, nil, `{}`
		}
		return 200, nil, `{}`
	})
	s := start(t, fmt.Sprintf(removeYAML, a.srv.URL, slow.srv.URL, "", fmt.Sprintf(goneRoute, "slow")), engine.Options{})
	ans := ingest(t, s.eng, "gone", `{}`, "")
	deadline := time.Now().Add(10 * time.Second)
	for slow.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	res, err := s.eng.Reload(context.Background(), mustConfig(t, fmt.Sprintf(removeYAML, a.srv.URL, slow.srv.URL, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RoutesRemoved) != 1 || res.RoutesRemoved[0] != "gone" {
		t.Errorf("removed routes %v", res.RoutesRemoved)
	}
	if _, err := s.eng.Ingest(context.Background(), "gone", &engine.Inbound{}); err == nil {
		t.Error("a removed route still accepts")
	}
	md := waitMessage(t, s.store, ans.Body.ID, func(md *record.MessageDetail) bool {
		return md.Message.Status != record.MessageAccepted && md.Message.Status != record.MessageRunning
	})
	if md.Message.Status != record.MessageSucceeded || slow.counts()[ans.Body.ID+".s"] != 4 {
		t.Errorf("message %s after %d attempts, want succeeded after 4", md.Message.Status, slow.counts()[ans.Body.ID+".s"])
	}
}

// TestReloadRemovedTarget: the open deliveries of a target a reload
// removes are dead-lettered with the DESIGN reason, and can be replayed
// once it is back.
func TestReloadRemovedTarget(t *testing.T) {
	t.Parallel()
	a := newKeyTarget(t, 0, fixed(200, `{}`))
	down := newKeyTarget(t, 0, fixed(503, `{}`))
	withGone := fmt.Sprintf(removeYAML, a.srv.URL, a.srv.URL,
		fmt.Sprintf(`  gonetarget: { url: "%s/x", retry: { max_attempts: 5, initial: 1h, max: 1h } }`, down.srv.URL),
		fmt.Sprintf(goneRoute, "gonetarget"))
	s := start(t, withGone, engine.Options{})
	ans := ingest(t, s.eng, "gone", `{}`, "")
	// Its first attempt fails; the retry is an hour away.
	waitMessage(t, s.store, ans.Body.ID, func(md *record.MessageDetail) bool {
		return len(md.Deliveries) == 1 && md.Deliveries[0].Attempts == 1 && md.Deliveries[0].Status == record.DeliveryScheduled
	})
	res, err := s.eng.Reload(context.Background(), mustConfig(t, fmt.Sprintf(removeYAML, a.srv.URL, a.srv.URL, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TargetsRemoved) != 1 || res.TargetsRemoved[0] != "gonetarget" {
		t.Errorf("removed targets %v", res.TargetsRemoved)
	}
	md := waitMessage(t, s.store, ans.Body.ID, func(md *record.MessageDetail) bool { return md.Deliveries[0].Status == record.DeliveryDead })
	if want := `target "gonetarget" is no longer configured`; md.Deliveries[0].LastError != want {
		t.Errorf("dead letter reason %q, want %q", md.Deliveries[0].LastError, want)
	}
}

const breakerYAML = `
targets:
  flaky: { url: "%s/f", breaker: { min_requests: 2, failure_ratio: 0.5, open_for: 1h }, retry: { max_attempts: 1 } }
  other: { url: "%s/o", concurrency: %d }
routes:
  - name: r
    path: /r
    steps:
      - { name: f, target: flaky }
      - { name: o, target: other }
`

// TestReloadKeepsUnchangedTargetState: a reload that changes another
// target leaves an unchanged target's breaker as it was (open here), and
// gives the changed one a new runner.
func TestReloadKeepsUnchangedTargetState(t *testing.T) {
	t.Parallel()
	flaky := newKeyTarget(t, 0, fixed(500, `{}`))
	other := newKeyTarget(t, 0, fixed(200, `{}`))
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := start(t, fmt.Sprintf(breakerYAML, flaky.srv.URL, other.srv.URL, 4), engine.Options{Now: clk.Now})
	breakerOf := func(name string) resilience.BreakerState {
		for _, h := range s.eng.TargetHealth() {
			if h.Name == name {
				return h.Breaker.State
			}
		}
		t.Fatalf("no target %s", name)
		return 0
	}
	// Two dead deliveries (500, one attempt each) open flaky's breaker.
	for range 2 {
		ingest(t, s.eng, "r", `{}`, "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for breakerOf("flaky") != resilience.BreakerOpen {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not open: %v", breakerOf("flaky"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err := s.eng.Reload(context.Background(), mustConfig(t, fmt.Sprintf(breakerYAML, flaky.srv.URL, other.srv.URL, 8)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TargetsChanged) != 1 || res.TargetsChanged[0] != "other" {
		t.Errorf("changed %v", res.TargetsChanged)
	}
	if breakerOf("flaky") != resilience.BreakerOpen {
		t.Error("the unchanged target's open breaker was reset by the reload")
	}
	for _, h := range s.eng.TargetHealth() {
		if h.Name == "other" && h.Concurrency != 8 {
			t.Errorf("changed target concurrency %d, want 8", h.Concurrency)
		}
	}
}

// TestReloadChangedRouteKeepsRemovedStep: a reload that takes a step out
// of a route leaves the stored deliveries of that step to run on the
// step as it was.
func TestReloadChangedRouteKeepsRemovedStep(t *testing.T) {
	t.Parallel()
	a := newKeyTarget(t, 0, fixed(200, `{}`))
	slow := newKeyTarget(t, 0, func(n int64, _ *http.Request) (int, http.Header, string) {
		if n <= 2 {
			return 503, nil, `{}`
		}
		return 200, nil, `{}`
	})
	twoSteps := fmt.Sprintf(removeYAML, a.srv.URL, slow.srv.URL, "", `  - name: gone
    path: /gone
    steps:
      - { name: s, target: slow, body: { v: "old" } }
      - { name: t, target: a }
`)
	oneStep := fmt.Sprintf(removeYAML, a.srv.URL, slow.srv.URL, "", `  - name: gone
    path: /gone
    steps:
      - { name: t, target: a }
`)
	s := start(t, twoSteps, engine.Options{})
	ans := ingest(t, s.eng, "gone", `{}`, "")
	deadline := time.Now().Add(10 * time.Second)
	for slow.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	res, err := s.eng.Reload(context.Background(), mustConfig(t, oneStep))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RoutesChanged) != 1 {
		t.Errorf("changed routes %v", res.RoutesChanged)
	}
	md := waitMessage(t, s.store, ans.Body.ID, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	if len(md.Deliveries) != 2 || slow.counts()[ans.Body.ID+".s"] != 3 {
		t.Errorf("deliveries %d, step s sent %d times; want both finished, s after 3 attempts", len(md.Deliveries), slow.counts()[ans.Body.ID+".s"])
	}
}
