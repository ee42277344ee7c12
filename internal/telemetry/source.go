package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceVecs are the per-source series (internal/source).
type sourceVecs struct {
	events *prometheus.CounterVec   // source, event
	ackDur *prometheus.HistogramVec // source
	gauges *prometheus.GaugeVec     // source, of: lag, in_flight, up
}

// Gauges of tandem_source (label "of").
const (
	SourceLag      = "lag"       // what the broker holds not yet delivered (-1: unknown)
	SourceInFlight = "in_flight" // received, not yet settled
	SourceUp       = "up"        // 1 while consuming, else 0
)

// Events of tandem_source_messages_total.
const (
	SourceReceived     = "received"      // delivered by the broker (redeliveries included)
	SourceAccepted     = "accepted"      // committed as a message, then acknowledged
	SourceDeadLettered = "dead_lettered" // recorded as a dead letter, then acknowledged
	SourceRedelivered  = "redelivered"   // delivered again by the broker
)

func newSourceVecs() *sourceVecs {
	return &sourceVecs{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_source_messages_total",
			Help: "Broker messages per source, by event (received, accepted, dead_lettered, redelivered).",
		}, []string{"source", "event"}),
		ackDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_source_ack_latency_seconds",
			Help:    "Time from receiving a broker message to acknowledging it (commit included).",
			Buckets: DurationBuckets,
		}, []string{"source"}),
		gauges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_source",
			Help: "Per source: lag (messages the broker holds not yet delivered; -1 when the broker cannot say), in_flight (received, not settled), up (1 while consuming).",
		}, []string{"source", "of"}),
	}
}

func (v *sourceVecs) register(reg prometheus.Registerer, errs *[]error) {
	v.events = register(reg, v.events, errs)
	v.ackDur = register(reg, v.ackDur, errs)
	v.gauges = register(reg, v.gauges, errs)
}

// SourceMetrics are the series of one source, resolved once. Its methods
// are safe for concurrent use and do nothing on nil.
type SourceMetrics struct {
	received, accepted, dead, redelivered prometheus.Counter
	ack                                   prometheus.Observer
	lag, inFlight, up                     prometheus.Gauge
}

// Source returns the series of source name.
func (m *Metrics) Source(name string) *SourceMetrics {
	if m == nil {
		return nil
	}
	ev := m.src.events
	return &SourceMetrics{
		received:    ev.WithLabelValues(name, SourceReceived),
		accepted:    ev.WithLabelValues(name, SourceAccepted),
		dead:        ev.WithLabelValues(name, SourceDeadLettered),
		redelivered: ev.WithLabelValues(name, SourceRedelivered),
		ack:         m.src.ackDur.WithLabelValues(name),
		lag:         m.src.gauges.WithLabelValues(name, SourceLag),
		inFlight:    m.src.gauges.WithLabelValues(name, SourceInFlight),
		up:          m.src.gauges.WithLabelValues(name, SourceUp),
	}
}

// Received counts a broker message received.
func (s *SourceMetrics) Received() {
	if s != nil {
		s.received.Inc()
	}
}

// Accepted counts a broker message committed.
func (s *SourceMetrics) Accepted() {
	if s != nil {
		s.accepted.Inc()
	}
}

// DeadLettered counts a broker message recorded as a dead letter.
func (s *SourceMetrics) DeadLettered() {
	if s != nil {
		s.dead.Inc()
	}
}

// Redelivered counts a broker message delivered more than once.
func (s *SourceMetrics) Redelivered() {
	if s != nil {
		s.redelivered.Inc()
	}
}

// ObserveAck records the time from receipt to acknowledgement.
func (s *SourceMetrics) ObserveAck(d time.Duration) {
	if s != nil {
		s.ack.Observe(d.Seconds())
	}
}

// Lag sets what the broker holds not yet delivered (-1: unknown).
func (s *SourceMetrics) Lag(n int64) {
	if s != nil {
		s.lag.Set(float64(n))
	}
}

// InFlight moves the count of messages received and not settled by d.
func (s *SourceMetrics) InFlight(d int) {
	if s != nil {
		s.inFlight.Add(float64(d))
	}
}

// Up sets whether the source is consuming.
func (s *SourceMetrics) Up(up bool) {
	if s != nil {
		v := 0.0
		if up {
			v = 1
		}
		s.up.Set(v)
	}
}
