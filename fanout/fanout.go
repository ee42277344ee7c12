package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Errors of Run and Send; check them with errors.Is.
var (
	// ErrUnknownPlan: no plan has that name.
	ErrUnknownPlan = errors.New("fanout: unknown plan")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("fanout: closed")
	// ErrIdempotencyConflict: the plan already ran with this
	// IdempotencyKey and another body.
	ErrIdempotencyConflict = errors.New("fanout: idempotency key already used with a different body")
	// ErrIdempotencyInFlight: a call with this IdempotencyKey is still
	// running.
	ErrIdempotencyInFlight = errors.New("fanout: a call with this idempotency key is still running")
	// ErrNotFound: the outbox has no message with that id.
	ErrNotFound = errors.New("fanout: no such message")
	// ErrSagaNeedsOutbox: a Runner was asked to run a saga; compensation
	// needs the durable store of an Outbox.
	ErrSagaNeedsOutbox = errors.New("fanout: a saga runs only in an Outbox (compensation is durable)")
)

// Request is the input of one fan-out: what templates read as request.*
// and what a step without a Body forwards.
type Request struct {
	// Body is the raw request body (JSON for templates to read, or
	// anything a step forwards unchanged).
	Body []byte
	// JSON, when Body is nil, is marshalled to become the body.
	JSON any
	// Header is what templates read as request.headers; a step that
	// forwards the body forwards its Content-Type.
	Header http.Header
	// Query is what templates read as request.query.
	Query url.Values
	// IdempotencyKey, when set, makes a repeat with the same key and body
	// return the first result instead of running again (a Runner
	// remembers keys in memory for 24h, an Outbox in its store).
	IdempotencyKey string
}

// inbound converts r to the engine's form.
func (r Request) inbound() (*engine.Inbound, error) {
	body := r.Body
	if body == nil && r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, fmt.Errorf("fanout: request json: %w", err)
		}
		body = b
	}
	h := r.Header
	if body != nil && h.Get("Content-Type") == "" && (r.JSON != nil || json.Valid(body)) {
		// A forwarded JSON body keeps its type; the caller's header map
		// is not written to.
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
	}
	return &engine.Inbound{Body: body, Header: h, Query: r.Query, IdempotencyKey: r.IdempotencyKey}, nil
}

// Status is the state of a whole fan-out (a message).
type Status string

// Fan-out states, the same words as the gateway's.
const (
	StatusAccepted           Status = "accepted"
	StatusRunning            Status = "running"
	StatusSucceeded          Status = "succeeded"
	StatusPartiallySucceeded Status = "partially_succeeded"
	StatusFailed             Status = "failed"
	StatusCompensated        Status = "compensated"
)

// Done reports whether no step will run again.
func (s Status) Done() bool { return record.MessageStatus(s).Terminal() }

// StepStatus is the state of one step.
type StepStatus string

// Step states, the same words as the gateway's deliveries.
const (
	StepWaiting      StepStatus = "waiting"
	StepScheduled    StepStatus = "scheduled"
	StepRunning      StepStatus = "running"
	StepSucceeded    StepStatus = "succeeded"
	StepDead         StepStatus = "dead"
	StepSkipped      StepStatus = "skipped"
	StepCompensating StepStatus = "compensating"
	StepCompensated  StepStatus = "compensated"
	StepCancelled    StepStatus = "cancelled"
)

// Result is the merged result of a fan-out: its status and each step's.
type Result struct {
	// ID is the message id; each step's Idempotency-Key is ID.step.
	ID string
	// Status: succeeded when every required step did, partially_succeeded
	// when some did, failed when none did.
	Status Status
	// Steps holds each step's result by step name.
	Steps map[string]StepResult
	// Repeat is set when IdempotencyKey matched an earlier call.
	Repeat bool
}

// StepResult is one step's part of a Result.
type StepResult struct {
	Status StepStatus
	// HTTPStatus is the target's last answer's status code (0 if none).
	HTTPStatus int
	// Body is the target's last answer (JSON, or a JSON string).
	Body json.RawMessage
	// Attempts counts the requests sent.
	Attempts int
	// Duration is the time the step's attempts took.
	Duration time.Duration
	// Error says why the step did not succeed.
	Error string
}

// OK reports whether the fan-out succeeded (every required step did).
func (r *Result) OK() bool { return r.Status == StatusSucceeded }

