package engine

import (
	"net/http"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/contract"
	"github.com/tandem-run/tandem/internal/target"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// endpoint is Endpoint(tc) with the target's host pool (on the engine's
// clock) and its contract, whose violations are counted.
func endpoint(e *Engine, tc *config.Target) *target.Endpoint {
	ep := Endpoint(tc)
	if len(tc.URLs) > 0 {
		ep.URL = tc.URLs[0]
		ep.Hosts = target.NewHostPool(target.HostPoolOptions{
			URLs:     tc.URLs,
			Balance:  tc.Balance,
			Failures: tc.Eject.Failures,
			CoolOff:  tc.Eject.CoolOff.D(),
			Now:      e.opts.Now,
		})
	}
	if op := tc.Contract.Op(); op != nil {
		ep.Contract = &countedContract{op: op, target: tc.Name, metrics: e.metrics}
	}
	return ep
}

// countedContract counts the violations of a target's contract.
type countedContract struct {
	op      *contract.Operation
	target  string
	metrics *telemetry.Metrics
}

func (c *countedContract) CheckRequest(h http.Header, body []byte) error {
	err := c.op.CheckRequest(h, body)
	if err != nil {
		c.metrics.ContractViolation(c.target, "request")
	}
	return err
}

func (c *countedContract) CheckResponse(status int, h http.Header, body []byte, truncated bool) error {
	err := c.op.CheckResponse(status, h, body, truncated)
	if err != nil {
		c.metrics.ContractViolation(c.target, "response")
	}
	return err
}

// hostSamples reads every host of the targets in force, for the
// tandem_target_host_* series.
func (e *Engine) hostSamples() []telemetry.HostSample {
	g := e.cur()
	if g == nil {
		return nil
	}
	var out []telemetry.HostSample
	for _, name := range sortedNames(g.targets) {
		for _, h := range g.targets[name].endpoint.Hosts.Snapshot() {
			out = append(out, telemetry.HostSample{
				Target: name, Host: h.URL, Up: h.State != target.HostEjected, InFlight: h.InFlight,
				Attempts: h.Attempts, Failures: h.FailuresTotal, Ejections: h.Ejections,
			})
		}
	}
	return out
}

// withViolation adds an answer's contract violation to an attempt's
// error text.
func withViolation(text string, res *target.Result) string {
	if res.Violation == "" {
		return text
	}
	if text == "" {
		return res.Violation
	}
	return text + "; " + res.Violation
}
