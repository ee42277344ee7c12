package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/target"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// testHookReserve, when set by a test, is told of every rate limit token
// a target takes and when its attempt may start.
var testHookReserve atomic.Pointer[func(target string, at time.Time)]

// maxHold is the longest a claimed delivery waits in memory for a rate
// limit token; a delivery that would wait longer is not claimed. The
// lease of a rate-limited target covers it.
const maxHold = time.Second

// targetRunner owns one target: its claim loop, its attempts in flight and
// the policies that gate them (Retry-After pause, circuit breaker, rate
// limit, concurrency cap), shared by every route that calls the target.
type targetRunner struct {
	e        *Engine
	cfg      *config.Target
	endpoint *target.Endpoint
	policy   resilience.Policy
	// maxRetryAfter caps a Retry-After, for the delivery that got it and
	// for the target-wide pause (retry.max_retry_after).
	maxRetryAfter time.Duration
	lease         time.Duration                // a claim's length: total + margin (+ maxHold)
	total         time.Duration                // the target's total timeout: one whole attempt
	limit         int                          // concurrency: the size of slots
	adaptive      *resilience.ConcurrencyLimit // at most limit; lower while failing
	breaker       *resilience.Breaker          // nil when disabled
	limiter       *resilience.Limiter          // nil without a rate limit
	metrics       *telemetry.TargetMetrics

	// pausedUntil (unix nanoseconds, 0 = none) is when the target's
	// Retry-After pause ends; it only moves forward.
	pausedUntil atomic.Int64

	// send, when set, makes the attempts instead of the HTTP caller (a
	// publish, a guarded callback: oncomplete.go).
	send func(context.Context, *record.Delivery, *target.Request) *target.Result
	// looping is true while loop runs: a result claims the next delivery
	// (chain) only then, so a runner whose loop has ended (shutdown, or a
	// runner replaced by a new config) stops taking work.
	looping atomic.Bool

	wakeCh chan struct{} // buffered 1: work may be due
	slots  chan struct{} // one token per delivery claimed and not yet recorded
	// slotWait is set while the loop waits for slots to free up (none
	// free, or fewer than a claim batch): only then does a freed slot wake
	// it. Without it, every durable: false call's end woke the loop into
	// an empty claim (measured: 6% of the sync fan-out's CPU).
	slotWait atomic.Bool
	// idle is set when the loop's last claim found fewer deliveries due
	// than it asked for (or a result's chained claim found none): the
	// target has no backlog, so an ingest may insert a new delivery
	// already claimed (holdForInsert) without passing older ones.
	idle atomic.Bool
}

// freed wakes the loop after a slot was given back, if it waits for one.
// The loop sets slotWait before it counts the free slots, and a freer
// gives its slot back before it looks: either the loop counts the freed
// slot or the freer sees the flag.
func (tr *targetRunner) freed() {
	if tr.slotWait.Swap(false) {
		tr.poke()
	}
}

func newTargetRunner(e *Engine, tc *config.Target) *targetRunner {
	// A loaded config has its defaults (config/defaults.go); a target built
	// in code may not, and then gets the same values, named once there.
	conc := tc.Concurrency
	if conc <= 0 {
		conc = config.DefaultConcurrency
	}
	total := tc.Timeout.Total.D()
	if total <= 0 {
		total = config.DefaultTotalTimeout.D()
	}
	tr := &targetRunner{
		e:        e,
		cfg:      tc,
		endpoint: endpoint(e, tc), // strategies.go: Endpoint with hosts and contract
		policy: resilience.Policy{
			MaxAttempts: tc.Retry.MaxAttempts,
			Initial:     tc.Retry.Initial.D(),
			Max:         tc.Retry.Max.D(),
			Multiplier:  tc.Retry.Multiplier,
			MaxAge:      tc.Retry.MaxAge.D(),
		},
		maxRetryAfter: tc.Retry.MaxRetryAfter.D(),
		limit:         conc,
		adaptive:      resilience.NewConcurrencyLimit(conc),
		limiter: resilience.NewLimiter(resilience.LimiterSettings{
			PerSecond: tc.RateLimit.PerSecond, Burst: tc.RateLimit.Burst, Shared: tc.RateLimit.Shared,
		}),
		metrics: e.metrics.Target(tc.Name),
		wakeCh:  make(chan struct{}, 1),
		slots:   make(chan struct{}, conc),
	}
	// The lease outlasts everything a claimed delivery may go through
	// before it is recorded: a wait for a token, the request itself, and
	// a margin for the store round trips around it.
	margin := tc.Timeout.LeaseMargin.D()
	if margin <= 0 {
		margin = e.opts.LeaseMargin
	}
	tr.total = total
	tr.lease = total + margin
	if tr.limiter != nil {
		tr.lease += maxHold
	}
	if tr.maxRetryAfter <= 0 {
		tr.maxRetryAfter = tr.policy.WithDefaults().Max
	}
	if !tc.Breaker.Disabled {
		tr.breaker = resilience.NewBreaker(resilience.BreakerSettings{
			FailureRatio:   tc.Breaker.FailureRatio,
			MinRequests:    tc.Breaker.MinRequests,
			Window:         tc.Breaker.Window.D(),
			OpenFor:        tc.Breaker.OpenFor.D(),
			HalfOpenProbes: tc.Breaker.HalfOpenProbes,
		}, clockFunc(e.opts.Now), tr.breakerChanged)
	}
	if tr.breaker == nil {
		tr.metrics.BreakerState(telemetry.BreakerDisabled)
	} else {
		tr.metrics.BreakerState(telemetry.BreakerClosed)
	}
	return tr
}

