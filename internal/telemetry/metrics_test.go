package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandem-run/tandem/internal/record"
)

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func compare(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestAttemptsAndDeliveries(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	m.ObserveAttempt("orders", "charge", "payments", record.OutcomeTransient, 20*time.Millisecond)
	m.ObserveAttempt("orders", "charge", "payments", record.OutcomeSuccess, 3*time.Second)
	s := m.Step("orders", "reserve", "inventory")
	s.Attempt(record.OutcomePermanent, 2*time.Millisecond)
	s.Attempt(record.Outcome("odd"), time.Millisecond)
	m.DeliveryFinished("orders", "charge", "payments", string(record.DeliverySucceeded))
	s.Finished(record.DeliveryDead)
	s.Finished(record.DeliveryCompensated)

	compare(t, reg, `
# HELP tandem_attempts_total HTTP attempts made to targets, by outcome (success, transient, permanent).
# TYPE tandem_attempts_total counter
tandem_attempts_total{outcome="permanent",route="orders",step="charge",target="payments"} 0
tandem_attempts_total{outcome="success",route="orders",step="charge",target="payments"} 1
tandem_attempts_total{outcome="transient",route="orders",step="charge",target="payments"} 1
tandem_attempts_total{outcome="odd",route="orders",step="reserve",target="inventory"} 1
tandem_attempts_total{outcome="permanent",route="orders",step="reserve",target="inventory"} 1
tandem_attempts_total{outcome="success",route="orders",step="reserve",target="inventory"} 0
tandem_attempts_total{outcome="transient",route="orders",step="reserve",target="inventory"} 0
# HELP tandem_deliveries_total Deliveries that reached a final status (succeeded, dead, skipped, ...).
# TYPE tandem_deliveries_total counter
tandem_deliveries_total{route="orders",status="dead",step="charge",target="payments"} 0
tandem_deliveries_total{route="orders",status="skipped",step="charge",target="payments"} 0
tandem_deliveries_total{route="orders",status="succeeded",step="charge",target="payments"} 1
tandem_deliveries_total{route="orders",status="compensated",step="reserve",target="inventory"} 1
tandem_deliveries_total{route="orders",status="dead",step="reserve",target="inventory"} 1
tandem_deliveries_total{route="orders",status="skipped",step="reserve",target="inventory"} 0
tandem_deliveries_total{route="orders",status="succeeded",step="reserve",target="inventory"} 0
# HELP tandem_dead_letters_total Deliveries that became dead letters (out of attempts or failed permanently).
# TYPE tandem_dead_letters_total counter
tandem_dead_letters_total{route="orders",step="charge",target="payments"} 0
tandem_dead_letters_total{route="orders",step="reserve",target="inventory"} 1
`, "tandem_attempts_total", "tandem_deliveries_total", "tandem_dead_letters_total")

	compare(t, reg, `
# HELP tandem_attempt_duration_seconds Duration of HTTP attempts to targets, response body included.
# TYPE tandem_attempt_duration_seconds histogram
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.001"} 0
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.0025"} 0
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.005"} 0
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.01"} 0
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.025"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.05"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.1"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.25"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="0.5"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="1"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="2.5"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="5"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="10"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="30"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="charge",target="payments",le="+Inf"} 2
tandem_attempt_duration_seconds_sum{route="orders",step="charge",target="payments"} 3.02
tandem_attempt_duration_seconds_count{route="orders",step="charge",target="payments"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.001"} 1
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.0025"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.005"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.01"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.025"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.05"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.1"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.25"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="0.5"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="1"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="2.5"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="5"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="10"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="30"} 2
tandem_attempt_duration_seconds_bucket{route="orders",step="reserve",target="inventory",le="+Inf"} 2
tandem_attempt_duration_seconds_sum{route="orders",step="reserve",target="inventory"} 0.003
tandem_attempt_duration_seconds_count{route="orders",step="reserve",target="inventory"} 2
`, "tandem_attempt_duration_seconds")
}

func TestRouteMetrics(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	m.MessageAccepted("orders")
	m.MessageAccepted("orders")
	m.ObserveIngest("orders", 202, 4*time.Millisecond)
	m.ObserveIngest("orders", 202, 6*time.Millisecond)
	m.Route("signup").Answered(207, 2*time.Second)
	compare(t, reg, `
# HELP tandem_messages_accepted_total Messages durably accepted on a route.
# TYPE tandem_messages_accepted_total counter
tandem_messages_accepted_total{route="orders"} 2
tandem_messages_accepted_total{route="signup"} 0
# HELP tandem_route_answers_total Answers given to callers of a route, by HTTP status code.
# TYPE tandem_route_answers_total counter
tandem_route_answers_total{code="202",route="orders"} 2
tandem_route_answers_total{code="207",route="signup"} 1
`, "tandem_messages_accepted_total", "tandem_route_answers_total")
	if n := testutil.CollectAndCount(m.ingestDur); n != 2 {
		t.Errorf("ingest duration series = %d, want 2", n)
	}
}

func TestGaugesAndGroupCommit(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	m.SetQueueDepth("payments", "due", 12)
	m.SetQueueDepth("payments", "due", 7)
	m.SetQueueDepth("payments", "dead", 1)
	m.SetBreakerState("payments", BreakerOpen)
	for _, n := range []int{1, 3, 100} {
		m.ObserveBatch(n)
	}
	compare(t, reg, `
# HELP tandem_queue_depth Deliveries per target and state (due, scheduled, waiting, running, dead).
# TYPE tandem_queue_depth gauge
tandem_queue_depth{state="dead",target="payments"} 1
tandem_queue_depth{state="due",target="payments"} 7
# HELP tandem_breaker_state Circuit breaker state per target: 0 closed, 1 half-open, 2 open, 3 disabled.
# TYPE tandem_breaker_state gauge
tandem_breaker_state{target="payments"} 2
# HELP tandem_group_commit_ops Operations committed together in one store transaction.
# TYPE tandem_group_commit_ops histogram
tandem_group_commit_ops_bucket{le="1"} 1
tandem_group_commit_ops_bucket{le="2"} 1
tandem_group_commit_ops_bucket{le="4"} 2
tandem_group_commit_ops_bucket{le="8"} 2
tandem_group_commit_ops_bucket{le="16"} 2
tandem_group_commit_ops_bucket{le="32"} 2
tandem_group_commit_ops_bucket{le="64"} 2
tandem_group_commit_ops_bucket{le="128"} 3
tandem_group_commit_ops_bucket{le="256"} 3
tandem_group_commit_ops_bucket{le="512"} 3
tandem_group_commit_ops_bucket{le="1024"} 3
tandem_group_commit_ops_bucket{le="+Inf"} 3
tandem_group_commit_ops_sum 104
tandem_group_commit_ops_count 3
`, "tandem_queue_depth", "tandem_breaker_state", "tandem_group_commit_ops")
}

func TestMetricsLint(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	m.ObserveAttempt("r", "s", "t", record.OutcomeSuccess, time.Millisecond)
	m.DeliveryFinished("r", "s", "t", "succeeded")
	m.ObserveIngest("r", 200, time.Millisecond)
	m.SetQueueDepth("t", "due", 1)
	m.SetBreakerState("t", BreakerDisabled)
	m.ObserveBatch(1)
	m.Step("r", "s", "t").AttemptTraced(record.OutcomeSuccess, time.Millisecond, "4bf92f3577b34da6a3ce929d0e0e4736")
	m.Step("r", "s", "t").Delivered(time.Second, "4bf92f3577b34da6a3ce929d0e0e4736")
	m.Route("r").AnsweredTraced(202, time.Millisecond, "4bf92f3577b34da6a3ce929d0e0e4736")
	m.Route("r").Rejected(413, time.Millisecond)
	m.AdminRequest("GET", "/v1/messages/{id}", 200)
	m.Target("t").Postponed(PostponeLease)
	m.NewQueueWatch(&fakeStats{}, []string{"t"}, nil)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

func TestNoAllocationsOnHotPaths(t *testing.T) {
	m, _ := newTestMetrics(t)
	s := m.Step("orders", "charge", "payments")
	r := m.Route("orders")
	m.ObserveIngest("orders", 202, time.Millisecond) // resolve the code once
	tests := []struct {
		name string
		fn   func()
	}{
		{"StepMetrics.Attempt", func() { s.Attempt(record.OutcomeTransient, time.Millisecond) }},
		{"StepMetrics.Finished", func() { s.Finished(record.DeliveryDead) }},
		{"Metrics.ObserveAttempt", func() {
			m.ObserveAttempt("orders", "charge", "payments", record.OutcomeSuccess, time.Millisecond)
		}},
		{"RouteMetrics.Answered", func() { r.Answered(202, time.Millisecond) }},
		{"Metrics.ObserveIngest", func() { m.ObserveIngest("orders", 202, time.Millisecond) }},
		{"Metrics.MessageAccepted", func() { m.MessageAccepted("orders") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%s allocates %v times per call, want 0", tt.name, n)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	m, _ := newTestMetrics(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				m.ObserveAttempt("r", "s", "t", record.OutcomeSuccess, time.Millisecond)
				m.ObserveIngest("r", 200+i, time.Millisecond)
			}
		})
	}
	wg.Wait()
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("r", "s", "t", "success")); got != 1600 {
		t.Errorf("attempts = %v, want 1600", got)
	}
	if n := testutil.CollectAndCount(m.answers); n != 8 {
		t.Errorf("answer series = %d, want 8", n)
	}
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.ObserveAttempt("r", "s", "t", record.OutcomeSuccess, time.Millisecond)
	m.DeliveryFinished("r", "s", "t", "dead")
	m.MessageAccepted("r")
	m.ObserveIngest("r", 200, time.Millisecond)
	m.SetQueueDepth("t", "due", 1)
	m.SetBreakerState("t", BreakerOpen)
	m.ObserveBatch(3)
	m.Step("r", "s", "t").Attempt(record.OutcomeSuccess, 0)
	m.Route("r").Accepted()
}

