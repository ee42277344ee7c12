package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Reasons for tandem_deliveries_postponed_total.
const (
	PostponeBreakerOpen = "breaker_open" // the target's circuit breaker is open
	PostponePaused      = "paused"       // the target asked to wait (Retry-After)
	PostponeRateLimit   = "rate_limit"   // no token within the hold limit
	PostponeShutdown    = "shutdown"     // shutdown cut the attempt short
)

// PostponeReasons are every reason of tandem_deliveries_postponed_total,
// so each target's series exist at 0 from the start.
var PostponeReasons = []string{PostponeBreakerOpen, PostponePaused, PostponeRateLimit, PostponeShutdown, PostponeLease}

// PostponeLease: the claim's lease no longer covered a whole attempt.
const PostponeLease = "lease"

// TargetMetrics are the series of one target, resolved once. Its methods
// are safe for concurrent use and do nothing on nil.
type TargetMetrics struct {
	m        *Metrics
	target   string
	inFlight prometheus.Gauge
	breaker  prometheus.Gauge
}

// Target returns the series of one target, resolved once: keep it and
// call its methods on hot paths.
func (m *Metrics) Target(name string) *TargetMetrics {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	t := m.targets[name]
	m.mu.RUnlock()
	if t != nil {
		return t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.targets[name]; t != nil {
		return t
	}
	t = &TargetMetrics{
		m:        m,
		target:   name,
		inFlight: m.inFlight.WithLabelValues(name),
		breaker:  m.breakerState.WithLabelValues(name),
	}
	for _, r := range PostponeReasons {
		m.postponed.WithLabelValues(name, r) // the series exists at 0
	}
	m.targets[name] = t
	return t
}

// InFlight adds delta to the target's deliveries in flight.
func (t *TargetMetrics) InFlight(delta int) {
	if t == nil {
		return
	}
	t.inFlight.Add(float64(delta))
}

// BreakerState sets the target's breaker state: BreakerClosed,
// BreakerHalfOpen, BreakerOpen or BreakerDisabled.
func (t *TargetMetrics) BreakerState(state int) {
	if t == nil {
		return
	}
	t.breaker.Set(float64(state))
}

// Postponed counts a claimed delivery given back without an attempt, for
// reason (PostponeBreakerOpen, PostponePaused, PostponeRateLimit,
// PostponeShutdown). Postponements are rare, so the label lookup is fine.
func (t *TargetMetrics) Postponed(reason string) {
	if t == nil {
		return
	}
	t.m.postponed.WithLabelValues(t.target, reason).Inc()
}
