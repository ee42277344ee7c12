package telemetry

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// HostSample is one host of a target with several urls, read at scrape
// time (tandem_target_host_*).
type HostSample struct {
	Target, Host string
	Up           bool // not ejected
	InFlight     int
	Attempts     int64
	Failures     int64
	Ejections    int64
}

// strategyVecs are the series of hosts, caches, contracts and reloads.
type strategyVecs struct {
	cache      *prometheus.CounterVec // route, result
	evictions  *prometheus.CounterVec // route
	cacheBytes *prometheus.GaugeVec   // route
	violations *prometheus.CounterVec // target, kind
	reloads    *prometheus.CounterVec // result
	version    prometheus.Gauge
	hosts      *hostCollector
}

func newStrategyVecs() *strategyVecs {
	return &strategyVecs{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_cache_requests_total",
			Help: "Requests of routes with a response cache, by result (hit, miss).",
		}, []string{"route", "result"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_cache_evictions_total",
			Help: "Cached answers dropped to stay within cache.max_bytes.",
		}, []string{"route"}),
		cacheBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_cache_bytes",
			Help: "Bytes held by a route's response cache.",
		}, []string{"route"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_contract_violations_total",
			Help: "Requests (never sent) and answers that broke a target's contract, by kind (request, response).",
		}, []string{"target", "kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_config_reloads_total",
			Help: "Config reloads, by result (ok, error).",
		}, []string{"result"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_config_version",
			Help: "Version of the config in force: 1 at start, one more per successful reload.",
		}),
		hosts: &hostCollector{
			up: prometheus.NewDesc("tandem_target_host_up",
				"Whether a host of a target with several urls takes attempts (1) or is ejected (0).", []string{"target", "host"}, nil),
			inFlight: prometheus.NewDesc("tandem_target_host_in_flight",
				"Attempts in flight on a host of a target with several urls.", []string{"target", "host"}, nil),
			attempts: prometheus.NewDesc("tandem_target_host_attempts_total",
				"Attempts sent to a host of a target with several urls.", []string{"target", "host"}, nil),
			failures: prometheus.NewDesc("tandem_target_host_failures_total",
				"Attempts that showed a host down (transport error, timeout, 5xx).", []string{"target", "host"}, nil),
			ejections: prometheus.NewDesc("tandem_target_host_ejections_total",
				"Times a host was ejected by the passive health check.", []string{"target", "host"}, nil),
		},
	}
}

func (v *strategyVecs) register(reg prometheus.Registerer, errs *[]error) {
	v.cache = register(reg, v.cache, errs)
	v.evictions = register(reg, v.evictions, errs)
	v.cacheBytes = register(reg, v.cacheBytes, errs)
	v.violations = register(reg, v.violations, errs)
	v.reloads = register(reg, v.reloads, errs)
	v.version = register(reg, v.version, errs)
	v.hosts = register(reg, v.hosts, errs)
}

// hostCollector reads the hosts at scrape time from the function the
// engine set.
type hostCollector struct {
	up, inFlight, attempts, failures, ejections *prometheus.Desc
	samples                                     atomic.Pointer[func() []HostSample]
}

// Describe sends the descriptors.
func (c *hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.inFlight, c.attempts, c.failures, c.ejections} {
		ch <- d
	}
}

// Collect reads every host.
func (c *hostCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.samples.Load()
	if f == nil {
		return
	}
	for _, s := range (*f)() {
		up := 0.0
		if s.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, s.Target, s.Host)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(s.InFlight), s.Target, s.Host)
		ch <- prometheus.MustNewConstMetric(c.attempts, prometheus.CounterValue, float64(s.Attempts), s.Target, s.Host)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures), s.Target, s.Host)
		ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(s.Ejections), s.Target, s.Host)
	}
}

// SetHosts makes f the source of the tandem_target_host_* series.
func (m *Metrics) SetHosts(f func() []HostSample) {
	if m == nil {
		return
	}
	m.strat.hosts.samples.Store(&f)
}

// CacheResult counts a request of a cached route: hit or miss.
func (m *Metrics) CacheResult(route string, hit bool) {
	if m == nil {
		return
	}
	r := "miss"
	if hit {
		r = "hit"
	}
	m.strat.cache.WithLabelValues(route, r).Inc()
}

// CacheSize counts answers dropped from a route's cache, and sets the
// bytes it holds.
func (m *Metrics) CacheSize(route string, bytes int64, evicted int) {
	if m == nil {
		return
	}
	if evicted > 0 {
		m.strat.evictions.WithLabelValues(route).Add(float64(evicted))
	}
	m.strat.cacheBytes.WithLabelValues(route).Set(float64(bytes))
}

// ContractViolation counts a request or answer that broke a target's
// contract; kind is "request" or "response".
func (m *Metrics) ContractViolation(target, kind string) {
	if m == nil {
		return
	}
	m.strat.violations.WithLabelValues(target, kind).Inc()
}

// ConfigReload counts a reload and, when it succeeded, sets the version.
func (m *Metrics) ConfigReload(ok bool, version int64) {
	if m == nil {
		return
	}
	if !ok {
		m.strat.reloads.WithLabelValues("error").Inc()
		return
	}
	m.strat.reloads.WithLabelValues("ok").Inc()
	m.strat.version.Set(float64(version))
}

// ConfigVersion sets the version of the config in force.
func (m *Metrics) ConfigVersion(version int64) {
	if m == nil {
		return
	}
	m.strat.version.Set(float64(version))
}