// Decode unmarshals the named step's answer into v.
func (r *Result) Decode(step string, v any) error {
	s, ok := r.Steps[step]
	if !ok {
		return fmt.Errorf("fanout: no step %q in the result", step)
	}
	if len(s.Body) == 0 {
		return fmt.Errorf("fanout: step %q has no answer body", step)
	}
	if err := json.Unmarshal(s.Body, v); err != nil {
		return fmt.Errorf("fanout: decode step %q: %w", step, err)
	}
	return nil
}

// resultOf converts the engine's answer.
func resultOf(a *engine.MessageAnswer, repeat bool) *Result {
	r := &Result{ID: a.ID, Status: Status(a.Status), Steps: make(map[string]StepResult, len(a.Steps)), Repeat: repeat}
	for name, s := range a.Steps {
		r.Steps[name] = StepResult{
			Status: StepStatus(s.Status), HTTPStatus: s.HTTPStatus, Body: s.Body, Attempts: s.Attempts,
			Duration: time.Duration(s.DurationMS) * time.Millisecond, Error: s.Error,
		}
	}
	return r
}

// Runner runs plans in memory, inside the calling program: parallel
// steps, after, templates, retries within the plan's deadline, breaker,
// rate limit and concurrency cap per target, Idempotency-Key headers.
// Nothing is stored: a call that is running when the program dies is
// lost (use an Outbox for calls that must survive). Safe for concurrent
// use.
type Runner struct {
	eng   *engine.Engine
	sagas map[string]bool
}

// New builds a Runner from cfg.
func New(cfg Config) (*Runner, error) {
	// A saga plan is kept out of the in-memory engine (it has no store
	// to compensate from) and refused by Run with ErrSagaNeedsOutbox.
	sagas := map[string]bool{}
	cfg.Plans = slices.Clone(cfg.Plans)
	for i, p := range cfg.Plans {
		if p.Saga {
			sagas[p.Name] = true
			cfg.Plans[i].Saga = false
		}
	}
	ec, err := cfg.build(false)
	if err != nil {
		return nil, err
	}
	if cfg.loaded != nil {
		for _, r := range cfg.loaded.Routes {
			if r.Saga {
				sagas[r.Name] = true
			}
		}
	}
	eng, err := newEngine(ec, nil, cfg.Logger, 0)
	if err != nil {
		return nil, err
	}
	return &Runner{eng: eng, sagas: sagas}, nil
}

// Run runs the named plan on req and returns its merged result once every
// step has finished (or the plan's deadline passed). A fan-out that did
// not fully succeed is not an error: its Result says what failed. Errors:
// ErrUnknownPlan, ErrClosed, ErrIdempotencyConflict,
// ErrIdempotencyInFlight, ErrSagaNeedsOutbox, and a bad req.JSON.
func (r *Runner) Run(ctx context.Context, plan string, req Request) (*Result, error) {
	if r.sagas[plan] {
		return nil, fmt.Errorf("%w: plan %q", ErrSagaNeedsOutbox, plan)
	}
	in, err := req.inbound()
	if err != nil {
		return nil, err
	}
	ans, err := r.eng.Ingest(ctx, plan, in)
	if err != nil {
		return nil, publicError(err, plan)
	}
	return resultOf(ans.Body, ans.Repeat), nil
}

// Close stops the Runner: new calls get ErrClosed; calls in progress
// finish (until ctx ends).
func (r *Runner) Close(ctx context.Context) error {
	return r.eng.Shutdown(ctx)
}

// newEngine builds the one engine both the Runner and the Outbox run on.
func newEngine(cfg *config.Config, st store.Store, logger *slog.Logger, poll time.Duration) (*engine.Engine, error) {
	if logger == nil {
		logger = slog.Default()
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, PollInterval: poll})
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	return eng, nil
}

// publicError maps the engine's errors to the package's sentinels,
// keeping the cause.
func publicError(err error, plan string) error {
	switch {
	case errors.Is(err, engine.ErrUnknownRoute):
		return fmt.Errorf("%w: %q", ErrUnknownPlan, plan)
	case errors.Is(err, engine.ErrShuttingDown):
		return ErrClosed
	case errors.Is(err, store.ErrIdempotencyConflict):
		return fmt.Errorf("%w: plan %q", ErrIdempotencyConflict, plan)
	case errors.Is(err, engine.ErrIdempotencyInFlight):
		return fmt.Errorf("%w: plan %q", ErrIdempotencyInFlight, plan)
	}
	return fmt.Errorf("fanout: %w", err)
}
