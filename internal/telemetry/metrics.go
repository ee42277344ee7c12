package telemetry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tandem-run/tandem/internal/record"
)

// DurationBuckets are the histogram buckets, in seconds, for attempt and
// ingest durations: 1ms to 30s.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// LatencyBuckets are the histogram buckets, in seconds, for the time from
// accepting a message to delivering a step: 5ms to 6h, since retries
// stretch it.
var LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600}

// Values of tandem_breaker_state.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
	BreakerDisabled = 3 // breaker.disabled: true; attempts are never held back
)

// Metrics holds tandem's Prometheus metrics. Its methods are safe for
// concurrent use; on a nil *Metrics they do nothing.
type Metrics struct {
	attempts     *prometheus.CounterVec   // route, step, target, outcome
	attemptDur   *prometheus.HistogramVec // route, step, target
	deliveries   *prometheus.CounterVec   // route, step, target, status
	deadLetters  *prometheus.CounterVec   // route, step, target
	queueDepth   *prometheus.GaugeVec     // target, state
	groupCommit  prometheus.Histogram
	accepted     *prometheus.CounterVec   // route
	answers      *prometheus.CounterVec   // route, code
	ingestDur    *prometheus.HistogramVec // route
	breakerState *prometheus.GaugeVec     // target
	postponed    *prometheus.CounterVec   // target, reason
	inFlight     *prometheus.GaugeVec     // target
	delivered    *prometheus.HistogramVec // route, step, target
	oldestDue    *prometheus.GaugeVec     // target
	admin        *prometheus.CounterVec   // method, path, code
	src          *sourceVecs              // source.go
	strat        *strategyVecs            // strategies.go

	err error // registration failures, see Err

	mu      sync.RWMutex
	steps   map[stepKey]*StepMetrics
	routes  map[string]*RouteMetrics
	targets map[string]*TargetMetrics
}

type stepKey struct{ route, step, target string }

// NewMetrics builds the metrics and registers them on reg (nil: not
// registered, e.g. when metrics are off). When reg already holds tandem's
// metrics (a second Metrics on one registry), the new Metrics adopts them,
// so both count into the same series. Any other registration conflict
// leaves that metric unregistered and is reported by Err.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	stepLabels := []string{"route", "step", "target"}
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_attempts_total",
			Help: "HTTP attempts made to targets, by outcome (success, transient, permanent).",
		}, append(stepLabels, "outcome")),
		attemptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_attempt_duration_seconds",
			Help:    "Duration of HTTP attempts to targets, response body included.",
			Buckets: DurationBuckets,
		}, stepLabels),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_deliveries_total",
			Help: "Deliveries that reached a final status (succeeded, dead, skipped, ...).",
		}, append(stepLabels, "status")),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_dead_letters_total",
			Help: "Deliveries that became dead letters (out of attempts or failed permanently).",
		}, stepLabels),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_queue_depth",
			Help: "Deliveries per target and state (due, scheduled, waiting, running, dead).",
		}, []string{"target", "state"}),
		groupCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tandem_group_commit_ops",
			Help:    "Operations committed together in one store transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_messages_accepted_total",
			Help: "Messages durably accepted on a route.",
		}, []string{"route"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_route_answers_total",
			Help: "Answers given to callers of a route, by HTTP status code.",
		}, []string{"route", "code"}),
		ingestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_ingest_duration_seconds",
			Help:    "Time from receiving a route's request to answering it.",
			Buckets: DurationBuckets,
		}, []string{"route"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_breaker_state",
			Help: "Circuit breaker state per target: 0 closed, 1 half-open, 2 open, 3 disabled.",
		}, []string{"target"}),
		postponed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_deliveries_postponed_total",
			Help: "Claimed deliveries given back without an attempt, by reason (breaker_open, paused, rate_limit, shutdown, lease).",
		}, []string{"target", "reason"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_target_in_flight",
			Help: "Deliveries of a target claimed by this process and not yet recorded (at most its concurrency).",
		}, []string{"target"}),
		delivered: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_accept_to_delivered_seconds",
			Help:    "Time from accepting a message to its step's successful delivery, retries included.",
			Buckets: LatencyBuckets,
		}, stepLabels),
		oldestDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_oldest_due_age_seconds",
			Help: "How long the longest-waiting due delivery of a target has been due (0: none due).",
		}, []string{"target"}),
		admin: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_admin_requests_total",
			Help: "Requests to the admin API, by method, path pattern and HTTP status code.",
		}, []string{"method", "path", "code"}),
		steps:   make(map[stepKey]*StepMetrics),
		routes:  make(map[string]*RouteMetrics),
		targets: make(map[string]*TargetMetrics),
		src:     newSourceVecs(),
		strat:   newStrategyVecs(),
	}
	if reg != nil {
		var errs []error
		m.src.register(reg, &errs)
		m.strat.register(reg, &errs)
		m.attempts = register(reg, m.attempts, &errs)
		m.attemptDur = register(reg, m.attemptDur, &errs)
		m.deliveries = register(reg, m.deliveries, &errs)
		m.deadLetters = register(reg, m.deadLetters, &errs)
		m.queueDepth = register(reg, m.queueDepth, &errs)
		m.groupCommit = register(reg, m.groupCommit, &errs)
		m.accepted = register(reg, m.accepted, &errs)
		m.answers = register(reg, m.answers, &errs)
		m.ingestDur = register(reg, m.ingestDur, &errs)
		m.breakerState = register(reg, m.breakerState, &errs)
		m.postponed = register(reg, m.postponed, &errs)
		m.inFlight = register(reg, m.inFlight, &errs)
		m.delivered = register(reg, m.delivered, &errs)
		m.oldestDue = register(reg, m.oldestDue, &errs)
		m.admin = register(reg, m.admin, &errs)
		if err := errors.Join(errs...); err != nil {
			m.err = fmt.Errorf("register metrics: %w", err)
		}
	}
	return m
}

