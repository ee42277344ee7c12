package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/route/template"
	"github.com/tandem-run/tandem/internal/store"
)

// newID returns a time-ordered unique id (UUIDv7).
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Ingest accepts one inbound request on a route and answers per the route's
// respond setting. Errors: ErrUnknownRoute, ErrShuttingDown (503),
// store.ErrIdempotencyConflict (422: the key was used with another body),
// ErrIdempotencyInFlight (409: the key's first request still waits for
// its answer), store.ErrUnavailable (503).
func (e *Engine) Ingest(ctx context.Context, route string, in *Inbound) (*Answer, error) {
	rp := e.cur().routes[route]
	if rp == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRoute, route)
	}
	if err := e.admitInbound(rp, in); err != nil {
		e.metrics.ObserveIngest(route, http.StatusUnprocessableEntity, 0)
		return nil, err
	}
	if err := e.checkCallback(rp, in); err != nil {
		return nil, err
	}
	if !e.enter() {
		return nil, ErrShuttingDown
	}
	defer e.inflight.Done()
	start := time.Now()
	ctx, span := e.startIngest(ctx, rp, in)
	var ans *Answer
	var err error
	if rp.cfg.IsDurable() {
		ans, err = e.ingestDurable(ctx, rp, in)
	} else {
		ans, err = e.fanOutCached(ctx, rp, in) // cache.go
	}
	code := IngestCode(err)
	if err == nil {
		code = ans.HTTPStatus
	}
	if code != 0 {
		e.metrics.Route(route).AnsweredTraced(code, time.Since(start), spanTraceID(ctx))
	}
	endIngest(span, rp, ans, code, err)
	return ans, err
}

// IngestCode is the HTTP status code of an Ingest error that Ingest
// counts in tandem_route_answers_total itself (422, 409, 503); 0 for nil
// and for every other error, which the caller counts.
func IngestCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, store.ErrIdempotencyConflict):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrIdempotencyInFlight):
		return http.StatusConflict
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable
	}
	return 0
}

func (e *Engine) ingestDurable(ctx context.Context, rp *routePlan, in *Inbound) (*Answer, error) {
	now := e.opts.Now().UTC()
	msg := record.Message{
		ID:             newID(),
		Route:          rp.cfg.Name,
		IdempotencyKey: in.IdempotencyKey,
		BodyHash:       bodyHash(in.Body),
		Body:           in.Body,
		Headers:        in.Header,
		Query:          in.Query,
	}
	e.keepTraceContext(ctx, &msg)
	ds := append(rp.deliveries(now), rp.onCompleteDeliveries(in)...)
	waiting := rp.cfg.Respond.Mode != "" && rp.cfg.Respond.Mode != config.RespondAccepted
	var (
		w       *waiter
		changed <-chan struct{}
	)
	if waiting {
		// Subscribe before the insert so no completion can slip between.
		w, changed = e.subscribe(msg.ID)
		defer e.unsubscribe(msg.ID)
	}
	lease := e.holdForInsert(now, ds)
	res, err := e.store.MessageInsert(ctx, &store.MessageInsertParams{Message: msg, Deliveries: ds, Now: &now, Lease: lease.params()})
	if err != nil || res.Existing {
		lease.unhold()
	} else {
		lease.start(res.Leased, now)
	}
	if err != nil {
		if errors.Is(err, store.ErrIdempotencyConflict) {
			return nil, err
		}
		return nil, fmt.Errorf("accept message: %w", err)
	}
	id := res.Message.ID
	location := "/v1/messages/" + id
	if res.Existing {
		e.log.Debug("idempotent repeat", "route", rp.cfg.Name, "message_id", id)
		if waiting {
			ans, err := e.repeatDurable(ctx, rp, id)
			if err != nil {
				return nil, err
			}
			ans.Location = location
			return ans, nil
		}
	} else {
		e.metrics.MessageAccepted(rp.cfg.Name)
		for _, d := range ds {
			if d.Status == record.DeliveryScheduled && !lease.holds(d.ID) {
				e.wake(d.Target)
			}
		}
	}
	if !waiting {
		return &Answer{
			HTTPStatus: http.StatusAccepted,
			Location:   location,
			Body:       &MessageAnswer{ID: id, Status: res.Message.Status},
			Repeat:     res.Existing,
		}, nil
	}
	ans, err := e.await(ctx, rp, id, w, changed, !res.Existing)
	if err != nil {
		return nil, err
	}
	ans.Location = location
	return ans, nil
}

