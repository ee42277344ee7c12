package resilience

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LimiterSettings configure a Limiter: a token bucket over one target's
// calls.
type LimiterSettings struct {
	// PerSecond is the refill rate; 0 (or less) means no limit.
	PerSecond float64
	// Burst is the bucket size. Default max(1, ceil(PerSecond)).
	Burst int
	// Shared divides PerSecond (and Burst) by the number of replicas set
	// with SetReplicas, so that the replicas together keep the limit.
	Shared bool
}

// Limiter is a token bucket (golang.org/x/time/rate) whose every method
// takes the time, so tests drive it with a ManualClock. A nil *Limiter, or
// one with no PerSecond, never limits. It is safe for concurrent use.
type Limiter struct {
	s LimiterSettings

	mu       sync.Mutex
	replicas int
	rate     float64 // effective tokens per second
	burst    int     // effective bucket size
	lim      *rate.Limiter
}

// NewLimiter returns a limiter with a full bucket, or nil when s has no
// limit.
func NewLimiter(s LimiterSettings) *Limiter {
	if !(s.PerSecond > 0) || math.IsInf(s.PerSecond, 0) {
		return nil
	}
	if s.Burst < 1 {
		s.Burst = int(max(1, math.Ceil(min(s.PerSecond, math.MaxInt32))))
	}
	l := &Limiter{s: s, replicas: 1, rate: s.PerSecond, burst: s.Burst}
	l.lim = rate.NewLimiter(rate.Limit(l.rate), l.burst)
	return l
}

// SetReplicas tells a shared limiter how many replicas share its target:
// its rate becomes PerSecond/n and its bucket max(1, ceil(Burst/n)), from
// now on. n below 1 counts as 1. A limiter that is not shared ignores it.
func (l *Limiter) SetReplicas(n int, now time.Time) {
	if l == nil || !l.s.Shared {
		return
	}
	n = max(n, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == l.replicas {
		return
	}
	l.replicas = n
	l.rate = l.s.PerSecond / float64(n)
	l.burst = int(max(1, math.Ceil(float64(l.s.Burst)/float64(n))))
	l.lim.SetLimitAt(now, rate.Limit(l.rate))
	l.lim.SetBurstAt(now, l.burst)
}

// Available says how many calls could be reserved at now with a wait of at
// most within: the tokens at now plus those that refill within. It is
// math.MaxInt without a limit, and may be 0.
func (l *Limiter) Available(now time.Time, within time.Duration) int {
	if l == nil {
		return math.MaxInt
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.lim.TokensAt(now) + l.rate*within.Seconds()
	if n < 1 {
		return 0
	}
	return int(min(n, math.MaxInt32))
}

// Next is how long after now a token is available; 0 when one is.
func (l *Limiter) Next(now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 1 - l.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing / l.rate * float64(time.Second)))
}

// Reserve takes one token for a call at now and says how long the call
// must wait for it. When the wait would be longer than maxWait, it takes
// nothing and returns the wait with ok false.
func (l *Limiter) Reserve(now time.Time, maxWait time.Duration) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.lim.ReserveN(now, 1)
	if !r.OK() {
		// Only when the bucket is smaller than one token, which
		// NewLimiter and SetReplicas rule out.
		return maxWait + time.Second, false
	}
	wait = r.DelayFrom(now)
	if wait > maxWait {
		r.CancelAt(now)
		return wait, false
	}
	return wait, true
}

// LimiterSnapshot is a limiter's state for display.
type LimiterSnapshot struct {
	// Enabled is false when the target has no rate limit; then the other
	// fields are zero.
	Enabled bool
	// PerSecond, Burst and Shared as configured.
	PerSecond float64
	Burst     int
	Shared    bool
	// Replicas sharing the limit (1 unless shared).
	Replicas int
	// EffectivePerSecond and EffectiveBurst are in force on this replica.
	EffectivePerSecond float64
	EffectiveBurst     int
	// Tokens in the bucket now; negative when calls wait for tokens.
	Tokens float64
}

// Snapshot returns the limiter's state at now.
func (l *Limiter) Snapshot(now time.Time) LimiterSnapshot {
	if l == nil {
		return LimiterSnapshot{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimiterSnapshot{
		Enabled:            true,
		PerSecond:          l.s.PerSecond,
		Burst:              l.s.Burst,
		Shared:             l.s.Shared,
		Replicas:           l.replicas,
		EffectivePerSecond: l.rate,
		EffectiveBurst:     l.burst,
		Tokens:             l.lim.TokensAt(now),
	}
}
