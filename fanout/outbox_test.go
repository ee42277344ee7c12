package fanout_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

func openOutbox(t *testing.T, path string, cfg fanout.Config) *fanout.Outbox {
	t.Helper()
	ob, err := fanout.OpenOutbox(context.Background(), fanout.OutboxOptions{Path: path, Config: cfg, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close(context.Background()) })
	return ob
}

func waitDone(t *testing.T, ob *fanout.Outbox, id string) *fanout.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := ob.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return res
}

// TestOutboxDelivers: Send commits and returns; the workers deliver every
// step, a dependent step reads its dependency's stored answer, and each
// key succeeds once.
func TestOutboxDelivers(t *testing.T) {
	t.Parallel()
	a := newTarget(t, func(_ string, n int) int {
		if n == 1 {
			return http.StatusTooManyRequests // retried from the store
		}
		return http.StatusOK
	})
	b := newTarget(t, nil)
	cfg := fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: a.URL, Retry: fast}, {Name: "b", URL: b.URL, Retry: fast}},
		Plans: []fanout.Plan{{Name: "chain", Steps: []fanout.Step{
			{Name: "first", Target: "a"},
			{Name: "second", Target: "b", After: []string{"first"}, Body: map[string]any{"key": "{{ steps.first.body.key }}"}},
		}}},
		Logger: quiet,
	}
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), cfg)
	ctx := context.Background()
	var ids []string
	for range 10 {
		id, err := ob.Send(ctx, "chain", fanout.Request{JSON: map[string]any{"x": 1}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		res := waitDone(t, ob, id)
		if !res.OK() || res.Steps["first"].Attempts != 2 {
			t.Fatalf("message %s: %+v; want succeeded, first after 2 attempts", id, res)
		}
		if !strings.Contains(string(res.Steps["second"].Body), "n") {
			t.Errorf("second's answer = %s", res.Steps["second"].Body)
		}
	}
	aok, bok := a.oks(), b.oks()
	for _, id := range ids {
		if aok[id+".first"] != 1 || bok[id+".second"] != 1 {
			t.Errorf("message %s: key %s.first succeeded %d times, %s.second %d; want once each", id, id, aok[id+".first"], id, bok[id+".second"])
		}
	}
	// The template read the first step's stored answer: its key.
	if body := b.body(0); !strings.Contains(body, `.first"`) {
		t.Errorf("second's request body = %s, want the first step's key", body)
	}
	if _, err := ob.Result(ctx, "no-such-id"); !errors.Is(err, fanout.ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}
}

// TestOutboxIdempotentSend: a repeat of a key returns the first id.
func TestOutboxIdempotentSend(t *testing.T) {
	t.Parallel()
	a := newTarget(t, nil)
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), twoStepConfig(a.URL, a.URL))
	ctx := context.Background()
	req := fanout.Request{JSON: map[string]any{"n": 1}, IdempotencyKey: "order-9"}
	first, err := ob.Send(ctx, "both", req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ob.Send(ctx, "both", req)
	if err != nil || again != first {
		t.Fatalf("repeat: id %q, err %v; want %q", again, err, first)
	}
	if _, err := ob.Send(ctx, "both", fanout.Request{JSON: map[string]any{"n": 2}, IdempotencyKey: "order-9"}); !errors.Is(err, fanout.ErrIdempotencyConflict) {
		t.Errorf("other body: err = %v", err)
	}
	waitDone(t, ob, first)
	if a.requests() != 2 {
		t.Errorf("%d requests, want 2 (one message)", a.requests())
	}
}

// TestOutboxBreaker: once the breaker opens no request reaches the target;
// the delivery waits in the store instead of failing.
func TestOutboxBreaker(t *testing.T) {
	t.Parallel()
	down := newTarget(t, func(string, int) int { return http.StatusServiceUnavailable })
	cfg := fanout.Config{
		Targets: []fanout.Target{{Name: "down", URL: down.URL, Retry: fanout.Retry{MaxAttempts: 50, Initial: time.Millisecond, Max: time.Millisecond},
			Breaker: fanout.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Hour}}},
		Plans:  []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "down"}}}},
		Logger: quiet,
	}
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), cfg)
	id, err := ob.Send(context.Background(), "p", fanout.Request{JSON: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for down.requests() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the target saw %d requests, want 2", down.requests())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Retries are due every millisecond; an open breaker holds them all.
	// The poll interval is 20ms, so a second is fifty chances to leak.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if n := down.requests(); n != 2 {
			t.Fatalf("%d requests reached the target with its breaker open, want 2", n)
		}
	}
	res, err := ob.Result(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Steps["s"]; s.Status != fanout.StepScheduled || s.Attempts != 2 {
		t.Errorf("step = %+v, want scheduled after 2 attempts (waiting, not failed)", s)
	}
}