// clockFunc makes the engine's clock a resilience.Clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// breakerChanged logs and exports a state change. It runs with the
// breaker's lock held: it must not call the breaker.
func (tr *targetRunner) breakerChanged(c resilience.BreakerChange) {
	log := tr.e.log.With("target", tr.cfg.Name, "from", c.From.String(), "to", c.To.String())
	switch c.To {
	case resilience.BreakerOpen:
		tr.metrics.BreakerState(telemetry.BreakerOpen)
		if c.From == resilience.BreakerClosed {
			log.Warn("circuit breaker opened", "requests", c.Requests, "failures", c.Failures, "until", c.OpenUntil)
		} else {
			log.Warn("circuit breaker probe failed; open again", "until", c.OpenUntil)
		}
	case resilience.BreakerHalfOpen:
		tr.metrics.BreakerState(telemetry.BreakerHalfOpen)
		log.Info("circuit breaker half-open; probing")
	default:
		tr.metrics.BreakerState(telemetry.BreakerClosed)
		log.Info("circuit breaker closed")
	}
}

// Endpoint converts a target's config into the caller's form.
func Endpoint(tc *config.Target) *target.Endpoint {
	ep := &target.Endpoint{
		Name:            tc.Name,
		URL:             tc.URL,
		Method:          tc.Method,
		ConnectTimeout:  tc.Timeout.Connect.D(),
		TotalTimeout:    tc.Timeout.Total.D(),
		Header:          http.Header{},
		SuccessStatus:   tc.SuccessStatus,
		MaxResponseBody: int64(tc.MaxResponseBody),
	}
	if ep.Method == "" {
		ep.Method = http.MethodPost
	}
	for k, v := range tc.Headers {
		ep.Header.Set(k, v)
	}
	ep.Auth.Bearer = tc.Auth.Bearer
	if tc.Auth.Basic != nil {
		ep.Auth.BasicUser, ep.Auth.BasicPass = tc.Auth.Basic.Username, tc.Auth.Basic.Password
	}
	if tc.Auth.Header != nil {
		ep.Auth.HeaderName, ep.Auth.HeaderValue = tc.Auth.Header.Name, tc.Auth.Header.Value
	}
	return ep
}

func (tr *targetRunner) poke() {
	select {
	case tr.wakeCh <- struct{}{}:
	default:
	}
}

