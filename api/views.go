package api

import (
	"encoding/json"
	"time"
)

// The answers of the admin API (DESIGN.md "Answers"). Every list field is
// sent as [] rather than null, and every documented field is present.

// MessageSummary is one row of GET /v1/messages.
type MessageSummary struct {
	ID             string    `json:"id"`
	Route          string    `json:"route"`
	Status         string    `json:"status" enum:"accepted,running,succeeded,partially_succeeded,failed,compensated"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	IdempotencyKey string    `json:"idempotency_key" doc:"The inbound Idempotency-Key; empty when none was sent."`
	TraceID        string    `json:"trace_id,omitempty" doc:"The W3C trace id of the message's trace (ingest, every attempt and compensation); absent when it was not traced."`
}

// MessageList is the body of GET /v1/messages.
type MessageList struct {
	Messages   []MessageSummary `json:"messages"`
	NextCursor string           `json:"next_cursor" doc:"Pass as cursor to get the next page; empty on the last page."`
}

// MessageDetail is the body of GET /v1/messages/{id}: a message with its
// deliveries, their attempts, and what happened to them.
type MessageDetail struct {
	ID             string          `json:"id"`
	Route          string          `json:"route"`
	Status         string          `json:"status" enum:"accepted,running,succeeded,partially_succeeded,failed,compensated"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	IdempotencyKey string          `json:"idempotency_key"`
	TraceID        string          `json:"trace_id,omitempty" doc:"The W3C trace id of the message's trace (ingest, every attempt and compensation); absent when it was not traced."`
	TraceURL       string          `json:"trace_url,omitempty" doc:"The trace in the tracing UI, from telemetry.tracing.link; absent without a link template or a trace."`
	Body           json.RawMessage `json:"body" doc:"The inbound body: its JSON when it is JSON, else a string; null when empty."`
	Deliveries     []Delivery      `json:"deliveries" doc:"In dependency order: each step after the steps it waits for, then a saga's compensations in the order they run."`
	Timeline       []TimelineEvent `json:"timeline" doc:"What happened, oldest first: every attempt, and every skip, cancellation, dead letter and compensation, with why."`
}

// Terminal reports whether no delivery of the message will run again
// without a replay.
func (m *MessageDetail) Terminal() bool {
	switch m.Status {
	case "succeeded", "partially_succeeded", "failed", "compensated":
		return true
	}
	return false
}

// TimelineEvent is one thing that happened to a message's delivery.
type TimelineEvent struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Event  string    `json:"event" enum:"attempt,skipped,cancelled,dead,compensating,compensated" doc:"attempt: one HTTP try (see detail); the others: the delivery reached that state."`
	Detail string    `json:"detail" doc:"For an attempt, its result; otherwise why."`
}

// Delivery is one delivery of a message: a step, or a saga's compensation
// of a step.
type Delivery struct {
	ID       string    `json:"id"`
	Step     string    `json:"step"`
	Target   string    `json:"target"`
	Status   string    `json:"status" enum:"waiting,scheduled,running,succeeded,dead,skipped,compensating,compensated,cancelled"`
	After    []string  `json:"after" doc:"Steps this one waits for."`
	Required bool      `json:"required"`
	Attempts []Attempt `json:"attempts"`
	// NextAttemptAt is set while scheduled (when due) or running (when the
	// lease ends).
	NextAttemptAt *time.Time      `json:"next_attempt_at" nullable:"true" doc:"When scheduled: when it is due; when running: when its lease ends; else null."`
	LastError     string          `json:"last_error"`
	Response      *TargetResponse `json:"response" doc:"The last answer of the target; null before any."`
	Replays       int             `json:"replays" doc:"How many times the delivery was replayed by hand."`
	Compensates   string          `json:"compensates" doc:"On a saga's compensation (step \"<step>.compensate\"): the step it undoes; else empty."`
	Compensation  string          `json:"compensation" doc:"On a step that a saga can undo: the step name of its compensation; else empty."`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	N          int       `json:"n"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	HTTPStatus int       `json:"http_status" doc:"The target's status code; 0 when no answer came."`
	Outcome    string    `json:"outcome" enum:"success,transient,permanent"`
	Error      string    `json:"error"`
}

// TargetResponse is the last answer a target gave for a delivery.
type TargetResponse struct {
	HTTPStatus int             `json:"http_status"`
	Body       json.RawMessage `json:"body" doc:"The target's JSON, or a string; null when empty."`
}

// DeadLetter is one row of GET /v1/dead-letters.
type DeadLetter struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Route     string    `json:"route"`
	Step      string    `json:"step"`
	Target    string    `json:"target"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeadLetterList is the body of GET /v1/dead-letters.
type DeadLetterList struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	NextCursor  string       `json:"next_cursor" doc:"Pass as cursor to get the next page; empty on the last page."`
}

