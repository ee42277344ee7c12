package engine

import (
	"context"
	"net/http"
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
	deadline := rp.cfg.Deadline.D()
	if deadline <= 0 {
		deadline = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	id := newID()
	n := len(rp.steps)
	results := make([]record.Delivery, n)
	durations := make([]time.Duration, n)
	done := make([]chan struct{}, n)
	index := make(map[string]int, n)
	for i, sp := range rp.steps {
		done[i] = make(chan struct{})
		index[sp.cfg.Name] = i
	}
	msg := &record.Message{ID: id, Route: rp.cfg.Name, Body: in.Body, Headers: in.Header, Query: in.Query}
	var wg sync.WaitGroup
	for i, sp := range rp.steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			d := &results[i]
			d.Step, d.Target, d.Required = sp.cfg.Name, sp.cfg.Target, sp.cfg.IsRequired()
			for _, a := range sp.cfg.After {
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
			req, err := requestFor(sp.target.endpoint, sp, env, msg, id+"."+sp.cfg.Name)
			if err != nil {
				d.Status = record.DeliveryDead
				d.LastError = "permanent failure: " + err.Error()
				return
			}
			durations[i] = e.callWithin(ctx, rp.cfg.Name, sp, req, d)
		}()
	}
	wg.Wait()
	status := record.DeriveMessageStatus(results)
	body := &MessageAnswer{ID: id, Status: status, Steps: make(map[string]StepAnswer, n)}
	for i, d := range results {
		sa := StepAnswer{Status: d.Status, HTTPStatus: d.ResponseStatus, Attempts: d.Attempts, DurationMS: durations[i].Milliseconds(), Error: d.LastError}
		if d.Status == record.DeliverySucceeded {
			sa.Error = ""
		}
		if len(d.ResponseBody) > 0 {
			sa.Body = record.JSONBody(d.ResponseBody)
		}
		body.Steps[d.Step] = sa
	}
	code := http.StatusOK
	switch status {
	case record.MessageSucceeded:
	case record.MessagePartiallySucceeded:
		code = http.StatusMultiStatus
	default:
		code = http.StatusBadGateway
	}
	ans := &Answer{HTTPStatus: code, Body: body}
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
func (e *Engine) callWithin(ctx context.Context, route string, sp *stepPlan, req *target.Request, d *record.Delivery) time.Duration {
	tr := sp.target
	start := time.Now()
	for {
		res := e.caller.Do(ctx, req)
		d.Attempts++
		e.metrics.ObserveAttempt(route, d.Step, d.Target, res.Outcome, res.Duration)
		d.ResponseStatus, d.ResponseBody, d.ResponseHeaders = res.Status, res.Body, res.Header
		switch res.Outcome {
		case record.OutcomeSuccess:
			d.Status = record.DeliverySucceeded
			return time.Since(start)
		case record.OutcomePermanent:
			d.Status = record.DeliveryDead
			d.LastError = "permanent failure: " + errorText(res)
			return time.Since(start)
		}
		d.LastError = errorText(res)
		now := time.Now()
		next, ok := tr.policy.Next(d.Attempts, start, now, res.RetryAfter, e.opts.Jitter())
		dl, hasDL := ctx.Deadline()
		if !ok || ctx.Err() != nil || hasDL && next.After(dl) {
			d.Status = record.DeliveryDead
			return time.Since(start)
		}
		// In-memory fan-out has no store to keep the wait in; it waits
		// here, bounded by the route's deadline.
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			d.Status = record.DeliveryDead
			return time.Since(start)
		case <-t.C:
		}
	}
}

func errorText(res *target.Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	return http.StatusText(res.Status)
}
