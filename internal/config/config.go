// Package config loads, interpolates and validates tandem.yaml.
//
// Loading is strict: an unknown key is an error, and every error names the
// file and line ("file:line: path: message"); all problems are reported at
// once, as Errors. Secrets (${env:NAME}, ${file:PATH}) are resolved after
// parsing, so a secret's value can never inject YAML. Zero values mean
// "use the default"; defaults are filled before validation. docs/config.md
// is the reference for every key.
package config

import (
	"time"

	"github.com/tandem-run/tandem/internal/contract"
)

// Config is a whole tandem.yaml.
type Config struct {
	Server Server `yaml:"server"`
	Store  Store  `yaml:"store"`
	Auth   Auth   `yaml:"auth"`
	Log    Log    `yaml:"log"`
	// Telemetry configures tracing (docs/observability.md).
	Telemetry Telemetry          `yaml:"telemetry"`
	Targets   map[string]*Target `yaml:"targets"`
	Sources   map[string]*Source `yaml:"sources"`
	Routes    []*Route           `yaml:"routes"`

	// File is the path the config was loaded from ("" when from bytes).
	File string `yaml:"-"`

	// secrets holds the key paths whose values came from ${env:} or
	// ${file:}, so Redacted can hide them.
	secrets map[string]bool
}

// Server configures the HTTP listener.
type Server struct {
	// Listen is the address of the gateway and admin API. Default ":8080".
	Listen string `yaml:"listen"`
	// MaxBody caps an inbound body; larger ones get 413. Default 1MiB.
	MaxBody Size `yaml:"max_body"`
	// ShutdownGrace bounds a graceful shutdown on SIGTERM. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// CORS lets browsers on other origins call the routes and the admin
	// API. Default nil: off, no CORS headers are sent, and OPTIONS answers
	// 405.
	CORS *CORS `yaml:"cors"`
	// CallbackHosts are the hosts a Callback-Url request header may name
	// (exact names or IPs, or "*.example.com"); loopback, private and
	// link-local addresses only when listed exactly. Default none: a
	// Callback-Url is refused (docs/events.md).
	CallbackHosts []string `yaml:"callback_hosts"`
	// TLS serves HTTPS, optionally with client certificates (mutual TLS).
	// Default nil: plain HTTP.
	TLS *ServerTLS `yaml:"tls"`
	// WatchConfig reloads the config file when it changes on disk (the
	// directory is watched, so an editor's replace counts), as SIGHUP and
	// POST /v1/config/reload do. Default false.
	WatchConfig bool `yaml:"watch_config"`
}

// CORS configures cross-origin requests from browsers (server.cors).
type CORS struct {
	// AllowedOrigins are the origins whose pages may call tandem, as
	// "https://shop.example" or "http://localhost:3000"; "*" alone allows
	// any. Default none: CORS is off.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedMethods may be used cross-origin. Default GET, HEAD, POST,
	// PUT, PATCH, DELETE.
	AllowedMethods []string `yaml:"allowed_methods"`
	// AllowedHeaders are the request headers a cross-origin request may
	// send; "*" alone allows any. Default Authorization, Content-Type,
	// Idempotency-Key.
	AllowedHeaders []string `yaml:"allowed_headers"`
	// MaxAge is how long a browser may cache a preflight's answer, at most
	// 24h. Default 0: no Access-Control-Max-Age (the browser's own, 5s).
	MaxAge Duration `yaml:"max_age"`
}

// Enabled reports whether CORS is on: c is set and allows some origin.
func (c *CORS) Enabled() bool { return c != nil && len(c.AllowedOrigins) > 0 }

// Store selects the storage engine.
type Store struct {
	// Driver is sqlite or postgres. Default sqlite.
	Driver string `yaml:"driver"`
	// DSN locates the database. Default "file:tandem.db" for sqlite;
	// required for postgres.
	DSN string `yaml:"dsn"`
	// UnsafeAsyncCommit lets the DSN (or a PostgreSQL role or database
	// default) weaken durability: SQLite's synchronous and journal_mode
	// pragmas, PostgreSQL's synchronous_commit. A 202 may then come before
	// the message is on disk. Default false: such a DSN is refused, and
	// PostgreSQL sessions run synchronous_commit=on.
	UnsafeAsyncCommit bool `yaml:"unsafe_async_commit"`
	// Retention says how long finished messages are kept; a background
	// purge deletes older ones. Default: every kind kept for ever.
	Retention Retention `yaml:"retention"`
}