// register registers c, or returns the identical collector registered
// before it; other failures are collected in errs and c stays private.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, err)
	return c
}

// Err reports metrics that could not be registered (their names were taken
// by other collectors); nil when all are exported.
func (m *Metrics) Err() error {
	if m == nil {
		return nil
	}
	return m.err
}

// NewRegistry returns a fresh registry with the Go runtime and process
// collectors, for the /metrics endpoint of a real server.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	// Two different collectors on a fresh registry cannot collide.
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves g's metrics in the Prometheus text format, or in
// OpenMetrics (which carries the exemplars: trace ids on the latency
// histograms) to a scraper that asks for it.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// Step returns the series of one step of one route, calling one target,
// resolved once: keep it and call its methods on hot paths.
func (m *Metrics) Step(route, step, target string) *StepMetrics {
	if m == nil {
		return nil
	}
	k := stepKey{route, step, target}
	m.mu.RLock()
	s := m.steps[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.steps[k]; s != nil {
		return s
	}
	s = &StepMetrics{
		m:           m,
		key:         k,
		success:     m.attempts.WithLabelValues(route, step, target, string(record.OutcomeSuccess)),
		transient:   m.attempts.WithLabelValues(route, step, target, string(record.OutcomeTransient)),
		permanent:   m.attempts.WithLabelValues(route, step, target, string(record.OutcomePermanent)),
		duration:    m.attemptDur.WithLabelValues(route, step, target),
		latency:     m.delivered.WithLabelValues(route, step, target),
		succeeded:   m.deliveries.WithLabelValues(route, step, target, string(record.DeliverySucceeded)),
		dead:        m.deliveries.WithLabelValues(route, step, target, string(record.DeliveryDead)),
		skipped:     m.deliveries.WithLabelValues(route, step, target, string(record.DeliverySkipped)),
		deadLetters: m.deadLetters.WithLabelValues(route, step, target),
	}
	m.steps[k] = s
	return s
}

// ObserveAttempt records one attempt; see StepMetrics.Attempt.
func (m *Metrics) ObserveAttempt(route, step, target string, outcome record.Outcome, d time.Duration) {
	m.Step(route, step, target).Attempt(outcome, d)
}

// DeliveryFinished records a delivery reaching a final status (a
// record.DeliveryStatus: succeeded, dead, skipped, ...); see
// StepMetrics.Finished.
func (m *Metrics) DeliveryFinished(route, step, target, status string) {
	m.Step(route, step, target).Finished(record.DeliveryStatus(status))
}

// Route returns the series of one route, resolved once.
func (m *Metrics) Route(route string) *RouteMetrics {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	r := m.routes[route]
	m.mu.RUnlock()
	if r != nil {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.routes[route]; r != nil {
		return r
	}
	r = &RouteMetrics{
		m:        m,
		route:    route,
		accepted: m.accepted.WithLabelValues(route),
		ingest:   m.ingestDur.WithLabelValues(route),
		codes:    make(map[int]prometheus.Counter),
	}
	m.routes[route] = r
	return r
}

// MessageAccepted counts a message durably accepted on route.
func (m *Metrics) MessageAccepted(route string) { m.Route(route).Accepted() }

// ObserveIngest records an answer to a route's caller: its HTTP status
// code, and d, the time from receiving the request to answering it; see
// RouteMetrics.Answered.
func (m *Metrics) ObserveIngest(route string, code int, d time.Duration) {
	m.Route(route).Answered(code, d)
}

// SetQueueDepth sets how many deliveries of target are in state (due,
// scheduled, waiting, running, dead).
func (m *Metrics) SetQueueDepth(target, state string, n int) {
	if m == nil {
		return
	}
	m.queueDepth.WithLabelValues(target, state).Set(float64(n))
}

// ObserveBatch records how many operations one store transaction
// committed together.
func (m *Metrics) ObserveBatch(ops int) {
	if m == nil {
		return
	}
	m.groupCommit.Observe(float64(ops))
}

// SetBreakerState sets target's breaker state: BreakerClosed,
// BreakerHalfOpen or BreakerOpen.
func (m *Metrics) SetBreakerState(target string, state int) {
	if m == nil {
		return
	}
	m.breakerState.WithLabelValues(target).Set(float64(state))
}

// StepMetrics are the series of one (route, step, target). Its methods are
// safe for concurrent use and do nothing on nil.
type StepMetrics struct {
	m   *Metrics
	key stepKey

	success, transient, permanent prometheus.Counter
	duration, latency             prometheus.Observer
	durationX, latencyX           exemplars
	succeeded, dead, skipped      prometheus.Counter
	deadLetters                   prometheus.Counter
}

// Attempt counts one attempt by outcome and observes its duration.
func (s *StepMetrics) Attempt(outcome record.Outcome, d time.Duration) {
	s.AttemptTraced(outcome, d, "")
}

// AttemptTraced is Attempt with the trace id of the attempt's (sampled)
// trace as the duration's exemplar ("" for none).
func (s *StepMetrics) AttemptTraced(outcome record.Outcome, d time.Duration, traceID string) {
	if s == nil {
		return
	}
	switch outcome {
	case record.OutcomeSuccess:
		s.success.Inc()
	case record.OutcomeTransient:
		s.transient.Inc()
	case record.OutcomePermanent:
		s.permanent.Inc()
	default:
		k := s.key
		s.m.attempts.WithLabelValues(k.route, k.step, k.target, string(outcome)).Inc()
	}
	observe(s.duration, &s.durationX, d, traceID)
}

// Delivered observes the time from accepting the message to delivering
// this step, with the trace id of the message's (sampled) trace as
// exemplar ("" for none).
func (s *StepMetrics) Delivered(d time.Duration, traceID string) {
	if s == nil {
		return
	}
	observe(s.latency, &s.latencyX, d, traceID)
}

// exemplarEvery is the least time between two exemplars of one
// histogram: a histogram keeps one exemplar per bucket, the latest, so
// more would cost the hot path and show nothing new to a scrape.
const exemplarEvery = 100 * time.Millisecond

// exemplars rations the exemplars of one histogram series.
type exemplars struct{ last atomic.Int64 } // unix nanoseconds of the last one

// take reports whether an exemplar may be attached now.
func (x *exemplars) take() bool {
	now := time.Now().UnixNano()
	last := x.last.Load()
	return now-last >= int64(exemplarEvery) && x.last.CompareAndSwap(last, now)
}

// observe records d in seconds, with a trace_id exemplar when traceID is
// set and the series had none for exemplarEvery.
func observe(o prometheus.Observer, x *exemplars, d time.Duration, traceID string) {
	if traceID != "" && x.take() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": traceID})
			return
		}
	}
	o.Observe(d.Seconds())
}

