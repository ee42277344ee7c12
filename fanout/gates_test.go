package fanout_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

// TestRunBreaker: in memory too, an open breaker keeps requests from the
// target; the step fails with the breaker's reason.
func TestRunBreaker(t *testing.T) {
	t.Parallel()
	down := newTarget(t, func(string, int) int { return http.StatusServiceUnavailable })
	r := newRunner(t, fanout.Config{
		Targets: []fanout.Target{{Name: "down", URL: down.URL, Retry: fanout.Retry{MaxAttempts: 1},
			Breaker: fanout.Breaker{FailureRatio: 0.5, MinRequests: 2, OpenFor: time.Hour}}},
		Plans:  []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "down"}}}},
		Logger: quiet,
	})
	ctx := context.Background()
	for range 2 {
		if _, err := r.Run(ctx, "p", fanout.Request{JSON: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Run(ctx, "p", fanout.Request{JSON: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Steps["s"]
	if down.requests() != 2 || s.Status != fanout.StepDead || !strings.Contains(s.Error, "breaker") {
		t.Errorf("third run: %d requests reached the target, step %+v; want 2 and a breaker error", down.requests(), s)
	}
}

// TestRunRateLimit: in memory too, a target's token bucket spaces its
// attempts.
func TestRunRateLimit(t *testing.T) {
	t.Parallel()
	a := newTarget(t, nil)
	r := newRunner(t, fanout.Config{
		Targets: []fanout.Target{{Name: "a", URL: a.URL, RateLimit: fanout.RateLimit{PerSecond: 10, Burst: 1}}},
		Plans:   []fanout.Plan{{Name: "p", Steps: []fanout.Step{{Name: "s", Target: "a"}}}},
		Logger:  quiet,
	})
	for range 5 {
		if res, err := r.Run(context.Background(), "p", fanout.Request{JSON: map[string]any{}}); err != nil || !res.OK() {
			t.Fatalf("run: %v %+v", err, res)
		}
	}
	a.mu.Lock()
	span := a.times[len(a.times)-1].Sub(a.times[0])
	a.mu.Unlock()
	if span < 350*time.Millisecond {
		t.Errorf("5 attempts took %v, want at least 400ms at 10/s", span)
	}
}
