package engine

import (
	"fmt"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/target"
)

// verdict is what one attempt's outcome means for its delivery.
type verdict uint8

const (
	// verdictSucceeded: the delivery is done.
	verdictSucceeded verdict = iota + 1
	// verdictRetry: try again at decision.At.
	verdictRetry
	// verdictDead: a dead letter; decision.Reason says why.
	verdictDead
	// verdictPostpone: give the claim back, due at decision.At, without
	// counting the attempt.
	verdictPostpone
)

func (v verdict) String() string {
	switch v {
	case verdictSucceeded:
		return "succeeded"
	case verdictRetry:
		return "retry"
	case verdictDead:
		return "dead"
	case verdictPostpone:
		return "postpone"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// decision is decide's answer.
type decision struct {
	Verdict verdict
	// At is when the retry or the postponed claim is due.
	At time.Time
	// Reason is the attempt's error for a retry, the dead letter's reason
	// for a dead delivery, empty otherwise.
	Reason string
}

// attemptFacts is what decide needs to know of one attempt.
type attemptFacts struct {
	// Result is the attempt's outcome.
	Result *target.Result
	// N is the attempt's number within the delivery's current retry
	// budget (attempts since the last replay), this one included.
	N int
	// Since is when the budget started: the message's acceptance, or the
	// delivery's last replay.
	Since time.Time
	// Now is when the attempt ended.
	Now time.Time
	// Deadline, when set, is when the route's waiting caller gives up (a
	// durable: false route): a retry not due before it is not made.
	Deadline time.Time
	// Stopped: the engine itself cut the attempt short (shutdown), so its
	// outcome says nothing about the target.
	Stopped bool
	// Policy is the target's retry schedule.
	Policy resilience.Policy
	// MaxRetryAfter caps the target's Retry-After (retry.max_retry_after);
	// 0 means no cap.
	MaxRetryAfter time.Duration
	// Jitter is a number in [0, 1) for the backoff.
	Jitter float64
}

// decide says what an attempt's outcome means for its delivery: success,
// a retry at a time, a dead letter with its reason, or, for an attempt
// the engine stopped, a postponed claim that counts no attempt. It is
// pure, and the one place both durable deliveries (worker.go) and
// durable: false routes (direct.go) decide, so both use the same words.
func decide(f attemptFacts) decision {
	res := f.Result
	if f.Stopped && res.Outcome != record.OutcomeSuccess {
		return decision{Verdict: verdictPostpone, At: f.Now}
	}
	text := errorText(res)
	switch res.Outcome {
	case record.OutcomeSuccess:
		return decision{Verdict: verdictSucceeded}
	case record.OutcomePermanent:
		return decision{Verdict: verdictDead, Reason: "permanent failure: " + text}
	}
	next, ok := f.Policy.Next(f.N, f.Since, f.Now, capRetryAfter(res.RetryAfter, f.MaxRetryAfter), f.Jitter)
	switch {
	case !ok:
		return decision{Verdict: verdictDead, Reason: fmt.Sprintf("gave up after %d attempts: %s", f.N, text)}
	case !f.Deadline.IsZero() && !next.Before(f.Deadline):
		return decision{Verdict: verdictDead, Reason: atDeadline(f.N, text)}
	}
	return decision{Verdict: verdictRetry, At: next, Reason: text}
}

// atDeadline is the reason of a durable: false step that was still failing
// when the route's deadline came.
func atDeadline(n int, text string) string {
	return fmt.Sprintf("gave up after %d attempts at the route's deadline: %s", n, text)
}

// capRetryAfter bounds a target's Retry-After by limit (0: no bound).
func capRetryAfter(d, limit time.Duration) time.Duration {
	if limit > 0 && d > limit {
		return limit
	}
	return d
}

// errorText is an attempt's error as kept in attempts and dead letters.
func errorText(res *target.Result) string {
	if res.Err != nil {
		return withViolation(res.Err.Error(), res)
	}
	if res.Outcome == record.OutcomeSuccess {
		return withViolation("", res) // strategies.go: a broken contract is flagged
	}
	return withViolation(fmt.Sprintf("status %d", res.Status), res)
}
