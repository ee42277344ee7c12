package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Conversions from the records of the store and the engine's live view to
// the answers of package api.

func summaryOf(m record.Message) tapi.MessageSummary {
	return tapi.MessageSummary{
		ID: m.ID, Route: m.Route, Status: string(m.Status),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, IdempotencyKey: m.IdempotencyKey,
		TraceID: m.TraceID(),
	}
}

func detailOf(md *record.MessageDetail) *tapi.MessageDetail {
	m := md.Message
	out := &tapi.MessageDetail{
		ID: m.ID, Route: m.Route, Status: string(m.Status),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, IdempotencyKey: m.IdempotencyKey,
		TraceID:    m.TraceID(),
		Body:       jsonOrNull(m.Body),
		Deliveries: make([]tapi.Delivery, 0, len(md.Deliveries)),
	}
	ds := record.GraphOrder(md.Deliveries)
	comp := map[string]string{}
	for _, d := range ds {
		if base, ok := record.Compensates(d.Step); ok {
			comp[base] = d.Step
		}
	}
	for _, d := range ds {
		v := deliveryOf(d, md.Attempts[d.ID])
		if base, ok := record.Compensates(d.Step); ok {
			v.Compensates = base
		}
		v.Compensation = comp[d.Step]
		out.Deliveries = append(out.Deliveries, v)
	}
	out.Timeline = timelineOf(ds, md.Attempts)
	return out
}