// Retention is how long each kind of finished message is kept, counted
// from when it last changed; 0 (the default) keeps that kind for ever.
type Retention struct {
	// Succeeded: messages that succeeded and hold no dead letter.
	Succeeded Duration `yaml:"succeeded"`
	// Failed: messages that failed, partially succeeded or were
	// compensated, and hold no dead letter.
	Failed Duration `yaml:"failed"`
	// Dead: finished messages that still hold a dead letter.
	Dead Duration `yaml:"dead"`
}

// Enabled reports whether any kind of message is ever purged.
func (r Retention) Enabled() bool { return r.Succeeded > 0 || r.Failed > 0 || r.Dead > 0 }

// Auth configures inbound API keys and JWTs. With neither, the admin API
// answers loopback clients only and route ingest is open.
type Auth struct {
	// Keys are API keys, sent as "Authorization: Bearer <key>".
	Keys []Key `yaml:"keys"`
	// JWT accepts bearer JWTs whose scopes claim grants scopes as a key's
	// do. Default nil: no JWTs.
	JWT *JWT `yaml:"jwt"`
}

// Enabled reports whether inbound auth is on (keys or JWTs configured).
func (a Auth) Enabled() bool { return len(a.Keys) > 0 || a.JWT != nil }

// Key is one inbound API key, sent as "Authorization: Bearer <key>".
type Key struct {
	// Name identifies the key in logs. Required, unique.
	Name string `yaml:"name"`
	// Hash is "sha256:<hex>" of the key. Required.
	Hash string `yaml:"hash"`
	// Scopes: "admin", "ingest:<route>", "ingest:*", or a scope some
	// route names under auth.scopes. At least one.
	Scopes []string `yaml:"scopes"`
}

