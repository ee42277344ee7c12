package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/target"
)

// On_complete kinds: the step of each delivery is record.OnCompleteStep(kind).
const (
	OnCompleteTarget   = "target"   // route on_complete.target
	OnCompletePublish  = "publish"  // route on_complete.publish
	OnCompleteCallback = "callback" // the request's Callback-Url
)

// PublishTarget is the target name of the deliveries that publish
// summaries through source name; CallbackTarget that of a route's
// Callback-Url deliveries. Neither can clash with a configured target
// (names there hold no ':').
func PublishTarget(source string) string { return "publish:" + source }

// CallbackTarget is the target of route's Callback-Url deliveries.
func CallbackTarget(route string) string { return "callback:" + route }

// Publisher publishes a summary to a broker and returns once the broker
// confirmed it (a JetStream publish ack, an AMQP publisher confirm). An
// error means it may not be stored: the delivery is retried, so a publish
// carries a message id the broker or subscriber can deduplicate on.
// internal/source.Publishers is one.
type Publisher interface {
	Publish(ctx context.Context, p *PublishParams) error
}

// PublishParams is one summary to publish.
type PublishParams struct {
	// Source names the configured source whose broker takes it.
	Source string
	// Subject (nats), or Exchange and RoutingKey (amqp).
	Subject, Exchange, RoutingKey string
	// MsgID is the same for every attempt of one delivery: Nats-Msg-Id
	// (JetStream drops a repeat within its duplicate window), AMQP
	// message-id.
	MsgID  string
	Body   []byte
	Header http.Header
}

// Summary is the body an on_complete delivery sends: the message's final
// state, read when the delivery is sent. Its id, status and steps are those
// of a route's answer (MessageAnswer), plus the route and creation time.
type Summary struct {
	MessageID string               `json:"id"`
	Route     string               `json:"route"`
	Status    record.MessageStatus `json:"status"`
	CreatedAt time.Time            `json:"created_at"`
	// Steps are the message's steps (and compensations that ran), by name,
	// with their status and answers; on_complete deliveries are not steps.
	Steps map[string]StepAnswer `json:"steps"`
}

// onCompleteState is what the engine keeps for on_complete deliveries.
type onCompleteState struct {
	callbacks *callbackPolicy
	caller    *target.Caller // for callbacks: refuses internal addresses
}

// setupOnComplete adds to g the runners of the targets on_complete
// deliveries go to that are not configured targets: one per source
// published to, and one per durable route when callbacks are allowed. A
// reload keeps old's runners of those it still has.
func (e *Engine) setupOnComplete(g *generation, old *generation) error {
	cfg := g.cfg
	g.oc = &onCompleteState{callbacks: newCallbackPolicy(cfg.Server.CallbackHosts)}
	builtin := func(name string, send func(context.Context, *record.Delivery, *target.Request) *target.Result) {
		if g.targets[name] != nil {
			return
		}
		if old != nil {
			if tr := old.targets[name]; tr != nil && tr.send != nil {
				g.targets[name] = tr
				return
			}
		}
		tr := newTargetRunner(e, builtinTarget(name))
		tr.send = send
		g.targets[name] = tr
	}
	for _, rc := range cfg.Routes {
		oc := rc.OnComplete
		if oc == nil {
			continue
		}
		if oc.Target != "" && g.targets[oc.Target] == nil {
			return fmt.Errorf("engine: route %s on_complete: unknown target %q", rc.Name, oc.Target)
		}
		if pb := oc.Publish; pb != nil {
			if e.opts.Publisher == nil {
				return fmt.Errorf("engine: route %s publishes its outcome to %s, but no publisher was given", rc.Name, pb.Source)
			}
			builtin(PublishTarget(pb.Source), e.publishSend(pb.Source))
		}
	}
	if g.oc.callbacks.enabled() {
		g.oc.caller = target.NewCaller(target.CallerOptions{
			DialControl: dialGuard,
			// No proxy: the guard must see the address really dialled.
			Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		})
		for _, rc := range cfg.Routes {
			if rc.IsDurable() {
				builtin(CallbackTarget(rc.Name), e.callbackSend)
			}
		}
	}
	return nil
}

// builtinTarget is the policy of a target tandem makes itself: retried
// for a day (a broker or a callback may be away for a while), no breaker.
func builtinTarget(name string) *config.Target {
	return &config.Target{
		Name:            name,
		Method:          http.MethodPost,
		Timeout:         config.Timeout{Connect: config.DefaultConnectTimeout, Total: config.DefaultTotalTimeout},
		Retry:           config.Retry{MaxAttempts: 100, Initial: config.Duration(100 * time.Millisecond), Max: config.Duration(time.Minute), Multiplier: 2, MaxAge: config.DefaultRetryMaxAge},
		Breaker:         config.Breaker{Disabled: true},
		Concurrency:     config.DefaultConcurrency,
		MaxResponseBody: config.DefaultMaxResponseBody,
	}
}

// checkCallback refuses a Callback-Url the policy does not allow, and one
// on a route that cannot call back (durable: false).
func (e *Engine) checkCallback(rp *routePlan, in *Inbound) error {
	raw := in.Header.Get(CallbackHeader)
	if raw == "" {
		return nil
	}
	if !rp.cfg.IsDurable() {
		return &CallbackError{URL: raw, Reason: "route " + rp.cfg.Name + " is durable: false; a callback needs a durable route"}
	}
	_, _, err := e.cur().oc.callbacks.check(raw)
	return err
}

