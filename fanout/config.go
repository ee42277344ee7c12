package fanout

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/config"
)

// Config is what a Runner or an Outbox runs: the targets it calls and the
// plans that call them. Write it in Go, or load a tandem.yaml with
// LoadConfig (its routes become plans, by name).
type Config struct {
	// Targets are the downstream APIs. At least one.
	Targets []Target
	// Plans are the fan-outs, run by name. At least one.
	Plans []Plan
	// Logger gets the engine's log lines (retries, dead letters, breaker
	// changes). Default slog.Default().
	Logger *slog.Logger

	// loaded is the config of a tandem.yaml read by LoadConfig.
	loaded *config.Config
}

// Target is one downstream API and its policies. Zero values take the
// same defaults as in tandem.yaml (docs/config.md).
type Target struct {
	// Name is how steps name the target. Required, unique.
	Name string
	// URL of the endpoint, http or https. Required.
	URL string
	// Method is the HTTP method. Default POST.
	Method string
	// Headers are sent on every call.
	Headers map[string]string
	// Bearer, when set, is sent as "Authorization: Bearer <Bearer>".
	Bearer string
	// Timeout bounds one whole attempt, body included. Default 10s.
	Timeout time.Duration
	// ConnectTimeout bounds dialing and TLS. Default 2s, or Timeout if
	// shorter.
	ConnectTimeout time.Duration
	// LeaseMargin is added to Timeout to make an outbox claim's lease:
	// how long an attempt that was in flight when the program died waits
	// before the restarted program sends it again. Default 30s; at least
	// 1s.
	LeaseMargin time.Duration
	// Retry is the retry schedule: exponential backoff with full jitter.
	Retry Retry
	// Breaker is the target's circuit breaker.
	Breaker Breaker
	// RateLimit is a token bucket over the target's attempts.
	RateLimit RateLimit
	// Concurrency caps the target's attempts in flight. Default 32.
	Concurrency int
	// SuccessStatus lists non-2xx statuses that count as success (e.g. 409
	// from a target that reports duplicates). Default none.
	SuccessStatus []int
}

// Retry is a retry schedule. Transient failures (connection errors,
// timeouts, 408, 425, 429, 5xx) are retried; other 4xx fail at once;
// Retry-After is honoured.
type Retry struct {
	// MaxAttempts counts every attempt, the first included. Default 8.
	MaxAttempts int
	// Initial is the first backoff's cap. Default 500ms, or Max if shorter.
	Initial time.Duration
	// Max caps any backoff. Default 5m.
	Max time.Duration
	// Multiplier grows the cap per attempt. Default 2.
	Multiplier float64
	// MaxAge: no retry starts later than this after the message was
	// accepted. Default 24h.
	MaxAge time.Duration
}

// Breaker is a circuit breaker over a target's attempts: it opens when
// FailureRatio of at least MinRequests attempts in Window failed, stays
// open for OpenFor, then lets HalfOpenProbes through.
type Breaker struct {
	// FailureRatio opens the breaker. Default 0.5.
	FailureRatio float64
	// MinRequests in Window before the ratio counts. Default 20.
	MinRequests int
	// Window over which attempts are counted. Default 60s.
	Window time.Duration
	// OpenFor is how long the breaker stays open. Default 30s.
	OpenFor time.Duration
	// HalfOpenProbes is how many attempts probe a half-open target.
	// Default 1.
	HalfOpenProbes int
	// Disabled turns the breaker off. Default false.
	Disabled bool
}

// RateLimit is a token bucket over a target's attempts.
type RateLimit struct {
	// PerSecond is the refill rate; 0 means no limit. Default 0.
	PerSecond float64
	// Burst is the bucket size. Default max(1, ceil(PerSecond)).
	Burst int
}

// Plan is one fan-out: steps without After run in parallel; a step with
// After waits for those steps and may read their answers in its
// templates.
type Plan struct {
	// Name is how Run and Send name the plan. Required, unique.
	Name string
	// Steps are the calls. At least one.
	Steps []Step
	// Deadline bounds Run: retries stop when it passes. Default 30s.
	Deadline time.Duration
	// Saga compensates the steps that succeeded when a required step
	// fails for good (an Outbox only: compensation needs the store).
	Saga bool
}

// Step is one call of a target inside a plan. Body, Headers, Query and
// Path are templates, as in tandem.yaml: a string that is exactly one
// "{{ expression }}" becomes the expression's typed value, text around
// it interpolates; expressions read request.body, request.headers,
// request.query, message.id and steps.<name>.body|status|headers.
type Step struct {
	// Name identifies the step in the plan and in its Idempotency-Key
	// ("{message id}.{step}"). Required, unique within the plan.
	Name string
	// Target names a Config target. Required.
	Target string
	// Method overrides the target's method.
	Method string
	// After lists steps that must succeed before this one runs.
	After []string
	// Optional steps do not count against the result when they fail, and
	// their failure does not set off a saga's compensation; steps that
	// wait for them (After) still need them to succeed. Default false:
	// the step is required.
	Optional bool
	// Body is the request body's template (a value that becomes JSON, or
	// a string for a text body). Nil forwards the request's body as is.
	Body any
	// Headers are templates of extra request headers.
	Headers map[string]string
	// Query are templates of query parameters.
	Query map[string]string
	// Path is a template appended to the target URL's path.
	Path string
	// Compensate is the call that undoes the step in a saga.
	Compensate *Call
}

// Call is a saga's undo call; its fields mean what Step's do.
type Call struct {
	Target  string
	Method  string
	Body    any
	Headers map[string]string
	Query   map[string]string
	Path    string
}

