package telemetry

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTargetMetrics(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	tm := m.Target("payments")
	if m.Target("payments") != tm {
		t.Fatal("Target resolved twice")
	}
	tm.InFlight(3)
	tm.InFlight(-1)
	tm.BreakerState(BreakerOpen)
	tm.Postponed(PostponeBreakerOpen)
	tm.Postponed(PostponeBreakerOpen)
	tm.Postponed(PostponePaused)
	compare(t, reg, `
# HELP tandem_breaker_state Circuit breaker state per target: 0 closed, 1 half-open, 2 open, 3 disabled.
# TYPE tandem_breaker_state gauge
tandem_breaker_state{target="payments"} 2
# HELP tandem_deliveries_postponed_total Claimed deliveries given back without an attempt, by reason (breaker_open, paused, rate_limit, shutdown, lease).
# TYPE tandem_deliveries_postponed_total counter
tandem_deliveries_postponed_total{reason="breaker_open",target="payments"} 2
tandem_deliveries_postponed_total{reason="lease",target="payments"} 0
tandem_deliveries_postponed_total{reason="paused",target="payments"} 1
tandem_deliveries_postponed_total{reason="rate_limit",target="payments"} 0
tandem_deliveries_postponed_total{reason="shutdown",target="payments"} 0
# HELP tandem_target_in_flight Deliveries of a target claimed by this process and not yet recorded (at most its concurrency).
# TYPE tandem_target_in_flight gauge
tandem_target_in_flight{target="payments"} 2
`, "tandem_breaker_state", "tandem_deliveries_postponed_total", "tandem_target_in_flight")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	var nilM *Metrics
	nt := nilM.Target("x")
	nt.InFlight(1)
	nt.BreakerState(BreakerOpen)
	nt.Postponed(PostponeShutdown)
}

func TestTargetMetricsNoAllocations(t *testing.T) {
	m, _ := newTestMetrics(t)
	tm := m.Target("payments")
	for name, fn := range map[string]func(){
		"InFlight":     func() { tm.InFlight(1) },
		"BreakerState": func() { tm.BreakerState(BreakerClosed) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("TargetMetrics.%s allocates %v times per call, want 0", name, n)
		}
	}
}
