package resilience

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy defaults, the same as the config's.
const (
	DefaultMaxAttempts = 8
	DefaultInitial     = 500 * time.Millisecond
	DefaultMax         = 5 * time.Minute
	DefaultMultiplier  = 2.0
	DefaultMaxAge      = 24 * time.Hour
)

// Policy is a retry schedule: exponential backoff with full jitter, bounded
// by a number of attempts and an age. A zero field takes its default.
type Policy struct {
	// MaxAttempts counts every attempt, the first included; 1 means no
	// retry. Default DefaultMaxAttempts.
	MaxAttempts int
	// Initial is the backoff cap after the first attempt. Default
	// DefaultInitial.
	Initial time.Duration
	// Max caps every backoff (but not a target's Retry-After). Default
	// DefaultMax.
	Max time.Duration
	// Multiplier grows the cap per attempt; values below 1 count as 1
	// (a constant cap). Default DefaultMultiplier.
	Multiplier float64
	// MaxAge: no retry is scheduled later than this after the budget
	// started (message accepted, or delivery replayed). Default
	// DefaultMaxAge.
	MaxAge time.Duration
}

// WithDefaults returns p with every zero or negative field set to its
// default and Multiplier raised to at least 1.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Initial <= 0 {
		p.Initial = DefaultInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	switch {
	case p.Multiplier == 0 || math.IsNaN(p.Multiplier):
		p.Multiplier = DefaultMultiplier
	case p.Multiplier < 1:
		p.Multiplier = 1
	}
	if p.MaxAge <= 0 {
		p.MaxAge = DefaultMaxAge
	}
	return p
}

// Cap is the largest backoff after the given attempt (1-based) failed:
// min(Max, Initial * Multiplier^(attempt-1)). Attempts below 1 count as 1;
// huge attempt numbers saturate at Max.
func (p Policy) Cap(attempt int) time.Duration {
	p = p.WithDefaults()
	if attempt < 1 {
		attempt = 1
	}
	if p.Initial >= p.Max {
		return p.Max
	}
	// In float64 the product overflows to +Inf rather than wrapping, and
	// +Inf compares above Max.
	c := float64(p.Initial) * math.Pow(p.Multiplier, float64(attempt-1))
	if c >= float64(p.Max) {
		return p.Max
	}
	return time.Duration(c)
}

// Backoff is the wait after the given attempt (1-based) failed, with full
// jitter: rnd * Cap(attempt), rnd in [0, 1) (values outside are clamped).
func (p Policy) Backoff(attempt int, rnd float64) time.Duration {
	switch {
	case rnd < 0 || math.IsNaN(rnd):
		rnd = 0
	case rnd > 1:
		rnd = 1
	}
	return time.Duration(rnd * float64(p.Cap(attempt)))
}

// Next says when the next attempt is due after attempts attempts of the
// current budget (those since the last replay) have failed transiently,
// the last of them ending at now; since is when the budget started (the
// message's acceptance or the last replay).
//
// It returns false when the budget is spent: attempts >= MaxAttempts, or
// the next attempt would start after since+MaxAge.
//
// retryAfter (0 = none) is the target's Retry-After. It is honoured as a
// floor: the wait is max(backoff, retryAfter). It is not capped by Max, a
// target knows best when it can take traffic again, but it is bounded by
// MaxAge like every wait: a Retry-After past since+MaxAge ends the budget.
func (p Policy) Next(attempts int, since, now time.Time, retryAfter time.Duration, rnd float64) (time.Time, bool) {
	p = p.WithDefaults()
	if attempts >= p.MaxAttempts {
		return time.Time{}, false
	}
	wait := p.Backoff(attempts, rnd)
	if retryAfter > wait {
		wait = retryAfter
	}
	next := now.Add(wait)
	if next.After(since.Add(p.MaxAge)) {
		return time.Time{}, false
	}
	return next, true
}

// Jitter returns a uniform value in [0, 1) for Backoff and Next. It is safe
// for concurrent use and takes no lock.
func Jitter() float64 { return rand.Float64() }
