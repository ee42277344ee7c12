package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/target"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Minute)
	policy := resilience.Policy{MaxAttempts: 3, Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, MaxAge: time.Hour}
	unavailable := &target.Result{Outcome: record.OutcomeTransient, Status: 503, Err: errors.New("status 503 Service Unavailable")}
	busy := func(ra time.Duration) *target.Result {
		return &target.Result{Outcome: record.OutcomeTransient, Status: 429, Err: errors.New("status 429 Too Many Requests"), RetryAfter: ra}
	}
	tests := []struct {
		name string
		f    attemptFacts
		want decision
	}{
		{"success", attemptFacts{Result: &target.Result{Outcome: record.OutcomeSuccess, Status: 200}, N: 1},
			decision{Verdict: verdictSucceeded}},
		{"success while stopping is still a success", attemptFacts{Result: &target.Result{Outcome: record.OutcomeSuccess, Status: 201}, N: 1, Stopped: true},
			decision{Verdict: verdictSucceeded}},
		{"permanent", attemptFacts{Result: &target.Result{Outcome: record.OutcomePermanent, Status: 404, Err: errors.New("status 404 Not Found")}, N: 1},
			decision{Verdict: verdictDead, Reason: "permanent failure: status 404 Not Found"}},
		{"permanent without an error names the status", attemptFacts{Result: &target.Result{Outcome: record.OutcomePermanent, Status: 422}, N: 2},
			decision{Verdict: verdictDead, Reason: "permanent failure: status 422"}},
		{"transient: retry after the jittered backoff", attemptFacts{Result: unavailable, N: 2, Jitter: 0.5},
			decision{Verdict: verdictRetry, At: now.Add(time.Second), Reason: "status 503 Service Unavailable"}},
		{"transient: budget spent", attemptFacts{Result: unavailable, N: 3, Jitter: 0.5},
			decision{Verdict: verdictDead, Reason: "gave up after 3 attempts: status 503 Service Unavailable"}},
		{"Retry-After is a floor", attemptFacts{Result: busy(30 * time.Second), N: 1},
			decision{Verdict: verdictRetry, At: now.Add(30 * time.Second), Reason: "status 429 Too Many Requests"}},
		{"Retry-After is capped by max_retry_after", attemptFacts{Result: busy(24 * time.Hour), N: 1, MaxRetryAfter: 10 * time.Second},
			decision{Verdict: verdictRetry, At: now.Add(10 * time.Second), Reason: "status 429 Too Many Requests"}},
		{"uncapped Retry-After past max_age", attemptFacts{Result: busy(24 * time.Hour), N: 1},
			decision{Verdict: verdictDead, Reason: "gave up after 1 attempts: status 429 Too Many Requests"}},
		{"retry due after the route's deadline", attemptFacts{Result: busy(5 * time.Second), N: 1, Deadline: now.Add(2 * time.Second)},
			decision{Verdict: verdictDead, Reason: "gave up after 1 attempts at the route's deadline: status 429 Too Many Requests"}},
		{"retry due before the route's deadline", attemptFacts{Result: busy(time.Second), N: 1, Deadline: now.Add(2 * time.Second)},
			decision{Verdict: verdictRetry, At: now.Add(time.Second), Reason: "status 429 Too Many Requests"}},
		{"the deadline passed", attemptFacts{Result: unavailable, N: 1, Deadline: now},
			decision{Verdict: verdictDead, Reason: "gave up after 1 attempts at the route's deadline: status 503 Service Unavailable"}},
		{"stopped by the engine: given back now, uncounted", attemptFacts{Result: &target.Result{Outcome: record.OutcomeTransient, Err: errors.New("canceled")}, N: 3, Stopped: true},
			decision{Verdict: verdictPostpone, At: now}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tc.f
			f.Since, f.Now, f.Policy = t0, now, policy
			got := decide(f)
			if got.Verdict != tc.want.Verdict || !got.At.Equal(tc.want.At) || got.Reason != tc.want.Reason {
				t.Errorf("decide = %s at %v %q, want %s at %v %q", got.Verdict, got.At, got.Reason, tc.want.Verdict, tc.want.At, tc.want.Reason)
			}
		})
	}
}
