package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

// target is a real HTTP target that records every request's
// Idempotency-Key and answers with answer(key, n) for the nth request
// with that key.
type target struct {
	*httptest.Server
	mu     sync.Mutex
	seen   map[string]int // key → requests
	ok     map[string]int // key → 2xx answers
	times  []time.Time
	bodies []string
	answer func(key string, n int) int
}

func newTarget(t *testing.T, answer func(key string, n int) int) *target {
	t.Helper()
	return newTargetWith(t, answer, nil)
}

// newTargetWith is newTarget with its handler wrapped by wrap.
func newTargetWith(t *testing.T, answer func(key string, n int) int, wrap func(http.Handler) http.Handler) *target {
	t.Helper()
	tg := &target{seen: map[string]int{}, ok: map[string]int{}, answer: answer}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get("Idempotency-Key")
		tg.mu.Lock()
		tg.seen[key]++
		n := tg.seen[key]
		tg.times = append(tg.times, time.Now())
		tg.bodies = append(tg.bodies, string(body))
		code := http.StatusOK
		if tg.answer != nil {
			code = tg.answer(key, n)
		}
		if code < 300 {
			tg.ok[key]++
		}
		tg.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"key":%q,"n":%d}`, key, n)
	})
	if wrap != nil {
		h = wrap(h)
	}
	tg.Server = httptest.NewServer(h)
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) requests() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	n := 0
	for _, c := range tg.seen {
		n += c
	}
	return n
}

func (tg *target) count(key string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.seen[key]
}

func (tg *target) body(i int) string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if i >= len(tg.bodies) {
		return ""
	}
	return tg.bodies[i]
}

func (tg *target) oks() map[string]int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	out := make(map[string]int, len(tg.ok))
	for k, v := range tg.ok {
		out[k] = v
	}
	return out
}

// fast is a retry schedule for tests: backoffs of a millisecond or so.
var fast = fanout.Retry{MaxAttempts: 4, Initial: time.Millisecond, Max: 2 * time.Millisecond}

func twoStepConfig(a, b string) fanout.Config {
	return fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: a, Retry: fast}, {Name: "b", URL: b, Retry: fast}},
		Plans: []fanout.Plan{{Name: "both", Steps: []fanout.Step{
			{Name: "a", Target: "a", Body: map[string]any{"n": "{{ request.body.n }}"}},
			{Name: "b", Target: "b", Body: map[string]any{"n": "{{ request.body.n }}"}},
		}}},
		Logger: quiet,
	}
}

func newRunner(t *testing.T, cfg fanout.Config) *fanout.Runner {
	t.Helper()
	r, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	good := fanout.Target{Name: "a", URL: "http://127.0.0.1:1/"}
	cases := []struct {
		name string
		cfg  fanout.Config
		want []string
	}{
		{"no plans", fanout.Config{Targets: []fanout.Target{good}}, []string{"routes: at least one route is required"}},
		{"unknown target", fanout.Config{Targets: []fanout.Target{good},
			Plans: []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "b"}}}}},
			[]string{`plans[0].steps[0].target: unknown target "b"`}},
		{"bad url and cycle", fanout.Config{Targets: []fanout.Target{{Name: "a", URL: "ftp://x"}},
			Plans: []fanout.Plan{{Name: "p", Steps: []fanout.Step{
				{Name: "s", Target: "a", After: []string{"t"}}, {Name: "t", Target: "a", After: []string{"s"}}}}}},
			[]string{"targets.a.url", "cycle"}},
		{"bad template", fanout.Config{Targets: []fanout.Target{good},
			Plans: []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "a", Body: "{{ request.body. }}"}}}}},
			[]string{"plans[0].steps[0].body"}},
		{"unnamed target", fanout.Config{Targets: []fanout.Target{{URL: "http://127.0.0.1:1/"}}}, []string{"targets[0].name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := fanout.New(tc.cfg)
			var ce *fanout.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	a := newTarget(t, nil)
	cfg := twoStepConfig(a.URL, a.URL)
	cfg.Plans = append(cfg.Plans, fanout.Plan{Name: "undo", Saga: true, Steps: []fanout.Step{
		{Name: "x", Target: "a", Compensate: &fanout.Call{Target: "b"}}}})
	r := newRunner(t, cfg)
	ctx := context.Background()
	if _, err := r.Run(ctx, "nope", fanout.Request{}); !errors.Is(err, fanout.ErrUnknownPlan) {
		t.Errorf("unknown plan: err = %v", err)
	}
	if _, err := r.Run(ctx, "undo", fanout.Request{}); !errors.Is(err, fanout.ErrSagaNeedsOutbox) {
		t.Errorf("saga: err = %v", err)
	}
	if _, err := r.Run(ctx, "both", fanout.Request{JSON: func() {}}); err == nil {
		t.Error("a JSON value that cannot be marshalled: no error")
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, "both", fanout.Request{}); !errors.Is(err, fanout.ErrClosed) {
		t.Errorf("after Close: err = %v", err)
	}
	if a.requests() != 0 {
		t.Errorf("%d requests reached the target", a.requests())
	}
}

// TestRunRetriesAndMerges: a step that fails transiently is retried with
// the same Idempotency-Key until it succeeds; one that keeps failing runs
// out of attempts and the result is partially_succeeded.
func TestRunRetriesAndMerges(t *testing.T) {
	t.Parallel()
	flaky := newTarget(t, func(_ string, n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusCreated
	})
	down := newTarget(t, func(string, int) int { return http.StatusBadGateway })
	r := newRunner(t, twoStepConfig(flaky.URL, down.URL))
	res, err := r.Run(context.Background(), "both", fanout.Request{JSON: map[string]any{"n": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != fanout.StatusPartiallySucceeded || res.OK() {
		t.Errorf("status = %s, want partially_succeeded", res.Status)
	}
	a, b := res.Steps["a"], res.Steps["b"]
	if a.Status != fanout.StepSucceeded || a.Attempts != 3 || a.HTTPStatus != http.StatusCreated {
		t.Errorf("step a = %+v, want succeeded after 3 attempts with 201", a)
	}
	if b.Status != fanout.StepDead || b.Attempts != fast.MaxAttempts || b.Error == "" {
		t.Errorf("step b = %+v, want dead after %d attempts with an error", b, fast.MaxAttempts)
	}
	if got := flaky.count(res.ID + ".a"); got != 3 {
		t.Errorf("target a saw key %s.a %d times, want 3 (one key for every attempt)", res.ID, got)
	}
	if body := flaky.body(0); !strings.Contains(body, `"n":7`) {
		t.Errorf("body sent = %s, want the template's {\"n\":7}", body)
	}
}

// TestRunIdempotency: a repeat with the same key and body gets the first
// result and sends nothing; another body with that key is refused.
func TestRunIdempotency(t *testing.T) {
	t.Parallel()
	a := newTarget(t, nil)
	r := newRunner(t, twoStepConfig(a.URL, a.URL))
	ctx := context.Background()
	req := fanout.Request{JSON: map[string]any{"n": 1}, IdempotencyKey: "k-1"}
	first, err := r.Run(ctx, "both", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Run(ctx, "both", req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Repeat || again.ID != first.ID || a.requests() != 2 {
		t.Errorf("repeat: id %s (first %s), repeat %v, %d requests; want the first result and 2 requests", again.ID, first.ID, again.Repeat, a.requests())
	}
	_, err = r.Run(ctx, "both", fanout.Request{JSON: map[string]any{"n": 2}, IdempotencyKey: "k-1"})
	if !errors.Is(err, fanout.ErrIdempotencyConflict) {
		t.Errorf("other body: err = %v, want ErrIdempotencyConflict", err)
	}
}

// TestRunConcurrent runs many fan-outs at once through one Runner.
func TestRunConcurrent(t *testing.T) {
	t.Parallel()
	a, b := newTarget(t, nil), newTarget(t, nil)
	r := newRunner(t, twoStepConfig(a.URL, b.URL))
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.Run(context.Background(), "both", fanout.Request{JSON: map[string]any{"n": i}})
			if err == nil && !res.OK() {
				err = fmt.Errorf("status %s", res.Status)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(a.oks()) != n || len(b.oks()) != n {
		t.Errorf("distinct keys delivered: a %d, b %d; want %d each", len(a.oks()), len(b.oks()), n)
	}
}

// TestRunOptionalStep: an optional step's failure does not count against
// the result.
func TestRunOptionalStep(t *testing.T) {
	t.Parallel()
	ok := newTarget(t, nil)
	gone := newTarget(t, func(string, int) int { return http.StatusNotFound })
	r := newRunner(t, fanout.Config{
		Targets: []fanout.Target{{Name: "ok", URL: ok.URL}, {Name: "gone", URL: gone.URL}},
		Plans: []fanout.Plan{{Name: "p", Steps: []fanout.Step{
			{Name: "main", Target: "ok"}, {Name: "extra", Target: "gone", Optional: true},
		}}},
		Logger: quiet,
	})
	res, err := r.Run(context.Background(), "p", fanout.Request{JSON: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Steps["extra"].Status != fanout.StepDead {
		t.Errorf("result %s %+v; want succeeded with extra dead", res.Status, res.Steps)
	}
}
