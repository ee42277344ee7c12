package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/route"
	"github.com/tandem-run/tandem/internal/route/template"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/target"
)

// errReadLater marks a request that could not be built because the store
// could not be read: the delivery is given back, not dead-lettered.
var errReadLater = errors.New("read step results")

// compilePlan compiles rp's route (graph and templates) and attaches each
// step's compiled form. In a saga each compensation becomes a step of its
// own under its delivery's name, "<step>.compensate", so a worker finds it
// the way it finds any step.
func (e *Engine) compilePlan(rp *routePlan, targets map[string]*targetRunner) error {
	plan, err := route.Compile(rp.cfg.Spec())
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	rp.plan = plan
	rp.byName = make(map[string]*stepPlan, len(plan.Steps)+len(plan.Compensations))
	for _, st := range slices.Concat(plan.Steps, plan.Compensations) {
		tr := targets[st.Target]
		if tr == nil {
			return fmt.Errorf("engine: route %s step %s: unknown target %q", rp.cfg.Name, st.Name, st.Target)
		}
		sp := &stepPlan{step: st, target: tr}
		if st.Compensates == "" {
			rp.steps = append(rp.steps, sp)
		}
		rp.byName[st.Name] = sp
	}
	return nil
}

// buildRequest makes the HTTP request of one delivery from its step's
// templates, with the Idempotency-Key "{message_id}.{step}". A step with
// no body template forwards the inbound body unchanged. d.Message is set.
// A template that fails for this message is an error that dead-letters the
// delivery; a store that cannot be read is errReadLater.
func (tr *targetRunner) buildRequest(ctx context.Context, sp *stepPlan, d *record.Delivery) (*target.Request, error) {
	st := sp.step
	if st == nil {
		return nil, fmt.Errorf("step %s has no compiled plan", d.Step)
	}
	var results map[string]template.Result
	if len(st.Reads) > 0 {
		var err error
		if results, err = tr.e.stepResults(ctx, d.MessageID, st.Reads); err != nil {
			return nil, err
		}
	}
	env := template.NewEnv(messageInput(d.Message, d.MessageID, results, tr.e.opts.Now()))
	return requestFor(tr.endpoint, sp, env, d.Message, d.MessageID+"."+d.Step)
}

// requestFor renders a step's request against env. It is shared by the
// durable worker and the in-memory fan-out, so both send the same thing.
func requestFor(ep *target.Endpoint, sp *stepPlan, env *template.Env, msg *record.Message, key string) (*target.Request, error) {
	r, err := sp.step.Render(env)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	// A step without a method of its own ("") uses the target's.
	req := &target.Request{Endpoint: ep, Method: sp.step.Method, IdempotencyKey: key}
	if r.Forward {
		if msg != nil {
			req.Body = msg.Body
			req.Header = forwardHeaders(msg.Headers)
		}
	} else {
		req.Body = r.Body
	}
	for k, vs := range r.Header {
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header[k] = vs
	}
	if r.Path != "" || len(r.Query) > 0 {
		if req.URL, err = route.URL(ep.URL, r); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// messageInput is what templates read of a message.
func messageInput(msg *record.Message, id string, results map[string]template.Result, now time.Time) *template.Input {
	in := &template.Input{MessageID: id, Steps: results, Now: now}
	if msg != nil {
		in.Body, in.Header, in.Query = msg.Body, msg.Headers, msg.Query
	}
	return in
}

// stepResults loads the answers of the named steps of message id.
func (e *Engine) stepResults(ctx context.Context, id string, names []string) (map[string]template.Result, error) {
	res, err := e.store.DeliveryList(ctx, &store.DeliveryListParams{MessageID: id, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errReadLater, err)
	}
	return resultsOf(res.Deliveries, names), nil
}

// resultsOf picks the named steps' answers out of a message's deliveries;
// "*" picks every forward step.
func resultsOf(ds []record.Delivery, names []string) map[string]template.Result {
	all := slices.Contains(names, "*")
	out := make(map[string]template.Result, len(names))
	for _, d := range ds {
		if _, isComp := record.Compensates(d.Step); isComp {
			continue
		}
		if all || slices.Contains(names, d.Step) {
			out[d.Step] = template.Result{Status: d.ResponseStatus, Body: d.ResponseBody, Header: d.ResponseHeaders}
		}
	}
	return out
}

// forwardHeaders picks the inbound headers a forwarded body needs.
func forwardHeaders(h map[string][]string) http.Header {
	out := http.Header{}
	if v := h["Content-Type"]; len(v) > 0 {
		out["Content-Type"] = v
	}
	return out
}