func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	t.Parallel()
	m1, reg := newTestMetrics(t)
	m2 := NewMetrics(reg)
	if err := m2.Err(); err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
	m1.MessageAccepted("orders")
	m2.MessageAccepted("orders")
	compare(t, reg, `
# HELP tandem_messages_accepted_total Messages durably accepted on a route.
# TYPE tandem_messages_accepted_total counter
tandem_messages_accepted_total{route="orders"} 2
`, "tandem_messages_accepted_total")
	if m := NewMetrics(nil); m.Err() != nil {
		t.Errorf("NewMetrics(nil): %v", m.Err())
	}
}

func TestNewMetricsConflict(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	foreign := prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_attempts_total", Help: "not ours"})
	if err := reg.Register(foreign); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(reg)
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "tandem_attempts_total") {
		t.Errorf("Err() = %v, want the conflict on tandem_attempts_total", err)
	}
	// The rest still works.
	m.ObserveAttempt("r", "s", "t", record.OutcomeSuccess, time.Millisecond)
	m.MessageAccepted("r")
	if n, err := testutil.GatherAndCount(reg, "tandem_messages_accepted_total"); err != nil || n != 1 {
		t.Errorf("accepted series = %d (%v), want 1", n, err)
	}
}

func TestRegistryAndHandler(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	m := NewMetrics(reg)
	m.MessageAccepted("orders")
	srv := httptest.NewServer(Handler(reg))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"go_goroutines ",
		"process_cpu_seconds_total ",
		`tandem_messages_accepted_total{route="orders"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