// ReplayRequest is the body of POST /v1/dead-letters/replay: dead letters
// selected by IDs, by a Route/Target filter, or All of them.
type ReplayRequest struct {
	IDs    []string `json:"ids,omitempty" maxItems:"1000" doc:"Delivery ids to replay. Not combined with the other fields."`
	Route  string   `json:"route,omitempty" maxLength:"256" doc:"Replay dead letters of this route."`
	Target string   `json:"target,omitempty" maxLength:"256" doc:"Replay dead letters of this target."`
	Limit  int      `json:"limit,omitempty" minimum:"1" maximum:"1000" doc:"At most this many, with a filter or all. Default 1000."`
	All    bool     `json:"all,omitempty" doc:"Replay every dead letter (up to limit); needed when no ids, route or target is given."`
}

// ReplayResult is the body of both replay endpoints.
type ReplayResult struct {
	Replayed int          `json:"replayed"`
	IDs      []string     `json:"ids" doc:"Ids of the deliveries sent back to work."`
	Skipped  []ReplaySkip `json:"skipped,omitempty" doc:"Deliveries left alone, with the reason: not dead, or a forward step of a saga whose compensation has begun."`
}

// ReplaySkip is a delivery a replay left alone, and why.
type ReplaySkip struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// RouteInfo is one configured route in GET /v1/routes.
type RouteInfo struct {
	Name    string   `json:"name"`
	Method  string   `json:"method"`
	Path    string   `json:"path"`
	Respond any      `json:"respond"` // "accepted", "all" or the list of awaited steps
	Durable bool     `json:"durable"`
	Saga    bool     `json:"saga"`
	Steps   []string `json:"steps"`
	Targets []string `json:"targets"`
}

// RouteList is the body of GET /v1/routes.
type RouteList struct {
	Routes []RouteInfo `json:"routes"`
}

// Target is one row of GET /v1/targets. It never holds a secret: no auth,
// no header values; a URL built from ${env:} or ${file:} is hidden whole,
// and a URL's userinfo and query values are hidden too. Breaker, RateLimit,
// InFlight, ConcurrencyLimit and PausedUntil are the answering replica's
// live view.
type Target struct {
	Name             string     `json:"name"`
	URL              string     `json:"url"`
	Method           string     `json:"method"`
	Queue            Queue      `json:"queue"`
	Breaker          *Breaker   `json:"breaker" doc:"The circuit breaker; null without a running engine."`
	RateLimit        *Limiter   `json:"rate_limit" doc:"The token bucket; null when the target has no rate limit (or no engine runs)."`
	InFlight         int        `json:"in_flight" doc:"Deliveries this replica has claimed and not yet recorded."`
	Concurrency      int        `json:"concurrency" doc:"The configured cap on in_flight."`
	ConcurrencyLimit int        `json:"concurrency_limit" doc:"The cap in force: concurrency, lowered while the target fails transiently (AIMD) and raised again by successes."`
	PausedUntil      *time.Time `json:"paused_until" doc:"When the target asked to wait (429 or 503 with Retry-After), the end of that pause; null otherwise."`
	Hosts            []Host     `json:"hosts,omitempty" doc:"The target's hosts, when it lists several urls (this replica's view)."`
}

// Host is one host of a target with several urls.
type Host struct {
	URL          string     `json:"url"`
	State        string     `json:"state" enum:"healthy,ejected,probing" doc:"ejected: failed eject.failures times in a row, left out until ejected_until; probing: one attempt is trying it again."`
	InFlight     int        `json:"in_flight" doc:"Attempts on the host now."`
	Failures     int        `json:"failures" doc:"Failures in a row (transport errors, timeouts, 5xx)."`
	EjectedUntil *time.Time `json:"ejected_until" doc:"When the cool-off ends; null unless ejected."`
	Attempts     int64      `json:"attempts" doc:"Attempts sent to the host since start."`
	Ejections    int64      `json:"ejections" doc:"Times the host was ejected since start."`
}

// Breaker is a target's circuit breaker.
type Breaker struct {
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

// Limiter is a target's token bucket (its rate limit).
type Limiter struct {
	PerSecond          float64 `json:"per_second" doc:"As configured."`
	Burst              int     `json:"burst" doc:"As configured."`
	Shared             bool    `json:"shared" doc:"Divided among the live replicas."`
	Replicas           int     `json:"replicas" doc:"Replicas the rate is divided by (1 unless shared)."`
	EffectivePerSecond float64 `json:"effective_per_second" doc:"The rate in force on this replica."`
	EffectiveBurst     int     `json:"effective_burst" doc:"The bucket size in force on this replica."`
	Tokens             float64 `json:"tokens" doc:"Tokens in the bucket now; negative while claimed deliveries wait for theirs."`
}

// Queue counts a target's deliveries by state.
type Queue struct {
	Due       int `json:"due" doc:"Scheduled and due now."`
	Scheduled int `json:"scheduled" doc:"Scheduled for later."`
	Waiting   int `json:"waiting"`
	Running   int `json:"running"`
	Dead      int `json:"dead"`
}

// TargetList is the body of GET /v1/targets.
type TargetList struct {
	Targets []Target `json:"targets"`
}