// TestOutboxRateLimit: a target's token bucket spaces its attempts.
func TestOutboxRateLimit(t *testing.T) {
	t.Parallel()
	a := newTarget(t, nil)
	cfg := fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: a.URL, RateLimit: fanout.RateLimit{PerSecond: 10, Burst: 1}}},
		Plans:   []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "a"}}}},
		Logger:  quiet,
	}
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), cfg)
	var ids []string
	for range 6 {
		id, err := ob.Send(context.Background(), "p", fanout.Request{JSON: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitDone(t, ob, id)
	}
	a.mu.Lock()
	span := a.times[len(a.times)-1].Sub(a.times[0])
	a.mu.Unlock()
	// Six attempts at ten a second with a burst of one take at least half
	// a second (five refills); allow for the timer's granularity.
	if span < 450*time.Millisecond {
		t.Errorf("6 attempts took %v, want at least 500ms at 10/s", span)
	}
}

// TestOutboxSaga: a saga plan in an outbox undoes its succeeded step when
// a required step fails for good.
func TestOutboxSaga(t *testing.T) {
	t.Parallel()
	charge := newTarget(t, nil)
	refund := newTarget(t, nil)
	stock := newTarget(t, func(string, int) int { return http.StatusConflict }) // permanent
	cfg := fanout.Config{
		Targets: []fanout.Target{{Name: "charge", URL: charge.URL}, {Name: "refund", URL: refund.URL}, {Name: "stock", URL: stock.URL}},
		Plans: []fanout.Plan{{Name: "order", Saga: true, Steps: []fanout.Step{
			{Name: "charge", Target: "charge", Compensate: &fanout.Call{Target: "refund", Body: map[string]any{"undo": "{{ steps.charge.body.key }}"}}},
			{Name: "reserve", Target: "stock", After: []string{"charge"}},
		}}},
		Logger: quiet,
	}
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), cfg)
	id, err := ob.Send(context.Background(), "order", fanout.Request{JSON: map[string]any{"total": 10}})
	if err != nil {
		t.Fatal(err)
	}
	res := waitDone(t, ob, id)
	if res.Status != fanout.StatusCompensated || res.Steps["reserve"].Status != fanout.StepDead {
		t.Errorf("result = %s %+v, want compensated with reserve dead", res.Status, res.Steps)
	}
	if body := refund.body(0); !strings.Contains(body, id+".charge") {
		t.Errorf("refund body = %q, want the charge's answer (its key %s.charge)", body, id)
	}
}

// TestOutboxReplay: a step that failed for good is replayed and then
// delivered; its skipped dependant runs too.
func TestOutboxReplay(t *testing.T) {
	t.Parallel()
	var fixed atomic.Bool
	a := newTarget(t, func(string, int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusBadRequest // permanent: a dead letter at once
	})
	b := newTarget(t, nil)
	cfg := fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: a.URL}, {Name: "b", URL: b.URL}},
		Plans: []fanout.Plan{{Name: "p", Steps: []fanout.Step{
			{Name: "first", Target: "a"}, {Name: "then", Target: "b", After: []string{"first"}},
		}}},
		Logger: quiet,
	}
	ob := openOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), cfg)
	ctx := context.Background()
	id, err := ob.Send(ctx, "p", fanout.Request{JSON: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	if res := waitDone(t, ob, id); res.Status != fanout.StatusFailed || res.Steps["then"].Status != fanout.StepSkipped {
		t.Fatalf("before the replay: %s %+v", res.Status, res.Steps)
	}
	fixed.Store(true)
	n, err := ob.Replay(ctx, id)
	if err != nil || n != 1 {
		t.Fatalf("Replay = %d, %v; want 1 step replayed", n, err)
	}
	if res := waitDone(t, ob, id); !res.OK() {
		t.Errorf("after the replay: %s %+v", res.Status, res.Steps)
	}
	if _, err := ob.Replay(ctx, "nope"); !errors.Is(err, fanout.ErrNotFound) {
		t.Errorf("Replay of an unknown id: %v", err)
	}
}