// insertLease is the slots an ingest holds for the new deliveries it
// inserts already claimed: each is started as soon as the insert
// commits, with no claim, no wake-up and no read of its message. Only
// targets with no backlog take part (targetRunner.holdForInsert), so a
// new delivery does not pass older ones. A nil *insertLease holds none.
type insertLease struct {
	p    store.InsertLease
	held map[string]*targetRunner // by delivery id
	used map[string]bool
}

// holdForInsert holds a slot for each of ds that is due at now and whose
// target can start it at once.
func (e *Engine) holdForInsert(now time.Time, ds []record.Delivery) *insertLease {
	var l *insertLease
	g := e.cur()
	for _, d := range ds {
		if d.Status != record.DeliveryScheduled || d.NextAttemptAt.After(now) {
			continue
		}
		tr := g.targets[d.Target]
		if tr == nil || !tr.holdForInsert(now) {
			continue
		}
		if l == nil {
			l = &insertLease{p: store.InsertLease{Owner: e.opts.Owner}, held: map[string]*targetRunner{}}
		}
		l.held[d.ID] = tr
		l.p.IDs = append(l.p.IDs, d.ID)
		// One length for the message's leases: the longest its targets
		// need (a longer lease only delays the recovery after a crash).
		l.p.LeaseFor = max(l.p.LeaseFor, tr.lease)
	}
	return l
}

func (l *insertLease) params() *store.InsertLease {
	if l == nil {
		return nil
	}
	return &l.p
}

// holds says whether the delivery id was inserted claimed and started.
func (l *insertLease) holds(id string) bool { return l != nil && l.used[id] }

// start runs the deliveries the insert leased in the slots held for them,
// and gives back the slots of any it did not lease.
func (l *insertLease) start(leased []record.Delivery, now time.Time) {
	if l == nil {
		return
	}
	l.used = make(map[string]bool, len(leased))
	for i := range leased {
		d := &leased[i]
		if tr := l.held[d.ID]; tr != nil {
			l.used[d.ID] = true
			delete(l.held, d.ID)
			tr.startHeld(d, now)
		}
	}
	l.unhold()
}

// unhold gives back every slot still held (the insert failed, was a
// repeat, or leased fewer).
func (l *insertLease) unhold() {
	if l == nil {
		return
	}
	for id, tr := range l.held {
		delete(l.held, id)
		tr.unhold()
	}
}

// deliveries builds a new message's deliveries, one per step in plan
// order, then, in a saga, one per compensation. It is the one place both
// durable and durable: false routes get them from. A step with after
// dependencies starts waiting; the others are due at now. A saga's
// compensations are committed with the message: each waits until
// record.Resolve decides it runs or is cancelled.
func (rp *routePlan) deliveries(now time.Time) []record.Delivery {
	ds := make([]record.Delivery, 0, len(rp.steps)+len(rp.plan.Compensations))
	for _, sp := range rp.steps {
		d := record.Delivery{
			ID:       newID(),
			Route:    rp.cfg.Name,
			Step:     sp.step.Name,
			Target:   sp.step.Target,
			After:    sp.step.After,
			Required: sp.step.Required,
			// A saga undoes a step that may have happened, unless the
			// step says its target can be trusted not to have acted.
			NoCompensateUnknown: sp.step.NoCompensateUnknown,
			Status:              record.DeliveryScheduled,
			NextAttemptAt:       now,
		}
		if len(sp.step.After) > 0 {
			d.Status = record.DeliveryWaiting
			d.NextAttemptAt = time.Time{}
		}
		ds = append(ds, d)
	}
	for _, cs := range rp.plan.Compensations {
		ds = append(ds, record.Delivery{
			ID:     newID(),
			Route:  rp.cfg.Name,
			Step:   cs.Name,
			Target: cs.Target,
			Status: record.DeliveryWaiting,
		})
	}
	return ds
}

