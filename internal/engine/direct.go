package engine

import (
	"context"
	"sync"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/route/template"
	"github.com/tandem-run/tandem/internal/target"
)

// fanOut runs a durable: false route in memory: steps whose dependencies
// succeeded run in parallel, each retried inside the route's deadline, and
// the caller gets the merged answer. Nothing touches the store.
func (e *Engine) fanOut(ctx context.Context, rp *routePlan, in *Inbound) (*Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, routeDeadline(rp))
	defer cancel()
	id := newID()
	n := len(rp.steps)
	// No saga runs in memory, so there are no compensations: one delivery
	// per step, in step order.
	start := time.Now()
	results := rp.deliveries(start)[:n]
	durations := make([]time.Duration, n)
	done := make([]chan struct{}, n)
	index := make(map[string]int, n)
	for i, sp := range rp.steps {
		done[i] = make(chan struct{})
		index[sp.step.Name] = i
		results[i].MessageID = id
	}
	msg := &record.Message{ID: id, Route: rp.cfg.Name, Body: in.Body, Headers: in.Header, Query: in.Query}
	var wg sync.WaitGroup
	for i, sp := range rp.steps {
		wg.Add(1)
		step := func() {
			defer wg.Done()
			defer close(done[i])
			d := &results[i]
			for _, a := range d.After {
				j := index[a]
				<-done[j]
				if results[j].Status != record.DeliverySucceeded {
					d.Status = record.DeliverySkipped
					d.LastError = "step " + a + " did not succeed"
					return
				}
			}
			// Every step a template reads is upstream of this one, so it is
			// done (its done channel closed before ours could be reached).
			env := template.NewEnv(messageInput(msg, id, memoryResults(results, index, sp.step.Reads), e.opts.Now()))
			req, err := requestFor(sp.target.endpoint, sp, env, msg, id+"."+sp.step.Name)
			if err != nil {
				// Never sent: decided as a permanent failure.
				dec := decide(attemptFacts{Result: &target.Result{Outcome: record.OutcomePermanent, Err: err}})
				d.Status, d.LastError = record.DeliveryDead, dec.Reason
				return
			}
			durations[i] = e.callWithin(ctx, rp.cfg.Name, sp, req, d)
		}
		if i == n-1 {
			// The last step runs in the caller's goroutine, whose stack has
			// grown already: one goroutine, and its stack growth, fewer per
			// fan-out (measured in fanout's BenchmarkLibraryVsStdlib). The
			// steps before it are running, so one it waits for finishes.
			step()
			continue
		}
		go step()
	}
	wg.Wait()
	e.countFanOut(ctx, rp.cfg.Name, results, start)
	status := record.DeriveMessageStatus(results)
	body := &MessageAnswer{ID: id, Status: status, Steps: make(map[string]StepAnswer, n)}
	for i, d := range results {
		body.Steps[d.Step] = stepAnswer(d, durations[i])
	}
	code := mergedCode(status)
	ans := &Answer{HTTPStatus: code, Body: body, fresh: freshnessOf(results)} // cache.go
	e.shape(rp, ans, msg, results)
	return ans, nil
}

// memoryResults picks the named steps' answers out of an in-memory
// fan-out's results ("*": every step).
func memoryResults(results []record.Delivery, index map[string]int, names []string) map[string]template.Result {
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]template.Result, len(names))
	for _, n := range names {
		if n == "*" {
			return resultsOf(results, names)
		}
		if i, ok := index[n]; ok {
			d := results[i]
			out[n] = template.Result{Status: d.ResponseStatus, Body: d.ResponseBody, Header: d.ResponseHeaders}
		}
	}
	return out
}

// callWithin tries one step until it succeeds, fails for good, runs out of
// attempts, or the context ends; it fills d and returns the time spent.
// decide, shared with the durable worker, says what each outcome means.
// Every attempt passes the target's gates first (enterDirect, in
// directgate.go): the same pause, concurrency cap, rate limit and breaker
// as durable delivery, and its outcome feeds them back.
func (e *Engine) callWithin(ctx context.Context, route string, sp *stepPlan, req *target.Request, d *record.Delivery) time.Duration {
	tr := sp.target
	start := time.Now()
	for {
		pass, err := tr.enterDirect(ctx)
		if err != nil {
			// Refused by the target's own policies: never sent, and the
			// step fails like any other in the merged answer.
			d.Status, d.LastError = record.DeliveryDead, err.Error()
			if d.Attempts > 0 {
				d.LastError = atDeadline(d.Attempts, err.Error())
			}
			return time.Since(start)
		}
		actx, span := e.startAttempt(ctx, d)
		res := e.caller.Do(actx, req)
		if ctx.Err() != nil && res.Outcome != record.OutcomeSuccess {
			// The caller left or the deadline cut the attempt: it says
			// nothing about the target's health.
			pass.cancel()
		} else {
			pass.done(res)
		}
		d.Attempts++
		e.metrics.Step(route, d.Step, d.Target).AttemptTraced(res.Outcome, res.Duration, spanTraceID(actx))
		d.ResponseStatus, d.ResponseBody, d.ResponseHeaders = res.Status, res.Body, res.Header
		now := time.Now()
		deadline, _ := ctx.Deadline()
		if ctx.Err() != nil {
			deadline = now // the caller left, or the deadline passed
		}
		dec := decide(attemptFacts{
			Result: res, N: d.Attempts, Since: start, Now: now, Deadline: deadline,
			Policy: tr.policy, MaxRetryAfter: tr.maxRetryAfter, Jitter: e.opts.Jitter(),
		})
		e.endAttempt(span, d, d.Attempts, res, verdictStatus(dec.Verdict))
		switch dec.Verdict {
		case verdictSucceeded:
			d.Status = record.DeliverySucceeded
			d.LastError = res.Violation // a broken contract is flagged, not failed
			return time.Since(start)
		case verdictRetry:
		default:
			d.Status, d.LastError = record.DeliveryDead, dec.Reason
			return time.Since(start)
		}
		d.LastError = dec.Reason
		// In-memory fan-out has no store to keep the wait in; it waits
		// here, bounded by the route's deadline.
		t := time.NewTimer(dec.At.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			d.Status, d.LastError = record.DeliveryDead, atDeadline(d.Attempts, dec.Reason)
			return time.Since(start)
		case <-t.C:
		}
	}
}

// countFanOut counts the final status of each step of an in-memory
// fan-out, and the time to each success, as the durable worker does.
func (e *Engine) countFanOut(ctx context.Context, route string, results []record.Delivery, start time.Time) {
	traceID := spanTraceID(ctx)
	took := time.Since(start)
	for i := range results {
		d := &results[i]
		sm := e.metrics.Step(route, d.Step, d.Target)
		sm.Finished(d.Status)
		if d.Status == record.DeliverySucceeded {
			sm.Delivered(took, traceID)
		}
	}
}
