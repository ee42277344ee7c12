package api

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/tandem-run/tandem/internal/config"
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
	Deliveries     []deliveryView       `json:"deliveries"`
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
	Replayed int      `json:"replayed"`
	IDs      []string `json:"ids" doc:"Ids of the deliveries sent back to work."`
}

// targetView is one row of GET /v1/targets. It never holds a secret: no
// auth, no header values; the URL comes from the redacted config (a URL
// built from ${env:} or ${file:} is hidden whole), and its userinfo and
// query values are hidden too.
type targetView struct {
	Name   string    `json:"name"`
	URL    string    `json:"url"`
	Method string    `json:"method"`
	Queue  queueView `json:"queue"`
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
	for _, d := range md.Deliveries {
		out.Deliveries = append(out.Deliveries, deliveryOf(d, md.Attempts[d.ID]))
	}
	return out
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

func replayOf(ds []record.Delivery) *replayResult {
	r := &replayResult{Replayed: len(ds), IDs: make([]string, 0, len(ds))}
	for _, d := range ds {
		r.IDs = append(r.IDs, d.ID)
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
		Queue: queueView{Due: st.Due, Scheduled: st.Scheduled, Waiting: st.Waiting, Running: st.Running, Dead: st.Dead},
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
