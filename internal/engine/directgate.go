package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/target"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// errGateRefused marks an in-memory attempt the target's policies did not
// let through before the route's deadline: it was never sent.
var errGateRefused = errors.New("not sent")

// directPass is one in-memory attempt let through a target's gates. Its
// holder calls done with the attempt's result (or cancel when the attempt
// was not made), exactly once.
type directPass struct {
	tr     *targetRunner
	permit resilience.Permit
}

// enterDirect waits, within ctx (the route's deadline), until the target
// lets one attempt of a durable: false route through the same gates as a
// durable delivery: its Retry-After pause has ended, a concurrency slot is
// free under the adaptive limit (the slots the claim loop fills, so
// /v1/targets counts both kinds in flight), a rate limit token is there
// and the circuit breaker allows.
// A gate that stays shut past the deadline refuses the attempt with an
// error wrapping errGateRefused that says which gate; each such wait is
// counted as a postponement under the durable path's reasons.
func (tr *targetRunner) enterDirect(ctx context.Context) (*directPass, error) {
	e := tr.e
	if err := tr.waitPause(ctx); err != nil {
		return nil, err
	}
	if err := tr.takeSlot(ctx); err != nil {
		return nil, err
	}
	tr.metrics.InFlight(1)
	pass := &directPass{tr: tr}
	if err := tr.waitToken(ctx); err != nil {
		pass.release()
		return nil, err
	}
	for {
		permit, err := tr.breaker.Allow()
		if err == nil {
			pass.permit = permit
			return pass, nil
		}
		var oe *resilience.BreakerOpenError
		if !errors.As(err, &oe) {
			pass.release()
			return nil, fmt.Errorf("%w: %w", errGateRefused, err)
		}
		tr.metrics.Postponed(telemetry.PostponeBreakerOpen)
		// Half-open with every probe out: ask again shortly (a probe's
		// end decides the state).
		wait := max(oe.Until.Sub(e.opts.Now()), halfOpenRecheck)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait || !waitUntil(ctx, wait) {
			pass.release()
			if oe.State == resilience.BreakerHalfOpen {
				return nil, fmt.Errorf("%w: the circuit breaker is half-open and its probes stayed out until the route's deadline", errGateRefused)
			}
			return nil, fmt.Errorf("%w: the circuit breaker is open until %s, past the route's deadline", errGateRefused, oe.Until.UTC().Format(time.RFC3339))
		}
	}
}

// halfOpenRecheck is how often an in-memory attempt asks a half-open
// breaker again while its probes are out.
const halfOpenRecheck = 10 * time.Millisecond

// takeSlot takes one of the target's concurrency slots within ctx. While
// the adaptive limit is below the cap (the target fails transiently), it
// takes one only while fewer than the adaptive limit are in flight, as
// the claim loop does, asking again every halfOpenRecheck.
func (tr *targetRunner) takeSlot(ctx context.Context) error {
	for {
		lim := tr.adaptive.Limit()
		if len(tr.slots) < lim {
			select {
			case tr.slots <- struct{}{}:
				return nil
			default:
			}
		}
		if lim >= tr.limit {
			// Healthy: wait on the slots themselves, woken by the first
			// attempt that ends.
			select {
			case tr.slots <- struct{}{}:
				return nil
			case <-ctx.Done():
			}
		} else if waitUntil(ctx, halfOpenRecheck) {
			continue
		}
		return fmt.Errorf("%w: the target's concurrency cap (%d in flight) stayed full until the route's deadline", errGateRefused, lim)
	}
}

// waitPause waits out the target's Retry-After pause, or refuses when it
// ends after ctx's deadline.
func (tr *targetRunner) waitPause(ctx context.Context) error {
	until := tr.paused(tr.e.opts.Now())
	if until.IsZero() {
		return nil
	}
	tr.metrics.Postponed(telemetry.PostponePaused)
	wait := until.Sub(tr.e.opts.Now())
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait || !waitUntil(ctx, wait) {
		return fmt.Errorf("%w: the target asked to wait (Retry-After) until %s, past the route's deadline", errGateRefused, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// waitToken takes a rate limit token, waiting for it at most until ctx's
// deadline.
func (tr *targetRunner) waitToken(ctx context.Context) error {
	now := tr.e.opts.Now()
	within := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		within = time.Until(dl)
	}
	hold, ok := tr.limiter.Reserve(now, max(within, 0))
	if !ok {
		tr.metrics.Postponed(telemetry.PostponeRateLimit)
		return fmt.Errorf("%w: the target's rate limit has no token before the route's deadline (next in %s)", errGateRefused, hold.Round(time.Millisecond))
	}
	if hold > 0 && !waitUntil(ctx, hold) {
		return fmt.Errorf("%w: the route's deadline passed while waiting for a rate limit token", errGateRefused)
	}
	return nil
}

// done feeds the attempt's result to the breaker, the adaptive limit and
// the pause, as the durable worker does, and frees the slot.
func (p *directPass) done(res *target.Result) {
	p.tr.observe(p.permit, res)
	p.release()
}

// cancel frees the slot of an attempt that was not made; the breaker does
// not count it.
func (p *directPass) cancel() {
	p.permit.Cancel()
	p.release()
}

// release gives the concurrency slot back and wakes the claim loop if it
// waits for one.
func (p *directPass) release() {
	<-p.tr.slots
	p.tr.metrics.InFlight(-1)
	p.tr.freed()
}

// waitUntil waits d (nothing when d <= 0) and reports whether ctx was
// still alive at the end.
func waitUntil(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