// onCompleteDeliveries are a new message's on_complete deliveries: each
// waits until record.Resolve finds every other delivery final.
func (rp *routePlan) onCompleteDeliveries(in *Inbound) []record.Delivery {
	var ds []record.Delivery
	add := func(kind, tgt string) {
		ds = append(ds, record.Delivery{ID: newID(), Route: rp.cfg.Name, Step: record.OnCompleteStep(kind), Target: tgt, Status: record.DeliveryWaiting})
	}
	if oc := rp.cfg.OnComplete; oc != nil {
		if oc.Target != "" {
			add(OnCompleteTarget, oc.Target)
		}
		if oc.Publish != nil {
			add(OnCompletePublish, PublishTarget(oc.Publish.Source))
		}
	}
	if in != nil && in.Header.Get(CallbackHeader) != "" {
		add(OnCompleteCallback, CallbackTarget(rp.cfg.Name))
	}
	return ds
}

// requestOf builds the request of a claimed delivery: its step's, or an
// on_complete delivery's summary.
func (tr *targetRunner) requestOf(ctx context.Context, sp *stepPlan, d *record.Delivery) (*target.Request, error) {
	if !record.IsOnComplete(d.Step) {
		return tr.buildRequest(ctx, sp, d)
	}
	md, err := tr.e.store.MessageGet(ctx, d.MessageID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errReadLater, err)
	}
	body, err := json.Marshal(summaryOf(md))
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Tandem-Message-Id", d.MessageID)
	h.Set("Tandem-Status", string(md.Message.Status))
	req := &target.Request{Endpoint: tr.endpoint, Body: body, Header: h, IdempotencyKey: d.MessageID + "." + d.Step}
	if d.Step == record.OnCompleteStep(OnCompleteCallback) {
		raw := http.Header(md.Message.Headers).Get(CallbackHeader)
		u, exact, err := tr.e.cur().oc.callbacks.check(raw)
		if err != nil {
			return nil, err // the list changed since: a dead letter, with the reason
		}
		if err := tr.e.cur().oc.callbacks.resolve(ctx, raw, u, exact); err != nil {
			return nil, err
		}
		req.URL, req.Method = raw, http.MethodPost
	}
	return req, nil
}

// summaryOf is a message's summary as it stands.
func summaryOf(md *record.MessageDetail) *Summary {
	s := &Summary{MessageID: md.Message.ID, Route: md.Message.Route, Status: md.Message.Status, CreatedAt: md.Message.CreatedAt.UTC(), Steps: map[string]StepAnswer{}}
	for _, d := range md.Deliveries {
		if record.IsOnComplete(d.Step) {
			continue
		}
		if _, isComp := record.Compensates(d.Step); isComp && d.Status == record.DeliveryCancelled {
			continue
		}
		var took time.Duration
		for _, a := range md.Attempts[d.ID] {
			took += a.Duration
		}
		s.Steps[d.Step] = stepAnswer(d, took)
	}
	return s
}

// call makes one attempt: over HTTP, or the runner's own way (a publish,
// a guarded callback).
func (tr *targetRunner) call(ctx context.Context, d *record.Delivery, req *target.Request) *target.Result {
	if tr.send != nil {
		return tr.send(ctx, d, req)
	}
	return tr.e.caller.Do(ctx, req)
}

// callbackSend calls a Callback-Url through the guarded caller.
func (e *Engine) callbackSend(ctx context.Context, _ *record.Delivery, req *target.Request) *target.Result {
	oc := e.cur().oc
	if u, err := url.Parse(req.URL); err == nil {
		if _, exact := oc.callbacks.allowed(u.Hostname()); exact {
			ctx = context.WithValue(ctx, exactHostKey{}, true)
		}
	}
	if oc.caller == nil {
		// A reload turned callbacks off: this one is not sent.
		return &target.Result{Outcome: record.OutcomePermanent, Err: errors.New("callbacks are no longer allowed (server.callback_hosts is empty)")}
	}
	return oc.caller.Do(ctx, req)
}

// errPublish marks a publish that failed: it is retried.
var errPublish = errors.New("publish")

// publishSend makes a runner's attempts publishes through source.
func (e *Engine) publishSend(source string) func(context.Context, *record.Delivery, *target.Request) *target.Result {
	return func(ctx context.Context, d *record.Delivery, req *target.Request) *target.Result {
		start := time.Now()
		res := &target.Result{Outcome: record.OutcomeSuccess}
		g := e.cur()
		rp := g.routes[d.Route]
		if rp == nil {
			rp = g.retired[d.Route]
		}
		if rp == nil || rp.cfg.OnComplete == nil || rp.cfg.OnComplete.Publish == nil || rp.cfg.OnComplete.Publish.Source != source {
			res.Outcome = record.OutcomePermanent
			res.Err = fmt.Errorf("%w: route %q no longer publishes its outcome to source %q", errPublish, d.Route, source)
			return res
		}
		pb := rp.cfg.OnComplete.Publish
		pctx, cancel := context.WithTimeout(ctx, config.DefaultTotalTimeout.D())
		defer cancel()
		err := e.opts.Publisher.Publish(pctx, &PublishParams{
			Source: source, Subject: pb.Subject, Exchange: pb.Exchange, RoutingKey: pb.RoutingKey,
			MsgID: req.IdempotencyKey, Body: req.Body, Header: req.Header,
		})
		res.Duration = time.Since(start)
		if err != nil {
			res.Outcome, res.Unknown = record.OutcomeTransient, true
			res.Err = fmt.Errorf("%w to %s: %w", errPublish, source, err)
		}
		return res
	}
}
