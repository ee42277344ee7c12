package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
)

// targetSpec is one target of the harness's config.
type targetSpec struct {
	name        string
	maxAttempts int
	declinePct  int // messages the target refuses for good (422)
}

// The timeouts of every target: a short lease (timeout + margin) keeps
// the wait for a killed process's deliveries short, so a run drains fast.
const (
	targetTimeout = 800 * time.Millisecond
	leaseMargin   = time.Second
)

// targetSpecs are the harness's targets. Few attempts on b and shipping
// make dead letters, which the schedule replays; shipping refuses some
// orders for good, which makes the saga compensate.
var targetSpecs = []targetSpec{
	{name: "a", maxAttempts: 8},
	{name: "b", maxAttempts: 4},
	{name: "c", maxAttempts: 8},
	{name: "payments", maxAttempts: 6},
	{name: "refunds", maxAttempts: 12},
	{name: "inventory", maxAttempts: 6},
	{name: "shipping", maxAttempts: 4, declinePct: 15},
}

// routes are the harness's routes: a plain fan-out with a dependent step,
// and a saga whose last step can fail for good.
var routes = []history.Route{
	{Name: "orders", Steps: []history.Step{
		{Name: "a"}, {Name: "b"}, {Name: "c", After: []string{"a"}},
	}},
	{Name: "trips", Saga: true, Steps: []history.Step{
		{Name: "charge", Compensate: true},
		{Name: "reserve", After: []string{"charge"}, Compensate: true},
		{Name: "ship", After: []string{"reserve"}},
	}},
}

// routeTargets says which target each step (and compensation) calls.
var routeTargets = map[string]string{
	"a": "a", "b": "b", "c": "c",
	"charge": "payments", "charge.compensate": "refunds",
	"reserve": "inventory", "reserve.compensate": "inventory",
	"ship": "shipping",
}

// renderConfig writes the tandem.yaml of one incarnation: store, targets
// behind their proxies (addrs by target name), and the sender header that
// names the incarnation to the targets.
func renderConfig(driver, dsn string, addrs map[string]string, replica, gen int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server: { shutdown_grace: 3s }\nstore: { driver: %s, dsn: %q }\nlog: { format: json, level: warn }\ntargets:\n", driver, dsn)
	for _, t := range targetSpecs {
		fmt.Fprintf(&b, "  %s:\n", t.name)
		fmt.Fprintf(&b, "    url: \"http://%s/%s\"\n", addrs[t.name], t.name)
		fmt.Fprintf(&b, "    headers: { %s: \"%d-%d\" }\n", senderHeader, replica, gen)
		fmt.Fprintf(&b, "    timeout: { connect: 300ms, total: %s, lease_margin: %s }\n", targetTimeout, leaseMargin)
		fmt.Fprintf(&b, "    retry: { max_attempts: %d, initial: 20ms, max: 400ms }\n", t.maxAttempts)
		b.WriteString("    breaker: { failure_ratio: 0.7, min_requests: 30, window: 5s, open_for: 1s }\n")
		b.WriteString("    concurrency: 16\n")
	}
	b.WriteString("routes:\n")
	for _, r := range routes {
		fmt.Fprintf(&b, "  - name: %s\n    path: /%s\n", r.Name, r.Name)
		if r.Saga {
			b.WriteString("    saga: true\n")
		}
		b.WriteString("    steps:\n")
		for _, s := range r.Steps {
			fmt.Fprintf(&b, "      - name: %s\n        target: %s\n", s.Name, routeTargets[s.Name])
			if len(s.After) > 0 {
				fmt.Fprintf(&b, "        after: [%s]\n", strings.Join(s.After, ", "))
			}
			if s.Compensate {
				comp := s.Name + history.CompensationSuffix
				fmt.Fprintf(&b, "        compensate: { target: %s, path: /undo }\n", routeTargets[comp])
			}
		}
	}
	return b.String()
}