// loop claims due deliveries while the target's gates let attempts
// through (free slots, no pause, breaker not open, rate limit tokens), and
// otherwise waits for a wake-up, a freed slot, the end of the wait the
// gates named, or the poll interval. While the breaker is open or the
// target paused, it does not touch the store at all.
func (tr *targetRunner) loop(ctx context.Context) {
	e := tr.e
	tr.looping.Store(true)
	defer tr.looping.Store(false)
	poll := time.NewTimer(e.opts.PollInterval)
	defer poll.Stop()
	backoff := time.Duration(0)
	for {
		now := e.opts.Now().UTC()
		want, wait := tr.admit(now)
		got := 0
		if want > 0 {
			ds, err := tr.claim(ctx, want, now)
			switch {
			case ctx.Err() != nil:
				// Shutdown began while the claim ran: give back at once what
				// it took, or each would stay running for a whole lease.
				for i := range ds {
					tr.postpone(&ds[i], e.opts.Now(), telemetry.PostponeShutdown, "")
				}
				return
			case err != nil:
				// The store is away; try again later, slower each time.
				backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
				e.log.Warn("claim deliveries", "target", tr.cfg.Name, "error", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
			got = len(ds)
			tr.idle.Store(got < want)
			// Tokens are reserved from the time the claim returned, so
			// a slow claim does not bunch the requests up after it.
			at := e.opts.Now().UTC()
			for i := range ds {
				tr.start(&ds[i], at)
			}
		}
		if got > 0 && got == want {
			// More may be due; claim again while the gates allow.
			continue
		}
		// The wait is measured on the engine's clock but slept in real
		// time, at most a poll interval, so a test clock that jumps is
		// noticed at the next poll.
		sleep := e.opts.PollInterval
		if wait > 0 && wait < sleep {
			sleep = wait
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(sleep)
		select {
		case <-ctx.Done():
			return
		case <-tr.wakeCh:
		case <-poll.C:
		}
	}
}

// claim leases up to n due deliveries. It does not stop when ctx (the
// loop's) ends, so the claim's rows always come back to be run or given
// back, never left running until their lease ends; it is bounded instead.
func (tr *targetRunner) claim(ctx context.Context, n int, now time.Time) ([]record.Delivery, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	return tr.e.store.DeliveryClaim(cctx, &store.DeliveryClaimParams{
		Target: tr.cfg.Name, Limit: n, LeaseFor: tr.lease, Owner: tr.e.opts.Owner, Now: &now,
	})
}

// claimTimeout bounds one claim query.
const claimTimeout = 10 * time.Second

// claimBatch is the fewest free slots worth a claim while attempts are in
// flight: a quarter of the cap, at most 8.
func claimBatch(limit int) int {
	return min(8, max(1, limit/4))
}

// admit says how many deliveries the loop may claim now, and, when none,
// how long until a gate may open (0: until woken or the next poll).
func (tr *targetRunner) admit(now time.Time) (int, time.Duration) {
	tr.slotWait.Store(true)
	limit, inflight := tr.adaptive.Limit(), len(tr.slots)
	free := limit - inflight
	if free <= 0 {
		return 0, 0 // a finishing attempt wakes the loop
	}
	// While attempts are in flight, claim in batches: a claim for every
	// finished attempt would cost the store as much as recording it. An
	// idle target claims at once, so latency at low load is unchanged.
	if inflight > 0 && free < claimBatch(limit) {
		return 0, 0 // a finishing attempt wakes the loop
	}
	tr.slotWait.Store(false)
	if until := tr.paused(now); !until.IsZero() {
		return 0, until.Sub(now)
	}
	n, until := tr.breaker.Capacity()
	if n <= 0 {
		if until.IsZero() {
			return 0, 0 // half-open, every probe out: a probe's end wakes the loop
		}
		return 0, max(until.Sub(now), time.Millisecond)
	}
	// Claim only what can get a token within maxHold, so no claimed
	// delivery waits in memory for long.
	if tokens := tr.limiter.Available(now, maxHold); tokens < n {
		n = tokens
	}
	if n <= 0 {
		return 0, max(tr.limiter.Next(now), time.Millisecond)
	}
	return min(n, free), 0
}

// start runs one claimed delivery in its own goroutine: it takes a slot,
// and a rate limit token (waiting for it in memory, at most maxHold).
// When the delivery's result comes back with the next due delivery of the
// target claimed in the same commit (chain), the goroutine goes on with
// that one in the same slot.
func (tr *targetRunner) start(d *record.Delivery, now time.Time) {
	tr.slots <- struct{}{}
	tr.metrics.InFlight(1)
	tr.e.attempts.Add(1)
	tr.startHeld(d, now)
}

// holdForInsert takes a slot for a new delivery that an ingest may insert
// already claimed (store.InsertLease), when the target has no backlog
// (idle), a slot is free and the gates would let a claim through; false
// otherwise, and the delivery is inserted scheduled for the loop. Give
// the slot to startHeld, or back with unhold.
func (tr *targetRunner) holdForInsert(now time.Time) bool {
	if !tr.idle.Load() || !tr.canClaim(now) {
		return false
	}
	select {
	case tr.slots <- struct{}{}:
	default:
		return false
	}
	if len(tr.slots) > tr.adaptive.Limit() {
		<-tr.slots
		tr.freed()
		return false
	}
	tr.metrics.InFlight(1)
	tr.e.attempts.Add(1)
	return true
}

// unhold gives back a slot holdForInsert took for a delivery that was not
// inserted claimed.
func (tr *targetRunner) unhold() {
	<-tr.slots
	tr.metrics.InFlight(-1)
	tr.e.attempts.Done()
	tr.freed()
}

// startHeld is start for a delivery whose slot is already taken (start,
// holdForInsert).
func (tr *targetRunner) startHeld(d *record.Delivery, now time.Time) {
	e := tr.e
	hold, ok := tr.reserve(now)
	go func() {
		defer func() {
			<-tr.slots
			tr.metrics.InFlight(-1)
			e.attempts.Done()
			tr.freed()
		}()
		for {
			if !ok {
				// The rate went down (fewer tokens than admit counted on):
				// give the delivery back for when a token will be there.
				tr.postpone(d, now.Add(hold), telemetry.PostponeRateLimit, "")
				return
			}
			next := tr.run(d, hold)
			if len(next) == 0 {
				return
			}
			d = &next[0]
			for i := range next[1:] {
				// A store claims at most ClaimNext's Limit (1); any more
				// go back at once rather than wait for a slot.
				tr.postpone(&next[1+i], e.opts.Now(), postponeChain, "")
			}
			if e.closing.Load() {
				tr.postpone(d, e.opts.Now(), telemetry.PostponeShutdown, "")
				return
			}
			now = e.opts.Now().UTC()
			hold, ok = tr.reserve(now)
		}
	}()
}

// reserve takes a rate limit token for an attempt that may start at now,
// waiting at most maxHold.
func (tr *targetRunner) reserve(now time.Time) (time.Duration, bool) {
	hold, ok := tr.limiter.Reserve(now, maxHold)
	if h := testHookReserve.Load(); h != nil && ok && tr.limiter != nil {
		(*h)(tr.cfg.Name, now.Add(hold))
	}
	return hold, ok
}

// chain says what to claim with a result recorded at now, in the same
// commit: the next due delivery for the slot the attempt frees, when the
// gates would let the loop claim it (not closing, the cap not lowered
// below the attempts in flight, no pause, the breaker admitting, a rate
// limit token within maxHold); nil otherwise, and the loop claims.
func (tr *targetRunner) chain(now time.Time) *store.DeliveryClaimParams {
	if !tr.canClaim(now) {
		return nil
	}
	return &store.DeliveryClaimParams{Target: tr.cfg.Name, Limit: 1, LeaseFor: tr.lease, Owner: tr.e.opts.Owner}
}

// canClaim says whether the gates would let one more delivery be claimed
// at now (chain, holdForInsert).
func (tr *targetRunner) canClaim(now time.Time) bool {
	switch {
	case tr.e.closing.Load(), !tr.looping.Load(),
		len(tr.slots) > tr.adaptive.Limit(),
		!tr.paused(now).IsZero(),
		tr.limiter.Available(now, maxHold) < 1:
		return false
	}
	n, _ := tr.breaker.Capacity()
	return n > 0
}

// paused returns when the target's Retry-After pause ends, or zero when
// the target is not paused at now.
func (tr *targetRunner) paused(now time.Time) time.Time {
	u := tr.pausedUntil.Load()
	if u == 0 || now.UnixNano() >= u {
		return time.Time{}
	}
	return time.Unix(0, u).UTC()
}

// pause stops the target's attempts until until (it never shortens a
// pause already set). It logs when a running target pauses, not each time
// a pause is extended.
func (tr *targetRunner) pause(now, until time.Time) {
	u := until.UnixNano()
	for {
		cur := tr.pausedUntil.Load()
		if cur >= u {
			return
		}
		if tr.pausedUntil.CompareAndSwap(cur, u) {
			if cur <= now.UnixNano() {
				tr.e.log.Info("target paused: it asked to wait (Retry-After)", "target", tr.cfg.Name, "until", until.UTC())
			}
			return
		}
	}
}

// postponeLease counts a claim given back because its lease no longer
// covers a whole attempt.
const postponeLease = "lease"

// postponeChain counts a delivery claimed with a result beyond the one
// its slot goes on with (a store claims at most ClaimNext's Limit, 1).
const postponeChain = "chain"

// run makes one attempt of a claimed delivery and records its outcome.
// hold is how long to wait first for a rate limit token.
// It returns the delivery claimed with its result (see chain), if any.
func (tr *targetRunner) run(d *record.Delivery, hold time.Duration) (next []record.Delivery) {
	e := tr.e
	ctx := e.hardCtx
	if hold > 0 {
		t := time.NewTimer(hold)
		select {
		case <-ctx.Done():
			t.Stop()
			tr.postpone(d, e.opts.Now(), telemetry.PostponeShutdown, "")
			return
		case <-t.C:
		}
	}
	// The request goes out only while the lease still covers a whole
	// attempt: past that, the delivery may be claimed again (by this
	// engine or another) while the request is in flight. The reads
	// before it get only what the lease has to spare.
	spare := tr.spare(d)
	if spare <= 0 {
		tr.postpone(d, e.opts.Now(), postponeLease, "")
		return
	}
	rctx, cancel := context.WithTimeout(ctx, spare)
	defer cancel()
	if d.Message == nil {
		md, err := e.store.MessageGet(rctx, d.MessageID)
		if err != nil {
			if tr.outOfLease(ctx, rctx, d) {
				return
			}
			e.log.Warn("read message for delivery", "message_id", d.MessageID, "delivery_id", d.ID, "error", err)
			tr.release(d, e.opts.Now().Add(time.Second), "read message: "+err.Error())
			return
		}
		d.Message = &md.Message
	}
	sp := e.cur().step(d.Route, d.Step) // reload.go: a removed route's too
	if sp == nil && !record.IsOnComplete(d.Step) {
		// The config changed under a stored message: nothing can be sent.
		tr.fail(d, fmt.Errorf("route %q has no step %q in the current config", d.Route, d.Step))
		return
	}
	req, err := tr.requestOf(rctx, sp, d)
	if errors.Is(err, errReadLater) {
		// The step results a template reads could not be loaded: try again
		// soon, without counting an attempt.
		if tr.outOfLease(ctx, rctx, d) {
			return
		}
		tr.release(d, e.opts.Now().Add(time.Second), err.Error())
		return
	}
	if err != nil {
		// A request that cannot be built for this message will never be:
		// dead-letter it with the reason.
		tr.fail(d, err)
		return
	}
	// The gates again, right before the call: the target may have paused
	// or its breaker opened since the claim. Such a delivery is given
	// back without counting an attempt.
	now := e.opts.Now()
	if until := tr.paused(now); !until.IsZero() {
		// Due now, as its own schedule says: the pause holds this
		// process's claim loop until it ends; written into the store, it
		// would hold every replica and outlive a restart.
		tr.postpone(d, now, telemetry.PostponePaused, "postponed: the target asked to wait (Retry-After)")
		return
	}
	permit, err := tr.breaker.Allow()
	if err != nil {
		var oe *resilience.BreakerOpenError
		at := now
		if errors.As(err, &oe) {
			at = oe.Until
		}
		tr.postpone(d, at, telemetry.PostponeBreakerOpen, "postponed: circuit breaker open")
		return
	}
	if tr.spare(d) <= 0 {
		// The reads took what the lease had to spare.
		permit.Cancel()
		tr.postpone(d, e.opts.Now(), postponeLease, "")
		return
	}
	started := e.opts.Now()
	actx, span := e.startAttempt(messageContext(ctx, d.Message), d)
	res := tr.call(actx, d, req)
	dec := decide(tr.facts(d, res, e.opts.Now(), ctx.Err() != nil))
	if dec.Verdict == verdictPostpone {
		// Shutdown cut the attempt short: give the delivery back uncounted.
		e.endPostponed(span, d, telemetry.PostponeShutdown)
		permit.Cancel()
		tr.postpone(d, dec.At, telemetry.PostponeShutdown, "")
		return
	}
	e.endAttempt(span, d, d.Attempts+1, res, verdictStatus(dec.Verdict))
	tr.observe(permit, res)
	return tr.finish(d, res, started, dec, true)
}

// spare is how much of d's lease is left beyond one whole attempt (the
// target's total timeout), on the engine's clock. A claimed delivery's
// NextAttemptAt is when its lease ends.
func (tr *targetRunner) spare(d *record.Delivery) time.Duration {
	return d.NextAttemptAt.Sub(tr.e.opts.Now()) - tr.total
}

// outOfLease reports whether a read before the request failed because it
// ran past what the lease had to spare (rctx ended, ctx did not); then it
// gives the claim back uncounted, due in a second, as after any failed
// read: a slow store is not asked again at once.
func (tr *targetRunner) outOfLease(ctx, rctx context.Context, d *record.Delivery) bool {
	if ctx.Err() != nil || rctx.Err() == nil {
		return false
	}
	tr.e.log.Warn("store read took what the lease had to spare; delivery given back", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step)
	tr.postpone(d, tr.e.opts.Now().Add(time.Second), postponeLease, "")
	return true
}

// facts gathers what decide needs of an attempt of d that ended at now.
func (tr *targetRunner) facts(d *record.Delivery, res *target.Result, now time.Time, stopped bool) attemptFacts {
	since := d.ReplayedAt
	if since.IsZero() && d.Message != nil {
		since = d.Message.CreatedAt
	}
	if since.IsZero() {
		since = d.CreatedAt
	}
	return attemptFacts{
		Result:        res,
		N:             d.Attempts + 1 - d.AttemptsAtReplay,
		Since:         since,
		Now:           now.UTC(),
		Stopped:       stopped,
		Policy:        tr.policy,
		MaxRetryAfter: tr.maxRetryAfter,
		Jitter:        tr.e.opts.Jitter(),
	}
}

// fail records an attempt that could not be made for this message (no
// request can be built): a permanent failure.
func (tr *targetRunner) fail(d *record.Delivery, err error) {
	now := tr.e.opts.Now()
	res := &target.Result{Outcome: record.OutcomePermanent, Err: err}
	_, span := tr.e.startAttempt(messageContext(context.Background(), d.Message), d)
	dec := decide(tr.facts(d, res, now, false))
	tr.e.endAttempt(span, d, d.Attempts+1, res, verdictStatus(dec.Verdict))
	tr.finish(d, res, now, dec, false)
}

// observe feeds an attempt's outcome to the breaker, the adaptive
// concurrency limit and the pause. Only a transient failure counts against
// the breaker and the limit: a permanent one (a 4xx) shows the target is
// up. A 429 lowers the limit but counts neither way for the breaker: the
// target is up and asks to slow down, which the pause does. A 429 or 503
// with Retry-After pauses the whole target (both say the service, not
// this one request, needs the time).
func (tr *targetRunner) observe(permit resilience.Permit, res *target.Result) {
	transient := res.Outcome == record.OutcomeTransient
	tr.adaptive.Observe(!transient)
	switch {
	case transient && res.Status == http.StatusTooManyRequests:
		permit.Cancel()
	case transient:
		permit.Done(false)
	default:
		permit.Done(true)
	}
	if transient && res.RetryAfter > 0 && (res.Status == http.StatusTooManyRequests || res.Status == http.StatusServiceUnavailable) {
		now := tr.e.opts.Now()
		tr.pause(now, now.Add(capRetryAfter(res.RetryAfter, tr.maxRetryAfter)))
	}
}

// finish records the attempt and the delivery's next state as dec says;
// with chained, it claims the target's next due delivery in the same
// commit and returns it.
func (tr *targetRunner) finish(d *record.Delivery, res *target.Result, started time.Time, dec decision, chained bool) []record.Delivery {
	e := tr.e
	now := e.opts.Now().UTC()
	n := d.Attempts + 1
	errText := errorText(res)
	att := record.Attempt{N: n, StartedAt: started.UTC(), Duration: res.Duration, HTTPStatus: res.Status, Outcome: res.Outcome, Error: errText}
	lease := store.LeaseOf(d)
	resp := store.Response{Status: res.Status, Body: res.Body, Headers: res.Header}
	var p *store.DeliveryCompleteParams
	switch dec.Verdict {
	case verdictSucceeded:
		p = store.CompleteSucceeded(lease, att, resp)
	case verdictRetry:
		p = store.CompleteRetry(lease, att, resp, dec.At, dec.Reason)
	default:
		p = store.CompleteDead(lease, att, resp, dec.Reason)
	}
	// Kept with the delivery: a saga compensates a step that ends dead
	// after an attempt that may have reached the target.
	p.Unknown = res.Unknown && res.Outcome != record.OutcomeSuccess
	p.Now = &now
	if chained {
		p.ClaimNext = tr.chain(now)
	}
	route := d.Route
	sm := e.metrics.Step(route, d.Step, d.Target)
	var traceID string
	if d.Message != nil {
		traceID = telemetry.SampledTraceID(d.Message.TraceParent)
	}
	sm.AttemptTraced(res.Outcome, res.Duration, traceID)
	res2, err := tr.record(d, p)
	if err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			e.log.Warn("lease lost before the attempt was recorded", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step, "attempt", n)
			return nil
		}
		// The attempt is not recorded; the lease runs out and the delivery
		// is claimed again (at-least-once).
		e.log.Error("record attempt", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step, "attempt", n, "error", err)
		return nil
	}
	// The attributes are built only for a line that will be written: a
	// success logs at debug, and building them for every delivery cost an
	// allocation per attribute.
	logger := func() *slog.Logger {
		log := e.log.With("message_id", d.MessageID, "delivery_id", d.ID, "route", route, "step", d.Step, "target", d.Target, "attempt", n)
		if id := traceLogID(d.Message); id != "" {
			log = log.With("trace_id", id)
		}
		return log
	}
	switch dec.Verdict {
	case verdictSucceeded:
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			logger().Debug("delivered", "http_status", res.Status, "duration_ms", res.Duration.Milliseconds())
		}
		sm.Finished(record.DeliverySucceeded)
		if d.Message != nil && !d.Message.CreatedAt.IsZero() {
			sm.Delivered(now.Sub(d.Message.CreatedAt), traceID)
		}
	case verdictRetry:
		logger().Info("retry scheduled", "http_status", res.Status, "error", errText, "next_attempt_at", dec.At)
		if dec.At.Sub(now) < e.opts.PollInterval {
			tr.poke()
		}
	default:
		log := logger()
		log.Warn("dead letter", "http_status", res.Status, "reason", dec.Reason)
		if step, ok := record.Compensates(d.Step); ok {
			log.Error("compensation failed: a person must undo the step, or replay this dead letter", "undoes", step)
		}
		sm.Finished(record.DeliveryDead)
	}
	if p.ClaimNext != nil {
		tr.idle.Store(len(res2.Claimed) == 0)
	}
	for _, r := range res2.Ready {
		e.wake(r.Target)
	}
	e.notifyStatus(d.MessageID, res2.MessageStatus)
	return res2.Claimed
}

