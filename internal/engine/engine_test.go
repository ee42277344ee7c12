package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// clock is a settable clock for the engine.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// target is a real HTTP target whose answers a test sets.
type target struct {
	srv    *httptest.Server
	calls  atomic.Int64
	answer func(n int64, r *http.Request) (int, http.Header, string)
}

func newTarget(t testing.TB, answer func(n int64, r *http.Request) (int, http.Header, string)) *target {
	t.Helper()
	tg := &target{answer: answer}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := tg.calls.Add(1)
		code, h, body := tg.answer(n, r)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func fixed(code int, body string) func(int64, *http.Request) (int, http.Header, string) {
	return func(int64, *http.Request) (int, http.Header, string) { return code, nil, body }
}

type setup struct {
	eng   *engine.Engine
	store store.Store
}

// start loads yaml (with %s placeholders already filled), opens a SQLite
// store in a temp dir and starts an engine.
func start(t testing.TB, yaml string, opts engine.Options) *setup {
	t.Helper()
	return startWrapped(t, yaml, opts, nil)
}

// startWrapped is start with the engine on wrap(store) (the setup's store
// stays the bare one), for a test that watches the engine's store calls.
func startWrapped(t testing.TB, yaml string, opts engine.Options, wrap func(store.Store) store.Store) *setup {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	opts.Config, opts.Store = cfg, st
	if wrap != nil {
		opts.Store = wrap(st)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 10 * time.Millisecond
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return &setup{eng: eng, store: st}
}

func ingest(t *testing.T, eng *engine.Engine, route, body, key string) *engine.Answer {
	t.Helper()
	a, err := eng.Ingest(context.Background(), route, &engine.Inbound{
		Body: []byte(body), Header: http.Header{"Content-Type": {"application/json"}}, IdempotencyKey: key,
	})
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return a
}

func waitMessage(t *testing.T, st store.Store, id string, cond func(*record.MessageDetail) bool) *record.MessageDetail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		md, err := st.MessageGet(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(md) {
			return md
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: condition not met; status %s", id, md.Message.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRespondAll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		a, b       int
		wantCode   int
		wantStatus record.MessageStatus
	}{
		{"both succeed", 200, 201, http.StatusOK, record.MessageSucceeded},
		{"one fails for good", 200, 404, http.StatusMultiStatus, record.MessagePartiallySucceeded},
		{"both fail for good", 400, 404, http.StatusBadGateway, record.MessageFailed},
	}
	for _, tt := range tests {
		for _, durable := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/durable=%v", tt.name, durable), func(t *testing.T) {
				t.Parallel()
				a := newTarget(t, fixed(tt.a, `{"id":"a-1"}`))
				b := newTarget(t, fixed(tt.b, `{"id":"b-1"}`))
				s := start(t, fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    durable: %v
    steps: [{ name: one, target: a }, { name: two, target: b }]
`, a.srv.URL, b.srv.URL, durable), engine.Options{})
				ans := ingest(t, s.eng, "r", `{"x":1}`, "")
				if ans.HTTPStatus != tt.wantCode {
					t.Fatalf("code %d, want %d", ans.HTTPStatus, tt.wantCode)
				}
				if ans.Body.Status != tt.wantStatus {
					t.Errorf("status %s, want %s", ans.Body.Status, tt.wantStatus)
				}
				one := ans.Body.Steps["one"]
				if one.HTTPStatus != tt.a || string(one.Body) != `{"id":"a-1"}` || one.Attempts != 1 {
					t.Errorf("step one: %+v", one)
				}
				if durable != (ans.Location != "") {
					t.Errorf("location %q with durable=%v", ans.Location, durable)
				}
			})
		}
	}
}

func TestRespondStepsDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	fast := newTarget(t, fixed(200, `{"user":7}`))
	slow := newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
		<-release
		return 200, nil, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  users: { url: %q }
  email: { url: %q }
routes:
  - name: signup
    path: /signup
    respond: [create]
    deadline: 5s
    steps: [{ name: create, target: users }, { name: welcome, target: email }]
  - name: signup-all
    path: /signup-all
    respond: all
    deadline: 50ms
    steps: [{ name: create, target: users }, { name: welcome, target: email }]
`, fast.srv.URL, slow.srv.URL), engine.Options{})
	defer close(release)
	ans := ingest(t, s.eng, "signup", `{}`, "")
	if ans.HTTPStatus != http.StatusOK || ans.Body.Steps["create"].Status != record.DeliverySucceeded {
		t.Fatalf("respond [create]: %d %+v", ans.HTTPStatus, ans.Body)
	}
	if _, ok := ans.Body.Steps["welcome"]; ok {
		t.Errorf("answer includes a step it should not wait for")
	}
	ans = ingest(t, s.eng, "signup-all", `{}`, "")
	if ans.HTTPStatus != http.StatusAccepted || ans.Location == "" {
		t.Fatalf("past the deadline: %d %q, want 202 with Location", ans.HTTPStatus, ans.Location)
	}
}

func TestRetryScheduleLivesInStore(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tg := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"7"}}, `{}`
		}
		return 503, nil, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, retry: { max_attempts: 3, initial: 1s, max: 10s } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Now: clk.Now, Jitter: func() float64 { return 0.5 }})
	t0 := clk.Now()
	ans := ingest(t, s.eng, "r", `{}`, "")
	id := ans.Body.ID
	md := waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Deliveries[0].Attempts == 1 })
	d := md.Deliveries[0]
	// 429 with Retry-After: 7s beats the backoff (0.5 × 1s).
	if d.Status != record.DeliveryScheduled || !d.NextAttemptAt.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("after a 429: %s next at %v, want scheduled at t0+7s", d.Status, d.NextAttemptAt.Sub(t0))
	}
	// Nothing is due until the clock reaches the retry time.
	clk.Advance(6 * time.Second)
	now := clk.Now()
	stats, err := s.store.DeliveryStats(context.Background(), &now)
	if err != nil || len(stats) != 1 || stats[0].Due != 0 || stats[0].Scheduled != 1 {
		t.Fatalf("at t0+6s: stats %+v, err %v; want one scheduled, none due", stats, err)
	}
	if n := tg.calls.Load(); n != 1 {
		t.Fatalf("target called %d times before the retry was due", n)
	}
	clk.Advance(time.Second)
	s.eng.Wake("t")
	md = waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Deliveries[0].Attempts == 2 })
	d = md.Deliveries[0]
	// Second failure: backoff 0.5 × min(10s, 1s × 2) = 1s.
	if !d.NextAttemptAt.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("second retry at now+%v, want now+1s", d.NextAttemptAt.Sub(clk.Now()))
	}
	clk.Advance(time.Second)
	s.eng.Wake("t")
	md = waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Deliveries[0].Status == record.DeliveryDead })
	if got := md.Deliveries[0].Attempts; got != 3 {
		t.Errorf("attempts %d, want 3", got)
	}
	if md.Message.Status != record.MessageFailed {
		t.Errorf("message %s, want failed", md.Message.Status)
	}
}