// Log configures structured logging.
type Log struct {
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// Telemetry configures what tandem tells about itself beyond logs and
// /metrics.
type Telemetry struct {
	// Tracing exports OpenTelemetry traces: a span per ingest, per attempt
	// and per compensation, all in the message's trace.
	Tracing Tracing `yaml:"tracing"`
}

// Tracing configures OpenTelemetry tracing (telemetry.tracing). A key set
// here wins over its OTEL_* environment variable; a key left out falls
// back to the variable, then to the default.
type Tracing struct {
	// Exporter is otlp or none. Default: otlp when OTEL_TRACES_EXPORTER is
	// otlp or an OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none. With none (or
	// OTEL_SDK_DISABLED=true) no span is exported, but an inbound
	// traceparent still reaches the targets.
	Exporter string `yaml:"exporter"`
	// Endpoint of the OTLP receiver: host:port, or a URL (http:// means
	// no TLS; for http/protobuf a URL may give the path). Default
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT,
	// else localhost:4317 (grpc) or localhost:4318 (http/protobuf).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf. Default
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL,
	// else grpc.
	Protocol string `yaml:"protocol"`
	// SampleRatio is the share of new traces sampled, 0 to 1; a trace that
	// arrives with a traceparent follows its caller's decision. Default
	// OTEL_TRACES_SAMPLER (and _ARG), else 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of every span. Default
	// OTEL_SERVICE_NAME, else "tandem".
	ServiceName string `yaml:"service_name"`
	// Insecure sends without TLS. Default: OTEL_EXPORTER_OTLP_INSECURE, or
	// the endpoint URL's scheme; a host:port on loopback is sent without
	// TLS, any other with TLS.
	Insecure *bool `yaml:"insecure"`
	// Headers are sent with every export (e.g. an API key of a tracing
	// vendor; use ${env:X}). Merged over OTEL_EXPORTER_OTLP_HEADERS.
	Headers map[string]string `yaml:"headers"`
	// Link is a URL template for a trace in your tracing UI, {trace_id}
	// replaced by the trace id, e.g.
	// "http://127.0.0.1:16686/trace/{trace_id}" (Jaeger) or a Grafana
	// Tempo explore URL. The dashboard links message traces with it.
	// Default none.
	Link string `yaml:"link"`
}

// Tracing exporters (telemetry.tracing.exporter).
const (
	TracingOTLP = "otlp"
	TracingNone = "none"
)

// Tracing protocols (telemetry.tracing.protocol).
const (
	TracingGRPC         = "grpc"
	TracingHTTPProtobuf = "http/protobuf"
)

// Target is one downstream API endpoint and its policies.
type Target struct {
	// Name is the key under targets (set by the loader).
	Name string `yaml:"-"`
	// URL of the endpoint, http or https. Exactly one of url and urls
	// must be set.
	URL string `yaml:"url"`
	// URLs lists several hosts serving the same API, instead of URL;
	// attempts spread over the healthy ones (Balance, Eject). Default none.
	URLs []string `yaml:"urls"`
	// Balance picks a host of URLs per attempt: round_robin or
	// least_in_flight. Default round_robin.
	Balance string `yaml:"balance"`
	// Eject is the passive health check of URLs' hosts: a host that fails
	// Failures times in a row is left out for CoolOff.
	Eject Eject `yaml:"eject"`
	// Contract names the target's own OpenAPI document and operation:
	// bodies are checked against it at load and before each send, and
	// answers after it. Default none.
	Contract *Contract `yaml:"contract"`
	// Method is the HTTP method. Default POST.
	Method string `yaml:"method"`
	// Headers are sent on every call (values may use ${env:...}).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one attempt.
	Timeout Timeout `yaml:"timeout"`
	// Auth adds credentials to every call. At most one kind.
	Auth TargetAuth `yaml:"auth"`
	// Retry is the retry schedule.
	Retry Retry `yaml:"retry"`
	// Breaker is the circuit breaker.
	Breaker Breaker `yaml:"breaker"`
	// RateLimit is a token bucket over attempts. Zero PerSecond: no limit.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Concurrency caps attempts in flight. Default 32.
	Concurrency int `yaml:"concurrency"`
	// SuccessStatus lists extra non-2xx statuses that count as success
	// (e.g. 409 for a target that reports duplicates). Default none.
	SuccessStatus []int `yaml:"success_status"`
	// MaxResponseBody caps the response body kept per attempt. Default 64KiB.
	MaxResponseBody Size `yaml:"max_response_body"`
	// Sign signs every request (Standard Webhooks or HMAC). Default none.
	Sign *Sign `yaml:"sign"`
	// TLS sets the CA, client certificate and server name for an https
	// url. Default: system roots, no client certificate.
	TLS *TargetTLS `yaml:"tls"`
}

// Eject is the passive health check of a target's hosts (targets.*.eject).
type Eject struct {
	// Failures is how many failures in a row (a transport error, a
	// timeout or a 5xx) eject a host. Default 5.
	Failures int `yaml:"failures"`
	// CoolOff is how long an ejected host is left out; then one attempt
	// probes it. Default 30s.
	CoolOff Duration `yaml:"cool_off"`
}

// Contract is a target's OpenAPI operation (targets.*.contract).
type Contract struct {
	// OpenAPI is the path of the OpenAPI 3.0 or 3.1 document (YAML or
	// JSON), relative to the config file. Required.
	OpenAPI string `yaml:"openapi"`
	// Operation is the operationId of the operation the target serves.
	// Required.
	Operation string `yaml:"operation"`

	// op is the loaded operation, set by validation.
	op *contract.Operation
}

// Op returns the contract's loaded operation (nil before validation).
func (c *Contract) Op() *contract.Operation {
	if c == nil {
		return nil
	}
	return c.op
}

// Timeout bounds one attempt.
type Timeout struct {
	// Connect bounds dialing (and TLS). Default 2s, or Total if shorter;
	// at most Total.
	Connect Duration `yaml:"connect"`
	// Total bounds the whole attempt, body included. Default 10s.
	Total Duration `yaml:"total"`
	// LeaseMargin is added to Total to make a claim's lease: how long a
	// crashed worker's deliveries wait before another worker claims them.
	// It must cover the store round trips around an attempt and the clock
	// skew between replicas. Default 30s; at least 1s.
	LeaseMargin Duration `yaml:"lease_margin"`
}

// TargetAuth holds a target's credentials; values are usually secrets.
type TargetAuth struct {
	// Bearer sends "Authorization: Bearer <token>".
	Bearer string `yaml:"bearer"`
	// Basic sends HTTP basic auth.
	Basic *BasicAuth `yaml:"basic"`
	// Header sends one header, e.g. {name: X-Api-Key, value: ...}.
	Header *HeaderAuth `yaml:"header"`
	// OAuth2 fetches an access token with the client-credentials grant
	// and sends it as a bearer token.
	OAuth2 *OAuth2Auth `yaml:"oauth2"`
}

// BasicAuth is a user name and password.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// HeaderAuth is one credential header.
type HeaderAuth struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Retry is a retry schedule: exponential backoff with full jitter.
type Retry struct {
	// MaxAttempts counts every attempt, the first included. Default 8.
	MaxAttempts int `yaml:"max_attempts"`
	// Initial is the first backoff cap. Default 500ms, or Max if shorter;
	// at most Max.
	Initial Duration `yaml:"initial"`
	// Max caps any backoff. Default 5m.
	Max Duration `yaml:"max"`
	// Multiplier grows the cap per attempt. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// MaxAge: no retry starts later than this after the message was
	// accepted (or the delivery replayed). Default 24h.
	MaxAge Duration `yaml:"max_age"`
	// MaxRetryAfter caps how long a target's Retry-After is honoured, for
	// the delivery that got it and for the target-wide pause. Default
	// Max.
	MaxRetryAfter Duration `yaml:"max_retry_after"`
}

// Breaker is a circuit breaker over a target's attempts.
type Breaker struct {
	// FailureRatio opens the breaker when reached over Window. Default 0.5.
	FailureRatio float64 `yaml:"failure_ratio"`
	// MinRequests in Window before the ratio counts. Default 20.
	MinRequests int `yaml:"min_requests"`
	// Window over which failures are counted. Default 60s.
	Window Duration `yaml:"window"`
	// OpenFor is how long the breaker stays open. Default 30s.
	OpenFor Duration `yaml:"open_for"`
	// HalfOpenProbes is how many probe attempts run half-open. Default 1.
	HalfOpenProbes int `yaml:"half_open_probes"`
	// Disabled turns the breaker off. Default false.
	Disabled bool `yaml:"disabled"`
}

// RateLimit is a token bucket over a target's attempts.
type RateLimit struct {
	// PerSecond is the refill rate; 0 means no limit. Default 0.
	PerSecond float64 `yaml:"per_second"`
	// Burst is the bucket size. Default max(1, ceil(PerSecond)) when
	// PerSecond > 0.
	Burst int `yaml:"burst"`
	// Shared divides PerSecond by the number of live replicas. Default false.
	Shared bool `yaml:"shared"`
}

// Respond values other than a list of steps.
const (
	RespondAccepted = "accepted"
	RespondAll      = "all"
)

// Route is one inbound entry point and the steps it runs.
type Route struct {
	// Name identifies the route in the admin API and metrics. Required, unique.
	Name string `yaml:"name"`
	// Path is the gateway path, e.g. /orders. Required (unless Source is
	// set), unique.
	Path string `yaml:"path"`
	// Source names an entry under sources the route consumes from,
	// instead of a path. A source feeds one route.
	Source string `yaml:"source"`
	// Method is the inbound method. Default POST.
	Method string `yaml:"method"`
	// Respond is when the caller gets an answer. Default accepted.
	Respond Respond `yaml:"respond"`
	// Durable false skips the store (only with respond: all). Default true.
	Durable *bool `yaml:"durable"`
	// Deadline bounds how long a caller waits for an answer (respond: all or
	// a list). Default 30s.
	Deadline Duration `yaml:"deadline"`
	// Saga compensates succeeded steps when a required step fails for good.
	Saga bool `yaml:"saga"`
	// IdempotencyTTL is how long a durable: false route remembers an
	// Idempotency-Key and its answer (in memory, per process). Default 24h.
	IdempotencyTTL Duration `yaml:"idempotency_ttl"`
	// Steps are the calls the route makes. At least one.
	Steps []*Step `yaml:"steps"`
	// Response shapes the answer of respond: all or a list (templates).
	Response *Response `yaml:"response"`
	// OnComplete sends the final summary onward (oncomplete.go).
	OnComplete *OnComplete `yaml:"on_complete"`
	// Auth lists scopes that grant sending to this route, beside
	// ingest:<route>. Default none.
	Auth *RouteAuth `yaml:"auth"`
	// Cache keeps merged answers of a durable: false route in memory.
	// Default nil: no cache.
	Cache *Cache `yaml:"cache"`
}

// Cache is a durable: false route's response cache (routes[].cache).
type Cache struct {
	// TTL is how long an answer is served from the cache; a target's
	// Cache-Control max-age (or s-maxage) lowers it. Required.
	TTL Duration `yaml:"ttl"`
	// Key is a string template over request.* naming what makes two
	// requests the same. Default the route's method and path with the
	// sorted query. Required for routes other than GET and HEAD.
	Key string `yaml:"key"`
	// MaxBytes bounds the cache's memory (answers and keys); the least
	// recently used answers go first. Default 16MiB.
	MaxBytes Size `yaml:"max_bytes"`
	// Shared lets callers with different credentials share answers.
	// Default false: the caller's identity is part of the key.
	Shared bool `yaml:"shared"`
}

// IsDurable reports whether the route's messages go through the store.
func (r *Route) IsDurable() bool { return r.Durable == nil || *r.Durable }

// Respond is "accepted", "all", or a list of step names.
type Respond struct {
	Mode  string   // RespondAccepted, RespondAll, or "steps"
	Steps []string // when Mode is "steps"
}

// Step is one call of a target inside a route.
type Step struct {
	// Name identifies the step within its route. Required, unique.
	Name string `yaml:"name"`
	// Target names an entry under targets. Required.
	Target string `yaml:"target"`
	// Method overrides the target's method. Default: the target's method
	// (filled in by the loader).
	Method string `yaml:"method"`
	// After lists steps that must succeed before this one runs.
	After []string `yaml:"after"`
	// Required false means a failure does not count against the message
	// and does not trigger compensation. Default true.
	Required *bool `yaml:"required"`
	// Body is a template for the request body; absent forwards the inbound
	// body unchanged.
	Body any `yaml:"body"`
	// Headers are templates for extra request headers.
	Headers map[string]string `yaml:"headers"`
	// Query are templates for query parameters.
	Query map[string]string `yaml:"query"`
	// Path is a template appended to the target URL's path.
	Path string `yaml:"path"`
	// Compensate is the call that undoes this step in a saga.
	Compensate *Compensate `yaml:"compensate"`
	// CompensateUnknown false means a step that ends dead after an attempt
	// whose outcome is unknown (a timeout or reset after the request was
	// written) is not compensated: the target is trusted not to have acted.
	// Default true: it may have happened, so the saga undoes it.
	CompensateUnknown *bool `yaml:"compensate_unknown"`
}

// IsRequired reports whether the step is required.
func (s *Step) IsRequired() bool { return s.Required == nil || *s.Required }

// CompensatesUnknown reports whether a saga compensates this step when
// its outcome is unknown.
func (s *Step) CompensatesUnknown() bool { return s.CompensateUnknown == nil || *s.CompensateUnknown }

// Compensate is a saga's undo call. Its templates may read its own step
// and the steps that step waits for.
type Compensate struct {
	// Target names an entry under targets. Required.
	Target string `yaml:"target"`
	// Method overrides the target's method. Default: the target's.
	Method string `yaml:"method"`
	// Body is a template for the request body; absent forwards the inbound
	// body unchanged.
	Body any `yaml:"body"`
	// Headers are templates for extra request headers.
	Headers map[string]string `yaml:"headers"`
	// Query are templates for query parameters.
	Query map[string]string `yaml:"query"`
	// Path is a template appended to the target URL's path.
	Path string `yaml:"path"`
}

// Response shapes a waiting caller's answer.
type Response struct {
	Status string `yaml:"status"` // template yielding a number
	Body   any    `yaml:"body"`
}

// Duration is a time.Duration written as "500ms", "2s", "5m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "512", "64KiB", "1MiB" (also KB/MB = 1000s).
type Size int64
