package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// The JSON shapes of the admin API (DESIGN.md "Answers"). Every list field
// is sent as [] rather than null, and every documented field is present.

// messageSummary is one row of GET /v1/messages.
type messageSummary struct {
	ID             string               `json:"id"`
	Route          string               `json:"route"`
	Status         record.MessageStatus `json:"status" enum:"accepted,running,succeeded,partially_succeeded,failed,compensated"`
	CreatedAt      time.Time            `json:"created_at"`
	UpdatedAt      time.Time            `json:"updated_at"`
	IdempotencyKey string               `json:"idempotency_key" doc:"The inbound Idempotency-Key; empty when none was sent."`
}

// messageList is the body of GET /v1/messages.
type messageList struct {
	Messages   []messageSummary `json:"messages"`
	NextCursor string           `json:"next_cursor" doc:"Pass as cursor to get the next page; empty on the last page."`
}

// messageDetail is the body of GET /v1/messages/{id}.
type messageDetail struct {
	ID             string               `json:"id"`
	Route          string               `json:"route"`
	Status         record.MessageStatus `json:"status" enum:"accepted,running,succeeded,partially_succeeded,failed,compensated"`
	CreatedAt      time.Time            `json:"created_at"`
	UpdatedAt      time.Time            `json:"updated_at"`
	IdempotencyKey string               `json:"idempotency_key"`
	Body           json.RawMessage      `json:"body" doc:"The inbound body: its JSON when it is JSON, else a string; null when empty."`
	Deliveries     []deliveryView       `json:"deliveries" doc:"In dependency order: each step after the steps it waits for, then a saga's compensations in the order they run."`
	Timeline       []timelineEvent      `json:"timeline" doc:"What happened, oldest first: every attempt, and every skip, cancellation, dead letter and compensation, with why."`
}

// timelineEvent is one thing that happened to a message's delivery.
type timelineEvent struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Event  string    `json:"event" enum:"attempt,skipped,cancelled,dead,compensating,compensated" doc:"attempt: one HTTP try (see detail); the others: the delivery reached that state."`
	Detail string    `json:"detail" doc:"For an attempt, its result; otherwise why."`
}

// deliveryView is one delivery of a message.
type deliveryView struct {
	ID       string                `json:"id"`
	Step     string                `json:"step"`
	Target   string                `json:"target"`
	Status   record.DeliveryStatus `json:"status" enum:"waiting,scheduled,running,succeeded,dead,skipped,compensating,compensated,cancelled"`
	After    []string              `json:"after" doc:"Steps this one waits for."`
	Required bool                  `json:"required"`
	Attempts []attemptView         `json:"attempts"`
	// NextAttemptAt is set while scheduled (when due) or running (when the
	// lease ends).
	NextAttemptAt *time.Time          `json:"next_attempt_at" nullable:"true" doc:"When scheduled: when it is due; when running: when its lease ends; else null."`
	LastError     string              `json:"last_error"`
	Response      *targetResponseView `json:"response" doc:"The last answer of the target; null before any."`
	Replays       int                 `json:"replays" doc:"How many times the delivery was replayed by hand."`
	Compensates   string              `json:"compensates" doc:"On a saga's compensation (step \"<step>.compensate\"): the step it undoes; else empty."`
	Compensation  string              `json:"compensation" doc:"On a step that a saga can undo: the step name of its compensation; else empty."`
}

// attemptView is one HTTP try of a delivery.
type attemptView struct {
	N          int            `json:"n"`
	StartedAt  time.Time      `json:"started_at"`
	DurationMS int64          `json:"duration_ms"`
	HTTPStatus int            `json:"http_status" doc:"The target's status code; 0 when no answer came."`
	Outcome    record.Outcome `json:"outcome" enum:"success,transient,permanent"`
	Error      string         `json:"error"`
}

// targetResponseView is the last answer a target gave for a delivery.
type targetResponseView struct {
	HTTPStatus int             `json:"http_status"`
	Body       json.RawMessage `json:"body" doc:"The target's JSON, or a string; null when empty."`
}