// postpone gives a claimed delivery back, due at at, without counting an
// attempt, and counts it under reason.
func (tr *targetRunner) postpone(d *record.Delivery, at time.Time, reason, text string) {
	tr.metrics.Postponed(reason)
	tr.release(d, at, text)
}

// record stores an attempt's result. While the store is unavailable (a
// database outage) it tries again, with backoff, until shortly before the
// delivery's lease ends: a result recorded late beats an attempt sent
// twice. It gives up at shutdown; the lease then brings the delivery back.
func (tr *targetRunner) record(d *record.Delivery, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	e := tr.e
	ctx := context.WithoutCancel(e.hardCtx)
	wait := 100 * time.Millisecond
	for {
		res, err := e.store.DeliveryComplete(ctx, p)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return res, err
		}
		// A claimed delivery's NextAttemptAt is when its lease ends.
		if d.NextAttemptAt.IsZero() || !e.opts.Now().Add(wait+time.Second).Before(d.NextAttemptAt) {
			return nil, err
		}
		e.log.Debug("record attempt: store unavailable; trying again", "delivery_id", d.ID, "retry_in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-e.hardCtx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// release gives a claimed delivery back without counting an attempt.
func (tr *targetRunner) release(d *record.Delivery, at time.Time, reason string) {
	e := tr.e
	now := e.opts.Now().UTC()
	at = at.UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := store.Postpone(store.LeaseOf(d), at, reason)
	p.Now = &now
	err := e.store.DeliveryPostpone(ctx, p)
	if err != nil && !errors.Is(err, store.ErrLeaseLost) {
		e.log.Warn("give delivery back", "delivery_id", d.ID, "error", err)
	}
}
