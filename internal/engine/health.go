package engine

import (
	"slices"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/target"
)

// TargetHealth is one target's live state on this replica, for
// GET /v1/targets.
type TargetHealth struct {
	Name string
	// Breaker is the circuit breaker's state; BreakerDisabled is set when
	// the target has none (then Breaker is a closed, empty snapshot).
	Breaker         resilience.BreakerSnapshot
	BreakerDisabled bool
	// Limiter is the rate limit's state; Limiter.Enabled is false when the
	// target has none.
	Limiter resilience.LimiterSnapshot
	// PausedUntil is when the target's Retry-After pause ends; zero when
	// it is not paused.
	PausedUntil time.Time
	// InFlight counts deliveries claimed by this replica and not yet
	// recorded; Concurrency is the configured cap on them, and
	// ConcurrencyLimit the adaptive cap in force (lower while the target
	// fails transiently).
	InFlight         int
	Concurrency      int
	ConcurrencyLimit int
	// Lease is how long a claim of this target's deliveries lasts.
	Lease time.Duration
	// Hosts are the target's hosts when it lists several urls; nil
	// otherwise.
	Hosts []target.HostSnapshot
}

// TargetHealth returns every target's live state, sorted by name.
func (e *Engine) TargetHealth() []TargetHealth {
	now := e.opts.Now()
	targets := e.cur().targets
	out := make([]TargetHealth, 0, len(targets))
	for name, tr := range targets {
		out = append(out, TargetHealth{
			Name:             name,
			Breaker:          tr.breaker.Snapshot(),
			BreakerDisabled:  tr.breaker == nil,
			Limiter:          tr.limiter.Snapshot(now),
			PausedUntil:      tr.paused(now),
			InFlight:         len(tr.slots),
			Concurrency:      tr.limit,
			ConcurrencyLimit: tr.adaptive.Limit(),
			Lease:            tr.lease,
			Hosts:            tr.endpoint.Hosts.Snapshot(),
		})
	}
	slices.SortFunc(out, func(a, b TargetHealth) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetReplicas tells the engine how many replicas share the store (n below 1
// counts as 1): targets with rate_limit.shared then allow per_second/n
// here, so that the replicas together keep the configured rate. The serve
// command calls it when the live replica count changes.
func (e *Engine) SetReplicas(n int) {
	now := e.opts.Now()
	for _, tr := range e.cur().targets {
		tr.limiter.SetReplicas(n, now)
	}
}
