package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/target"
)

// targetRunner owns one target: its claim loop and its attempts in flight.
type targetRunner struct {
	e        *Engine
	cfg      *config.Target
	endpoint *target.Endpoint
	policy   resilience.Policy
	lease    time.Duration
	limit    int

	wakeCh chan struct{} // buffered 1: work may be due
	slots  chan struct{} // one token per attempt in flight
}

func newTargetRunner(e *Engine, tc *config.Target) *targetRunner {
	conc := tc.Concurrency
	if conc <= 0 {
		conc = 32
	}
	total := tc.Timeout.Total.D()
	if total <= 0 {
		total = 10 * time.Second
	}
	return &targetRunner{
		e:        e,
		cfg:      tc,
		endpoint: Endpoint(tc),
		policy: resilience.Policy{
			MaxAttempts: tc.Retry.MaxAttempts,
			Initial:     tc.Retry.Initial.D(),
			Max:         tc.Retry.Max.D(),
			Multiplier:  tc.Retry.Multiplier,
			MaxAge:      tc.Retry.MaxAge.D(),
		},
		lease:  total + leaseMargin,
		limit:  conc,
		wakeCh: make(chan struct{}, 1),
		slots:  make(chan struct{}, conc),
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

// loop claims due deliveries while it has free slots, and otherwise waits
// for a wake-up, a freed slot, or the poll interval.
func (tr *targetRunner) loop(ctx context.Context) {
	e := tr.e
	poll := time.NewTimer(e.opts.PollInterval)
	defer poll.Stop()
	backoff := time.Duration(0)
	for {
		free := tr.limit - len(tr.slots)
		got := 0
		if free > 0 {
			now := e.opts.Now().UTC()
			ds, err := e.store.DeliveryClaim(ctx, &store.DeliveryClaimParams{
				Target: tr.cfg.Name, Limit: free, LeaseFor: tr.lease, Owner: e.opts.Owner, Now: &now,
			})
			switch {
			case ctx.Err() != nil:
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
			for i := range ds {
				tr.slots <- struct{}{}
				e.attempts.Add(1)
				go tr.run(&ds[i])
			}
		}
		if got > 0 && got == free {
			// More may be due; claim again once a slot frees.
			continue
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(e.opts.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-tr.wakeCh:
		case <-poll.C:
		}
	}
}

// run makes one attempt of a claimed delivery and records its outcome.
func (tr *targetRunner) run(d *record.Delivery) {
	e := tr.e
	defer e.attempts.Done()
	defer func() {
		<-tr.slots
		tr.poke()
	}()
	ctx := e.hardCtx
	msg := d.Message
	if msg == nil {
		md, err := e.store.MessageGet(ctx, d.MessageID)
		if err != nil {
			e.log.Warn("read message for delivery", "message_id", d.MessageID, "delivery_id", d.ID, "error", err)
			tr.release(d, e.opts.Now().Add(time.Second), "read message: "+err.Error())
			return
		}
		msg = &md.Message
	}
	rp := e.routes[d.Route]
	var sp *stepPlan
	if rp != nil {
		sp = rp.byName[d.Step]
	}
	if sp == nil {
		// The config changed under a stored message: nothing can be sent.
		tr.finish(d, &target.Result{Outcome: record.OutcomePermanent,
			Err: fmt.Errorf("route %q has no step %q in the current config", d.Route, d.Step)}, e.opts.Now())
		return
	}
	if d.Message == nil {
		d.Message = msg
	}
	req, err := tr.buildRequest(ctx, sp, d)
	if err != nil {
		// A request that cannot be built for this message will never be:
		// dead-letter it with the reason.
		tr.finish(d, &target.Result{Outcome: record.OutcomePermanent, Err: err}, e.opts.Now())
		return
	}
	started := e.opts.Now()
	res := e.caller.Do(ctx, req)
	if ctx.Err() != nil && res.Outcome != record.OutcomeSuccess {
		// Shutdown cut the attempt short: give the delivery back uncounted.
		tr.release(d, e.opts.Now(), "")
		return
	}
	tr.finish(d, res, started)
}

// finish records the attempt and decides the delivery's next state.
func (tr *targetRunner) finish(d *record.Delivery, res *target.Result, started time.Time) {
	e := tr.e
	now := e.opts.Now().UTC()
	n := d.Attempts + 1
	att := record.Attempt{DeliveryID: d.ID, N: n, StartedAt: started.UTC(), Duration: res.Duration, HTTPStatus: res.Status, Outcome: res.Outcome}
	p := &store.DeliveryCompleteParams{
		DeliveryID:      d.ID,
		Owner:           e.opts.Owner,
		ResponseStatus:  res.Status,
		ResponseBody:    res.Body,
		ResponseHeaders: res.Header,
		Now:             &now,
	}
	errText := ""
	if res.Err != nil {
		errText = res.Err.Error()
	} else if res.Outcome != record.OutcomeSuccess {
		errText = fmt.Sprintf("status %d", res.Status)
	}
	att.Error = errText
	switch res.Outcome {
	case record.OutcomeSuccess:
		p.Status = record.DeliverySucceeded
	case record.OutcomePermanent:
		p.Status = record.DeliveryDead
		p.LastError = "permanent failure: " + errText
	default:
		since := d.ReplayedAt
		if since.IsZero() && d.Message != nil {
			since = d.Message.CreatedAt
		}
		if since.IsZero() {
			since = d.CreatedAt
		}
		next, ok := tr.policy.Next(n-d.AttemptsAtReplay, since, now, res.RetryAfter, e.opts.Jitter())
		if ok {
			p.Status = record.DeliveryScheduled
			p.NextAttemptAt = next
			p.LastError = errText
		} else {
			p.Status = record.DeliveryDead
			p.LastError = fmt.Sprintf("gave up after %d attempts: %s", n-d.AttemptsAtReplay, errText)
		}
	}
	p.Attempt = att
	route := d.Route
	e.metrics.ObserveAttempt(route, d.Step, d.Target, res.Outcome, res.Duration)
	res2, err := e.store.DeliveryComplete(context.WithoutCancel(e.hardCtx), p)
	if err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			e.log.Warn("lease lost before the attempt was recorded", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step, "attempt", n)
			return
		}
		// The attempt is not recorded; the lease runs out and the delivery
		// is claimed again (at-least-once).
		e.log.Error("record attempt", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step, "attempt", n, "error", err)
		return
	}
	log := e.log.With("message_id", d.MessageID, "delivery_id", d.ID, "route", route, "step", d.Step, "target", d.Target, "attempt", n)
	switch p.Status {
	case record.DeliverySucceeded:
		log.Debug("delivered", "http_status", res.Status, "duration_ms", res.Duration.Milliseconds())
		e.metrics.DeliveryFinished(route, d.Step, d.Target, string(record.DeliverySucceeded))
	case record.DeliveryDead:
		log.Warn("dead letter", "http_status", res.Status, "reason", p.LastError)
		e.metrics.DeliveryFinished(route, d.Step, d.Target, string(record.DeliveryDead))
	default:
		log.Info("retry scheduled", "http_status", res.Status, "error", errText, "next_attempt_at", p.NextAttemptAt)
		if wait := time.Until(p.NextAttemptAt); wait < e.opts.PollInterval {
			tr.poke()
		}
	}
	for _, r := range res2.Ready {
		e.wake(r.Target)
	}
	e.notify(d.MessageID)
}

// release gives a claimed delivery back without counting an attempt.
func (tr *targetRunner) release(d *record.Delivery, at time.Time, reason string) {
	e := tr.e
	now := e.opts.Now().UTC()
	at = at.UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.store.DeliveryPostpone(ctx, &store.DeliveryPostponeParams{DeliveryID: d.ID, Owner: e.opts.Owner, NextAttemptAt: at, Reason: reason, Now: &now})
	if err != nil && !errors.Is(err, store.ErrLeaseLost) {
		e.log.Warn("give delivery back", "delivery_id", d.ID, "error", err)
	}
}