// deadLetter is one row of GET /v1/dead-letters.
type deadLetter struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Route     string    `json:"route"`
	Step      string    `json:"step"`
	Target    string    `json:"target"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	UpdatedAt time.Time `json:"updated_at"`
}

// deadLetterList is the body of GET /v1/dead-letters.
type deadLetterList struct {
	DeadLetters []deadLetter `json:"dead_letters"`
	NextCursor  string       `json:"next_cursor" doc:"Pass as cursor to get the next page; empty on the last page."`
}

// replayResult is the body of both replay endpoints.
type replayResult struct {
	Replayed int          `json:"replayed"`
	IDs      []string     `json:"ids" doc:"Ids of the deliveries sent back to work."`
	Skipped  []replaySkip `json:"skipped,omitempty" doc:"Deliveries left alone, with the reason: not dead, or a forward step of a saga whose compensation has begun."`
}

// replaySkip is a delivery a replay left alone.
type replaySkip struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// targetView is one row of GET /v1/targets. It never holds a secret: no
// auth, no header values; the URL comes from the redacted config (a URL
// built from ${env:} or ${file:} is hidden whole), and its userinfo and
// query values are hidden too. Breaker, rate limit, concurrency and pause
// are this replica's live view.
type targetView struct {
	Name             string       `json:"name"`
	URL              string       `json:"url"`
	Method           string       `json:"method"`
	Queue            queueView    `json:"queue"`
	Breaker          *breakerView `json:"breaker" doc:"The circuit breaker; null without a running engine."`
	RateLimit        *limiterView `json:"rate_limit" doc:"The token bucket; null when the target has no rate limit (or no engine runs)."`
	InFlight         int          `json:"in_flight" doc:"Deliveries this replica has claimed and not yet recorded."`
	Concurrency      int          `json:"concurrency" doc:"The configured cap on in_flight."`
	ConcurrencyLimit int          `json:"concurrency_limit" doc:"The cap in force: concurrency, lowered while the target fails transiently (AIMD) and raised again by successes."`
	PausedUntil      *time.Time   `json:"paused_until" doc:"When the target asked to wait (429 or 503 with Retry-After), the end of that pause; null otherwise."`
}

// breakerView is a target's circuit breaker.
type breakerView struct {
	State        string     `json:"state" enum:"closed,half_open,open,disabled"`
	FailureRatio float64    `json:"failure_ratio" doc:"Transient failures / requests over the window; counted while closed."`
	Requests     int        `json:"requests" doc:"Requests counted in the window while closed."`
	Failures     int        `json:"failures" doc:"Transient failures among them."`
	NextProbeAt  *time.Time `json:"next_probe_at" doc:"When an open breaker half-opens and lets probes through; null unless open."`
	Probes       int        `json:"probes" doc:"Probes let through while half-open."`
	Threshold    float64    `json:"threshold" doc:"The failure_ratio that opens it."`
	MinRequests  int        `json:"min_requests" doc:"Requests the window needs before the ratio counts."`
	WindowMS     int64      `json:"window_ms"`
	OpenForMS    int64      `json:"open_for_ms"`
}

// limiterView is a target's token bucket.
type limiterView struct {
	PerSecond          float64 `json:"per_second" doc:"As configured."`
	Burst              int     `json:"burst" doc:"As configured."`
	Shared             bool    `json:"shared" doc:"Divided among the live replicas."`
	Replicas           int     `json:"replicas" doc:"Replicas the rate is divided by (1 unless shared)."`
	EffectivePerSecond float64 `json:"effective_per_second" doc:"The rate in force on this replica."`
	EffectiveBurst     int     `json:"effective_burst" doc:"The bucket size in force on this replica."`
	Tokens             float64 `json:"tokens" doc:"Tokens in the bucket now; negative while claimed deliveries wait for theirs."`
}

// queueView counts a target's deliveries by state.
type queueView struct {
	Due       int `json:"due" doc:"Scheduled and due now."`
	Scheduled int `json:"scheduled" doc:"Scheduled for later."`
	Waiting   int `json:"waiting"`
	Running   int `json:"running"`
	Dead      int `json:"dead"`
}

func summaryOf(m record.Message) messageSummary {
	return messageSummary{
		ID: m.ID, Route: m.Route, Status: m.Status,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, IdempotencyKey: m.IdempotencyKey,
	}
}

func detailOf(md *record.MessageDetail) *messageDetail {
	m := md.Message
	out := &messageDetail{
		ID: m.ID, Route: m.Route, Status: m.Status,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, IdempotencyKey: m.IdempotencyKey,
		Body:       jsonOrNull(m.Body),
		Deliveries: make([]deliveryView, 0, len(md.Deliveries)),
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
		v.Compensates, _ = record.Compensates(d.Step)
		v.Compensation = comp[d.Step]
		out.Deliveries = append(out.Deliveries, v)
	}
	out.Timeline = timelineOf(ds, md.Attempts)
	return out
}

// timelineOf lists what happened to a message's deliveries, oldest first;
// events at the same instant keep the dependency order of ds.
func timelineOf(ds []record.Delivery, attempts map[string][]record.Attempt) []timelineEvent {
	out := []timelineEvent{}
	for _, d := range ds {
		for _, a := range attempts[d.ID] {
			detail := fmt.Sprintf("attempt %d: %s (%s, %d ms)", a.N, attemptResult(a), a.Outcome, a.Duration.Milliseconds())
			out = append(out, timelineEvent{At: a.StartedAt, Step: d.Step, Event: "attempt", Detail: detail})
		}
		switch d.Status {
		case record.DeliverySkipped, record.DeliveryCancelled, record.DeliveryCompensating, record.DeliveryCompensated:
			out = append(out, timelineEvent{At: d.UpdatedAt, Step: d.Step, Event: string(d.Status), Detail: d.LastError})
		case record.DeliveryDead:
			detail := d.LastError
			if base, ok := record.Compensates(d.Step); ok {
				detail += "; the compensation failed: a person must undo step " + base + ", or replay this dead letter"
			}
			out = append(out, timelineEvent{At: d.UpdatedAt, Step: d.Step, Event: "dead", Detail: detail})
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

func deliveryOf(d record.Delivery, attempts []record.Attempt) deliveryView {
	v := deliveryView{
		ID: d.ID, Step: d.Step, Target: d.Target, Status: d.Status,
		After: nonNil(d.After), Required: d.Required,
		Attempts:  make([]attemptView, 0, len(attempts)),
		LastError: d.LastError, Replays: d.Replays,
	}
	for _, a := range attempts {
		v.Attempts = append(v.Attempts, attemptView{
			N: a.N, StartedAt: a.StartedAt, DurationMS: a.Duration.Milliseconds(),
			HTTPStatus: a.HTTPStatus, Outcome: a.Outcome, Error: a.Error,
		})
	}
	if (d.Status == record.DeliveryScheduled || d.Status == record.DeliveryRunning) && !d.NextAttemptAt.IsZero() {
		t := d.NextAttemptAt
		v.NextAttemptAt = &t
	}
	if d.ResponseStatus != 0 || len(d.ResponseBody) > 0 {
		v.Response = &targetResponseView{HTTPStatus: d.ResponseStatus, Body: jsonOrNull(d.ResponseBody)}
	}
	return v
}

func deadLetterOf(d record.Delivery) deadLetter {
	return deadLetter{
		ID: d.ID, MessageID: d.MessageID, Route: d.Route, Step: d.Step, Target: d.Target,
		Attempts: d.Attempts, LastError: d.LastError, UpdatedAt: d.UpdatedAt,
	}
}

func replayOf(res *store.DeliveryReplayResult) *replayResult {
	r := &replayResult{Replayed: len(res.Replayed), IDs: make([]string, 0, len(res.Replayed))}
	for _, d := range res.Replayed {
		r.IDs = append(r.IDs, d.ID)
	}
	for _, x := range res.Refused {
		r.Skipped = append(r.Skipped, replaySkip{ID: x.DeliveryID, Reason: x.Reason})
	}
	return r
}

func targetOf(t *config.Target, name string, st store.TargetStats) targetView {
	method := t.Method
	if method == "" {
		method = "POST"
	}
	return targetView{
		Name: name, URL: redactURL(t.URL), Method: method,
		Queue:       queueView{Due: st.Due, Scheduled: st.Scheduled, Waiting: st.Waiting, Running: st.Running, Dead: st.Dead},
		Concurrency: t.Concurrency, ConcurrencyLimit: t.Concurrency,
	}
}

// withHealth fills in the engine's live view of the target.
func (v *targetView) withHealth(h *engine.TargetHealth) {
	v.InFlight, v.Concurrency, v.ConcurrencyLimit = h.InFlight, h.Concurrency, h.ConcurrencyLimit
	if !h.PausedUntil.IsZero() {
		v.PausedUntil = &h.PausedUntil
	}
	b := h.Breaker
	v.Breaker = &breakerView{
		State: b.State.String(), FailureRatio: b.FailureRatio, Requests: b.Requests, Failures: b.Failures, Probes: b.Probes,
		Threshold: b.Settings.FailureRatio, MinRequests: b.Settings.MinRequests,
		WindowMS: b.Settings.Window.Milliseconds(), OpenForMS: b.Settings.OpenFor.Milliseconds(),
	}
	if h.BreakerDisabled {
		v.Breaker = &breakerView{State: "disabled"}
	}
	if !b.OpenUntil.IsZero() {
		v.Breaker.NextProbeAt = &b.OpenUntil
	}
	if l := h.Limiter; l.Enabled {
		v.RateLimit = &limiterView{
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