// await waits until the route's respond point is reached for message id,
// or the route's deadline passes (then 202 with the current status).
//
// A fresh message (just inserted) has no final delivery yet, so await
// does not read it at once. A respond: all caller is told the message's
// status by each local completion, and reads the message (deliveries,
// attempts) only once that status is terminal: one read per request, not
// one per finished delivery. A wake-up that does not say (a replay) and
// the poll (another replica may be delivering) read it anyway.
func (e *Engine) await(ctx context.Context, rp *routePlan, id string, w *waiter, changed <-chan struct{}, fresh bool) (*Answer, error) {
	timer := time.NewTimer(routeDeadline(rp))
	defer timer.Stop()
	poll := time.NewTicker(e.opts.WaitPoll)
	defer poll.Stop()
	all := rp.cfg.Respond.Mode == config.RespondAll
	var md *record.MessageDetail
	read := func() error {
		var err error
		md, err = e.store.MessageGet(context.WithoutCancel(ctx), id)
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		return nil
	}
	// late answers where the message is now, reading it if need be.
	late := func() (*Answer, error) {
		if md == nil {
			if err := read(); err != nil {
				return nil, err
			}
		}
		ans, _ := e.answerFor(rp, md, true)
		return ans, nil
	}
	stale := !fresh
	for {
		if stale {
			if err := read(); err != nil {
				return nil, err
			}
			if ans, done := e.answerFor(rp, md, false); done {
				return ans, nil
			}
			stale = false
		}
		select {
		case <-changed:
			var status record.MessageStatus
			changed, status = e.next(w)
			// A status that is not terminal cannot complete a respond:
			// all answer; anything else, read.
			stale = !all || status == "" || status.Terminal()
			if !stale {
				md = nil // what was read is older than this change
			}
		case <-poll.C:
			stale = true
		case <-timer.C:
			md = nil
			return late()
		case <-e.closingCh:
			// Shutting down: the message is durable; answer where it is.
			md = nil
			return late()
		case <-ctx.Done():
			// The caller left; the message is durable and goes on.
			md = nil
			return late()
		}
	}
}

// answerFor builds the waiting caller's answer from the message, and says
// whether the respond point is reached. With late set, it answers 202 when
// it is not. A route's response template shapes an answer that is reached.
func (e *Engine) answerFor(rp *routePlan, md *record.MessageDetail, late bool) (*Answer, bool) {
	want := map[string]bool{}
	all := rp.cfg.Respond.Mode == config.RespondAll
	for _, s := range rp.cfg.Respond.Steps {
		want[s] = true
	}
	body := &MessageAnswer{ID: md.Message.ID, Status: md.Message.Status, Steps: map[string]StepAnswer{}}
	done := true
	ok := true
	for _, d := range md.Deliveries {
		if !all && !want[d.Step] {
			continue
		}
		if _, isComp := record.Compensates(d.Step); isComp && d.Status == record.DeliveryCancelled || record.IsOnComplete(d.Step) {
			continue // a compensation that was not needed is not news; a summary is no step
		}
		var took time.Duration
		for _, a := range md.Attempts[d.ID] {
			took += a.Duration
		}
		body.Steps[d.Step] = stepAnswer(d, took)
		if !d.Status.Final() {
			done = false
		} else if d.Status != record.DeliverySucceeded {
			ok = false
		}
	}
	if all {
		done = md.Message.Status.Terminal()
	}
	if !done {
		if !late {
			return nil, false
		}
		return &Answer{HTTPStatus: http.StatusAccepted, Body: body}, true
	}
	code := http.StatusOK
	if all {
		code = mergedCode(md.Message.Status)
	} else if !ok {
		code = http.StatusBadGateway
	}
	ans := &Answer{HTTPStatus: code, Body: body}
	e.shape(rp, ans, &md.Message, md.Deliveries)
	return ans, true
}

// shape applies the route's response template to a reached answer. If the
// template fails for this message, the caller gets the standard answer
// and the failure is logged: the message itself is safe either way.
func (e *Engine) shape(rp *routePlan, ans *Answer, msg *record.Message, ds []record.Delivery) {
	resp := rp.plan.Response
	if resp == nil {
		return
	}
	env := template.NewEnv(messageInput(msg, ans.Body.ID, resultsOf(ds, resp.Reads), e.opts.Now()))
	code, raw, err := resp.Render(env)
	if err != nil {
		e.log.Warn("response template failed; answering with the standard answer", "route", rp.cfg.Name, "message_id", ans.Body.ID, "error", err)
		return
	}
	if code != 0 {
		ans.HTTPStatus = code
	}
	if raw != nil {
		ans.Raw = raw
	}
}

// stepAnswer is one step's part of an answer; took is the time its
// attempts took.
func stepAnswer(d record.Delivery, took time.Duration) StepAnswer {
	sa := StepAnswer{Status: d.Status, HTTPStatus: d.ResponseStatus, Attempts: d.Attempts, Error: d.LastError, DurationMS: took.Milliseconds()}
	if d.Status == record.DeliverySucceeded && !strings.HasPrefix(d.LastError, "contract: ") {
		sa.Error = "" // but a broken contract stays flagged
	}
	if len(d.ResponseBody) > 0 {
		sa.Body = record.JSONBody(d.ResponseBody)
	}
	return sa
}

// mergedCode is the status code of a respond: all answer: 200 when every
// required step succeeded, 207 when some did, 502 otherwise.
func mergedCode(status record.MessageStatus) int {
	switch status {
	case record.MessageSucceeded:
		return http.StatusOK
	case record.MessagePartiallySucceeded:
		return http.StatusMultiStatus
	}
	return http.StatusBadGateway
}
