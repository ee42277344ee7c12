package resilience

import (
	"math"
	"sync"
)

// DefaultBackoffRatio is what a ConcurrencyLimit multiplies its limit by
// on each failure.
const DefaultBackoffRatio = 0.9

// ConcurrencyLimit is an adaptive cap on one target's attempts in flight,
// additive increase, multiplicative decrease (AIMD): it starts at Max;
// each failure multiplies it by DefaultBackoffRatio, each success adds
// one; it stays within [1, Max].
//
// A target that always fails so comes down to one attempt at a time
// within a few dozen attempts, so its retries cannot flood the store or
// the network however short its backoff; a target that fails a fraction
// f of its attempts settles near 10(1-f)/f (capped at Max), e.g. 10 at
// half. One success after another brings it back to Max. It is safe for
// concurrent use; a nil *ConcurrencyLimit is a fixed limit of
// math.MaxInt.
type ConcurrencyLimit struct {
	max int

	mu    sync.Mutex
	limit float64
}

// NewConcurrencyLimit returns a limit that starts at, and never exceeds,
// max (at least 1).
func NewConcurrencyLimit(max int) *ConcurrencyLimit {
	if max < 1 {
		max = 1
	}
	return &ConcurrencyLimit{max: max, limit: float64(max)}
}

// Max returns the configured cap.
func (c *ConcurrencyLimit) Max() int {
	if c == nil {
		return math.MaxInt
	}
	return c.max
}

// Limit returns how many attempts may be in flight now, in [1, Max].
func (c *ConcurrencyLimit) Limit() int {
	if c == nil {
		return math.MaxInt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.limit)
}

// Observe adapts the limit to one attempt's outcome: success false for a
// failure that signals overload or an outage (transient: 5xx, 429,
// timeout, connection refused).
func (c *ConcurrencyLimit) Observe(success bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if success {
		c.limit = min(c.limit+1, float64(c.max))
		return
	}
	c.limit = max(c.limit*DefaultBackoffRatio, 1)
}