// Finished counts a delivery that reached a final status; a dead one is
// also counted in tandem_dead_letters_total.
func (s *StepMetrics) Finished(status record.DeliveryStatus) {
	if s == nil {
		return
	}
	switch status {
	case record.DeliverySucceeded:
		s.succeeded.Inc()
	case record.DeliveryDead:
		s.dead.Inc()
		s.deadLetters.Inc()
	case record.DeliverySkipped:
		s.skipped.Inc()
	default:
		k := s.key
		s.m.deliveries.WithLabelValues(k.route, k.step, k.target, string(status)).Inc()
	}
}

// RouteMetrics are the series of one route. Its methods are safe for
// concurrent use and do nothing on nil.
type RouteMetrics struct {
	m        *Metrics
	route    string
	accepted prometheus.Counter
	ingest   prometheus.Observer
	ingestX  exemplars

	mu    sync.RWMutex
	codes map[int]prometheus.Counter
}

// Accepted counts a message durably accepted on the route.
func (r *RouteMetrics) Accepted() {
	if r == nil {
		return
	}
	r.accepted.Inc()
}

// Answered counts an answer with HTTP status code and observes d, the time
// from receiving the request to answering it.
func (r *RouteMetrics) Answered(code int, d time.Duration) { r.AnsweredTraced(code, d, "") }

// AnsweredTraced is Answered with the trace id of the ingest's (sampled)
// trace as the duration's exemplar ("" for none).
func (r *RouteMetrics) AnsweredTraced(code int, d time.Duration, traceID string) {
	if r == nil {
		return
	}
	r.code(code).Inc()
	observe(r.ingest, &r.ingestX, d, traceID)
}

// Rejected counts an answer refusing a request before it reached the
// engine (400, 401, 403, 405, 413, 415, ...), with the time taken.
func (r *RouteMetrics) Rejected(code int, d time.Duration) { r.Answered(code, d) }

func (r *RouteMetrics) code(code int) prometheus.Counter {
	r.mu.RLock()
	c := r.codes[code]
	r.mu.RUnlock()
	if c != nil {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.codes[code]; c != nil {
		return c
	}
	c = r.m.answers.WithLabelValues(r.route, strconv.Itoa(code))
	r.codes[code] = c
	return c
}

// AdminRequest counts one admin API request: its method, the path
// pattern it matched (e.g. /v1/messages/{id}) and the status code.
func (m *Metrics) AdminRequest(method, pattern string, code int) {
	if m == nil {
		return
	}
	m.admin.WithLabelValues(method, pattern, strconv.Itoa(code)).Inc()
}