// timelineOf lists what happened to a message's deliveries, oldest first;
// events at the same instant keep the dependency order of ds.
func timelineOf(ds []record.Delivery, attempts map[string][]record.Attempt) []tapi.TimelineEvent {
	out := []tapi.TimelineEvent{}
	for _, d := range ds {
		for _, a := range attempts[d.ID] {
			detail := fmt.Sprintf("attempt %d: %s (%s, %d ms)", a.N, attemptResult(a), a.Outcome, a.Duration.Milliseconds())
			out = append(out, tapi.TimelineEvent{At: a.StartedAt, Step: d.Step, Event: "attempt", Detail: detail})
		}
		switch d.Status {
		case record.DeliverySkipped, record.DeliveryCancelled, record.DeliveryCompensating, record.DeliveryCompensated:
			out = append(out, tapi.TimelineEvent{At: d.UpdatedAt, Step: d.Step, Event: string(d.Status), Detail: d.LastError})
		case record.DeliveryDead:
			detail := d.LastError
			if base, ok := record.Compensates(d.Step); ok {
				detail += "; the compensation failed: a person must undo step " + base + ", or replay this dead letter"
			}
			out = append(out, tapi.TimelineEvent{At: d.UpdatedAt, Step: d.Step, Event: "dead", Detail: detail})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func attemptResult(a record.Attempt) string {
	switch {
	case a.HTTPStatus != 0 && strings.HasPrefix(a.Error, fmt.Sprintf("status %d", a.HTTPStatus)):
		return "HTTP " + strings.TrimPrefix(a.Error, "status ") // "HTTP 409 Conflict"
	case a.HTTPStatus != 0 && a.Error != "":
		return fmt.Sprintf("HTTP %d: %s", a.HTTPStatus, a.Error)
	case a.HTTPStatus != 0:
		return fmt.Sprintf("HTTP %d", a.HTTPStatus)
	case a.Error != "":
		return a.Error
	}
	return "no answer"
}

func deliveryOf(d record.Delivery, attempts []record.Attempt) tapi.Delivery {
	v := tapi.Delivery{
		ID: d.ID, Step: d.Step, Target: d.Target, Status: string(d.Status),
		After: nonNil(d.After), Required: d.Required,
		Attempts:  make([]tapi.Attempt, 0, len(attempts)),
		LastError: d.LastError, Replays: d.Replays,
	}
	for _, a := range attempts {
		v.Attempts = append(v.Attempts, tapi.Attempt{
			N: a.N, StartedAt: a.StartedAt, DurationMS: a.Duration.Milliseconds(),
			HTTPStatus: a.HTTPStatus, Outcome: string(a.Outcome), Error: a.Error,
		})
	}
	if (d.Status == record.DeliveryScheduled || d.Status == record.DeliveryRunning) && !d.NextAttemptAt.IsZero() {
		t := d.NextAttemptAt
		v.NextAttemptAt = &t
	}
	if d.ResponseStatus != 0 || len(d.ResponseBody) > 0 {
		v.Response = &tapi.TargetResponse{HTTPStatus: d.ResponseStatus, Body: jsonOrNull(d.ResponseBody)}
	}
	return v
}

func deadLetterOf(d record.Delivery) tapi.DeadLetter {
	return tapi.DeadLetter{
		ID: d.ID, MessageID: d.MessageID, Route: d.Route, Step: d.Step, Target: d.Target,
		Attempts: d.Attempts, LastError: d.LastError, UpdatedAt: d.UpdatedAt,
	}
}

func replayOf(res *store.DeliveryReplayResult) *tapi.ReplayResult {
	r := &tapi.ReplayResult{Replayed: len(res.Replayed), IDs: make([]string, 0, len(res.Replayed))}
	for _, d := range res.Replayed {
		r.IDs = append(r.IDs, d.ID)
	}
	for _, x := range res.Refused {
		r.Skipped = append(r.Skipped, tapi.ReplaySkip{ID: x.DeliveryID, Reason: x.Reason})
	}
	return r
}

func targetOf(t *config.Target, name string, st store.TargetStats) tapi.Target {
	method := t.Method
	if method == "" {
		method = "POST"
	}
	return tapi.Target{
		Name: name, URL: redactURL(t.Hosts()[0]), Method: method, // hosts.go
		Queue:       tapi.Queue{Due: st.Due, Scheduled: st.Scheduled, Waiting: st.Waiting, Running: st.Running, Dead: st.Dead},
		Concurrency: t.Concurrency, ConcurrencyLimit: t.Concurrency,
	}
}

// withHealth fills in the engine's live view of the target.
func withHealth(v *tapi.Target, h *engine.TargetHealth) {
	v.InFlight, v.Concurrency, v.ConcurrencyLimit = h.InFlight, h.Concurrency, h.ConcurrencyLimit
	if !h.PausedUntil.IsZero() {
		v.PausedUntil = &h.PausedUntil
	}
	v.Hosts = hostsOf(h.Hosts) // hosts.go
	b := h.Breaker
	v.Breaker = &tapi.Breaker{
		State: b.State.String(), FailureRatio: b.FailureRatio, Requests: b.Requests, Failures: b.Failures, Probes: b.Probes,
		Threshold: b.Settings.FailureRatio, MinRequests: b.Settings.MinRequests,
		WindowMS: b.Settings.Window.Milliseconds(), OpenForMS: b.Settings.OpenFor.Milliseconds(),
	}
	if h.BreakerDisabled {
		v.Breaker = &tapi.Breaker{State: "disabled"}
	}
	if !b.OpenUntil.IsZero() {
		v.Breaker.NextProbeAt = &b.OpenUntil
	}
	if l := h.Limiter; l.Enabled {
		v.RateLimit = &tapi.Limiter{
			PerSecond: l.PerSecond, Burst: l.Burst, Shared: l.Shared, Replicas: l.Replicas,
			EffectivePerSecond: l.EffectivePerSecond, EffectiveBurst: l.EffectiveBurst,
			Tokens: math.Round(l.Tokens*1000) / 1000,
		}
	}
}

// redactURL hides what may be a secret in a target URL: the userinfo and
// every query value.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}

// jsonOrNull embeds a body: its JSON, a JSON string, or null when empty.
func jsonOrNull(b []byte) json.RawMessage {
	if v := record.JSONBody(b); v != nil {
		return v
	}
	return json.RawMessage("null")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// routesOf lists the engine's routes; [] when there are none.
func routesOf(rs []engine.RouteInfo) tapi.RouteList {
	out := tapi.RouteList{Routes: make([]tapi.RouteInfo, 0, len(rs))}
	for _, r := range rs {
		out.Routes = append(out.Routes, tapi.RouteInfo{
			Name: r.Name, Method: r.Method, Path: r.Path, Respond: r.Respond,
			Durable: r.Durable, Saga: r.Saga, Steps: r.Steps, Targets: r.Targets,
		})
	}
	return out
}