// LoadConfig reads a tandem.yaml: its targets, and its routes as plans
// named like the routes. Errors name the file and line. The file's
// server, store and auth sections are not used by the library; in a
// Runner every route runs in memory (as durable: false), in an Outbox
// durably, answered when committed (as respond: accepted).
func LoadConfig(path string) (Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return Config{}, err
	}
	return Config{loaded: cfg}, nil
}

// build turns c into the engine's config: each plan a route, durable or
// not. Plans written in Go are validated by config.Check, with the rules
// tandem.yaml is held to.
func (c Config) build(durable bool) (*config.Config, error) {
	if c.loaded != nil {
		if len(c.Targets) > 0 || len(c.Plans) > 0 {
			return nil, errors.New("fanout: a config from LoadConfig cannot take Targets or Plans as well")
		}
		return fromFile(c.loaded, durable), nil
	}
	cfg := &config.Config{Targets: make(map[string]*config.Target, len(c.Targets))}
	var errs []string
	for i, t := range c.Targets {
		if _, dup := cfg.Targets[t.Name]; dup || t.Name == "" {
			errs = append(errs, fmt.Sprintf("targets[%d].name: a name is required, unique (got %q)", i, t.Name))
			continue
		}
		cfg.Targets[t.Name] = t.config()
	}
	for _, p := range c.Plans {
		cfg.Routes = append(cfg.Routes, p.route(durable))
	}
	if len(errs) > 0 {
		return nil, &ConfigError{Problems: errs}
	}
	if err := config.Check(cfg); err != nil {
		var ces config.Errors
		if !errors.As(err, &ces) {
			return nil, fmt.Errorf("fanout: %w", err)
		}
		ce := &ConfigError{}
		for _, e := range ces {
			path := strings.Replace(e.Path, "routes[", "plans[", 1)
			ce.Problems = append(ce.Problems, path+": "+e.Msg)
		}
		return nil, ce
	}
	return cfg, nil
}

// ConfigError lists every problem of a Config written in Go, each as
// "path: message" (e.g. "plans[0].steps[1].target: unknown target").
type ConfigError struct {
	Problems []string
}

// Error joins the problems, one per line.
func (e *ConfigError) Error() string {
	return "fanout: invalid config:\n  " + strings.Join(e.Problems, "\n  ")
}

// fromFile adapts a loaded tandem.yaml: a shallow copy whose routes run in
// memory (durable false) or durably and answer on commit.
func fromFile(loaded *config.Config, durable bool) *config.Config {
	cfg := *loaded
	cfg.Sources = nil
	cfg.Routes = make([]*config.Route, 0, len(loaded.Routes))
	for _, r := range loaded.Routes {
		rc := *r
		rc.Source = ""
		if durable {
			rc.Durable = ptr(true)
			rc.Respond = config.Respond{Mode: config.RespondAccepted}
			rc.Response = nil
		} else {
			rc.Durable = ptr(false)
			rc.Respond = config.Respond{Mode: config.RespondAll}
		}
		cfg.Routes = append(cfg.Routes, &rc)
	}
	return &cfg
}

func (t Target) config() *config.Target {
	return &config.Target{
		URL:     t.URL,
		Method:  t.Method,
		Headers: t.Headers,
		Timeout: config.Timeout{
			Connect: config.Duration(t.ConnectTimeout), Total: config.Duration(t.Timeout), LeaseMargin: config.Duration(t.LeaseMargin),
		},
		Auth: config.TargetAuth{Bearer: t.Bearer},
		Retry: config.Retry{
			MaxAttempts: t.Retry.MaxAttempts, Initial: config.Duration(t.Retry.Initial), Max: config.Duration(t.Retry.Max),
			Multiplier: t.Retry.Multiplier, MaxAge: config.Duration(t.Retry.MaxAge),
		},
		Breaker: config.Breaker{
			FailureRatio: t.Breaker.FailureRatio, MinRequests: t.Breaker.MinRequests, Window: config.Duration(t.Breaker.Window),
			OpenFor: config.Duration(t.Breaker.OpenFor), HalfOpenProbes: t.Breaker.HalfOpenProbes, Disabled: t.Breaker.Disabled,
		},
		RateLimit:     config.RateLimit{PerSecond: t.RateLimit.PerSecond, Burst: t.RateLimit.Burst},
		Concurrency:   t.Concurrency,
		SuccessStatus: t.SuccessStatus,
	}
}

func (p Plan) route(durable bool) *config.Route {
	r := &config.Route{
		Name:     p.Name,
		Path:     "/" + p.Name, // routes need one; a plan is never served
		Durable:  ptr(durable),
		Deadline: config.Duration(p.Deadline),
		Saga:     p.Saga,
		Respond:  config.Respond{Mode: config.RespondAll},
	}
	if durable {
		r.Respond = config.Respond{Mode: config.RespondAccepted}
	}
	for _, s := range p.Steps {
		st := &config.Step{
			Name: s.Name, Target: s.Target, Method: s.Method, After: s.After, Required: ptr(!s.Optional),
			Body: s.Body, Headers: s.Headers, Query: s.Query, Path: s.Path,
		}
		if c := s.Compensate; c != nil {
			st.Compensate = &config.Compensate{Target: c.Target, Method: c.Method, Body: c.Body, Headers: c.Headers, Query: c.Query, Path: c.Path}
		}
		r.Steps = append(r.Steps, st)
	}
	return r
}

func ptr[T any](v T) *T { return &v }