func TestPermanentFailureNotRetried(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, fixed(422, `{"error":"bad"}`))
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, retry: { max_attempts: 5, initial: 1ms } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{})
	id := ingest(t, s.eng, "r", `{}`, "").Body.ID
	md := waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status.Terminal() })
	if d := md.Deliveries[0]; d.Status != record.DeliveryDead || d.Attempts != 1 || tg.calls.Load() != 1 {
		t.Fatalf("delivery %s after %d attempts (%d calls), want dead after 1", d.Status, d.Attempts, tg.calls.Load())
	}
	dl, err := s.store.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
	if err != nil || len(dl.Deliveries) != 1 {
		t.Fatalf("dead letters: %v %d", err, len(dl.Deliveries))
	}
}

func TestIdempotentIngest(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, fixed(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{})
	first := ingest(t, s.eng, "r", `{"a":1}`, "key-1")
	again := ingest(t, s.eng, "r", `{"a":1}`, "key-1")
	if !again.Repeat || again.Body.ID != first.Body.ID || again.HTTPStatus != http.StatusAccepted {
		t.Fatalf("repeat: %+v, first id %s", again, first.Body.ID)
	}
	_, err := s.eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{"a":2}`), IdempotencyKey: "key-1"})
	if !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("same key, other body: %v, want ErrIdempotencyConflict", err)
	}
	waitMessage(t, s.store, first.Body.ID, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	if n := tg.calls.Load(); n != 1 {
		t.Errorf("target called %d times, want 1", n)
	}
}

func TestShutdownGivesBackInFlight(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	entered := make(chan struct{}, 1)
	tg := newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
		entered <- struct{}{}
		<-hold
		return 200, nil, `{}`
	})
	defer close(hold)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL)), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := ingest(t, eng, "r", `{}`, "").Body.ID
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{}`)}); !errors.Is(err, engine.ErrShuttingDown) {
		t.Errorf("ingest after shutdown: %v", err)
	}
	md, err := st.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	d := md.Deliveries[0]
	if d.Status != record.DeliveryScheduled || d.Attempts != 0 {
		t.Fatalf("after shutdown: %s with %d attempts, want scheduled with 0", d.Status, d.Attempts)
	}
}

func TestDependentStepWaits(t *testing.T) {
	t.Parallel()
	var order []string
	var mu sync.Mutex
	rec := func(name string, code int) *target {
		return newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return code, nil, `{}`
		})
	}
	first, second, third := rec("first", 200), rec("second", 500), rec("third", 200)
	s := start(t, fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q, retry: { max_attempts: 1 } }
  c: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    steps:
      - { name: one, target: a }
      - { name: two, target: b, after: [one] }
      - { name: three, target: c, after: [two] }
`, first.srv.URL, second.srv.URL, third.srv.URL), engine.Options{})
	ans := ingest(t, s.eng, "r", `{}`, "")
	if ans.Body.Steps["three"].Status != record.DeliverySkipped {
		t.Fatalf("step three: %+v", ans.Body.Steps["three"])
	}
	if ans.HTTPStatus != http.StatusMultiStatus {
		t.Errorf("code %d, want 207", ans.HTTPStatus)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[first second]" {
		t.Errorf("calls %v, want [first second]", order)
	}
}
