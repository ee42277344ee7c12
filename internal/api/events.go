package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/events"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Defaults of EventStreamOptions.
const (
	defaultHeartbeat    = 15 * time.Second
	defaultWriteTimeout = 10 * time.Second
)

// EventStreamOptions configure an EventStream.
type EventStreamOptions struct {
	// Hub is the source of the events. Required.
	Hub *events.Hub
	// Store answers whether a message exists (404 on its stream); nil when
	// no route is durable.
	Store store.Store
	// Heartbeat is how often a comment line is sent while no event comes,
	// so proxies keep the connection and clients notice a dead one.
	// Default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write: a client that stops reading is cut
	// off after it. Default 10s.
	WriteTimeout time.Duration
	// Logger notes clients cut off as slow. Default slog.Default().
	Logger *slog.Logger
}

// EventStream serves the Server-Sent Events of GET /v1/events and
// GET /v1/messages/{id}/events, without auth (the caller checks it: the
// admin API with its keys, the dashboard with its session).
type EventStream struct {
	opts EventStreamOptions
}

// NewEventStream returns an EventStream.
func NewEventStream(opts EventStreamOptions) *EventStream {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = defaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &EventStream{opts: opts}
}

// eventStatuses are the values the status filter takes: message and
// delivery states.
var eventStatuses = []string{
	"accepted", "running", "succeeded", "partially_succeeded", "failed", "compensated",
	"waiting", "scheduled", "dead", "skipped", "compensating", "cancelled",
}

// All serves GET /v1/events: every message's events, filtered by the
// route and status query parameters.
func (es *EventStream) All(w http.ResponseWriter, r *http.Request) {
	f, p := eventFilter(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	es.serve(w, r, f)
}

// Message serves GET /v1/messages/{id}/events: one message's events.
func (es *EventStream) Message(w http.ResponseWriter, r *http.Request) {
	f, p := eventFilter(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	f.MessageID = r.PathValue("id")
	if len(f.MessageID) > 256 {
		writeProblem(w, r, invalid("the message id is longer than 256 characters", "path.id"))
		return
	}
	if es.opts.Store == nil {
		writeProblem(w, r, newProblem(tapi.ErrNotFound, "no message with id "+f.MessageID))
		return
	}
	if _, err := es.opts.Store.MessageGet(r.Context(), f.MessageID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeProblem(w, r, newProblem(tapi.ErrNotFound, "no message with id "+f.MessageID))
			return
		}
		writeProblem(w, r, unavailable("the store is unavailable"))
		return
	}
	es.serve(w, r, f)
}

// eventFilter reads the route and status query parameters.
func eventFilter(r *http.Request) (events.Filter, *Problem) {
	q := r.URL.Query()
	f := events.Filter{Route: q.Get("route")}
	if len(f.Route) > 256 {
		return f, invalid("route is longer than 256 characters", "query.route")
	}
	for _, v := range q["status"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(eventStatuses, s) {
				return f, invalid(fmt.Sprintf("status %q is not a message or delivery state; one of: %s", s, strings.Join(eventStatuses, ", ")), "query.status")
			}
			f.Statuses = append(f.Statuses, s)
		}
	}
	if id := lastEventID(r); len(id) > 128 {
		return f, invalid("Last-Event-ID is longer than 128 characters", "header.Last-Event-ID")
	}
	return f, nil
}

// lastEventID is the Last-Event-ID header (sent by a reconnecting
// EventSource), or the last_event_id query parameter (for a first
// connection that resumes from an id a page was rendered at).
func lastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("last_event_id")
}

// serve streams the events f selects until the client goes, the hub
// stops, or the client is dropped as slow.
func (es *EventStream) serve(w http.ResponseWriter, r *http.Request, f events.Filter) {
	rc := http.NewResponseController(w)
	sub := es.opts.Hub.Subscribe(f, lastEventID(r))
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 1024)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(es.opts.WriteTimeout))
		_, err := w.Write(b)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil && r.Context().Err() == nil {
			es.opts.Logger.Info("event stream client cut off", "remote", r.RemoteAddr, "reason", "a write did not complete in time", "error", err)
		}
		return err == nil
	}
	// retry: how long a client waits before it reconnects.
	if !write([]byte("retry: 2000\n: connected " + es.opts.Hub.LastID() + "\n\n")) {
		return
	}
	for i := range sub.Backlog {
		buf = appendEvent(buf[:0], &sub.Backlog[i])
		if !write(buf) {
			return
		}
	}
	tick := time.NewTicker(es.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-es.opts.Hub.Done():
			return
		case <-tick.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		case e, ok := <-sub.C:
			if !ok {
				// Dropped as slow: the client reconnects with Last-Event-ID.
				es.opts.Logger.Info("event stream client cut off", "remote", r.RemoteAddr, "reason", "it fell behind the events")
				return
			}
			buf = appendEvent(buf[:0], &e)
			if !write(buf) {
				return
			}
		}
	}
}

// appendEvent appends e in the text/event-stream format; its data is one
// line of JSON in the types of package api.
func appendEvent(b []byte, e *events.Event) []byte {
	data, err := json.Marshal(eventData(e))
	if err != nil {
		data = []byte(`{}`)
	}
	b = append(b, "id: "...)
	b = append(b, e.ID...)
	b = append(b, "\nevent: "...)
	b = append(b, e.Kind...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// eventData is the payload of e in the public views.
func eventData(e *events.Event) any {
	switch e.Kind {
	case events.KindMessage:
		return summaryOf(e.Message)
	case events.KindDelivery:
		v := deliveryOf(e.Delivery, e.Attempts)
		if base, ok := record.Compensates(e.Delivery.Step); ok {
			v.Compensates = base
		}
		return tapi.DeliveryEvent{MessageID: e.Message.ID, Route: e.Message.Route, Delivery: v}
	case events.KindAttempt:
		a := e.Attempt
		return tapi.AttemptEvent{
			MessageID: e.Message.ID, Route: e.Message.Route, DeliveryID: e.Delivery.ID,
			Step: e.Delivery.Step, Target: e.Delivery.Target, DeliveryStatus: string(e.Delivery.Status),
			Attempt: tapi.Attempt{
				N: a.N, StartedAt: a.StartedAt, DurationMS: a.Duration.Milliseconds(),
				HTTPStatus: a.HTTPStatus, Outcome: string(a.Outcome), Error: a.Error,
			},
		}
	}
	return tapi.ResetEvent{Reason: e.Reason, Detail: resetDetail[e.Reason]}
}

var resetDetail = map[string]string{
	events.ReasonUnknownID: "the Last-Event-ID is not from this server's current run (a restart or another replica): reload the state",
	events.ReasonExpired:   "events after the Last-Event-ID are no longer kept: reload the state",
	events.ReasonLost:      "events were lost (too many changes at once, or the link between replicas broke): reload the state",
}

// registerEvents serves the event streams behind the admin auth check.
func (s *server) registerEvents(es *EventStream) error {
	if err := s.handle("GET /v1/events", s.adminOnly(http.HandlerFunc(es.All))); err != nil {
		return err
	}
	return s.handle("GET /v1/messages/{id}/events", s.adminOnly(http.HandlerFunc(es.Message)))
}

// documentEvents adds the event streams to the OpenAPI document.
func documentEvents(api huma.API) {
	reg := api.OpenAPI().Components.Schemas
	kinds := []struct {
		name string
		t    reflect.Type
	}{
		{"message", reflect.TypeFor[tapi.MessageSummary]()},
		{"delivery", reflect.TypeFor[tapi.DeliveryEvent]()},
		{"attempt", reflect.TypeFor[tapi.AttemptEvent]()},
		{"reset", reflect.TypeFor[tapi.ResetEvent]()},
	}
	var oneOf []*huma.Schema
	for _, k := range kinds {
		ref := reg.Schema(k.t, true, "")
		oneOf = append(oneOf, &huma.Schema{
			Title: k.name, Type: "object",
			Description: "An SSE event with `event: " + k.name + "`; `data` is this JSON.",
			Properties: map[string]*huma.Schema{
				"id":    {Type: "string", Description: "<epoch>-<seq>: send it back as Last-Event-ID to resume."},
				"event": {Type: "string", Enum: []any{k.name}},
				"data":  ref,
			},
		})
	}
	stream := &huma.Schema{
		Description: "text/event-stream: events message, delivery, attempt (data in the views of the admin API), and reset; a comment line every 15s as a heartbeat.",
		OneOf:       oneOf,
	}
	params := []*huma.Param{
		{Name: "route", In: "query", Description: "Only events of this route.", Schema: &huma.Schema{Type: "string", MaxLength: intPtr(256)}},
		{Name: "status", In: "query", Description: "Only events whose state is one of these (comma separated): the message's on message events, the delivery's on delivery and attempt events.",
			Schema: &huma.Schema{Type: "string"}},
		{Name: "Last-Event-ID", In: "header", Description: "The id of the last event seen: the stream goes on after it, or starts with a reset event when it cannot.",
			Schema: &huma.Schema{Type: "string", MaxLength: intPtr(128)}},
		{Name: "last_event_id", In: "query", Description: "As Last-Event-ID, for a first connection (an EventSource cannot set headers).",
			Schema: &huma.Schema{Type: "string", MaxLength: intPtr(128)}},
	}
	for _, d := range []struct {
		id, path, summary, desc string
		problems                []int
	}{
		{"stream-events", "/v1/events", "Live events of every message",
			"Server-Sent Events of every message: accepted, deliveries changing state, attempts recorded; on PostgreSQL those of every replica.",
			[]int{401, 403, 422}},
		{"stream-message-events", "/v1/messages/{id}/events", "Live events of one message",
			"Server-Sent Events of one message.", []int{401, 403, 404, 422, 503}},
	} {
		op := &huma.Operation{
			OperationID: d.id, Method: http.MethodGet, Path: d.path, Summary: d.summary, Description: d.desc,
			Tags: []string{"messages"}, Parameters: params,
			Security: []map[string][]string{{"bearer": {}}},
			Responses: map[string]*huma.Response{"200": {
				Description: "The stream; it stays open.",
				Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: stream}},
			}},
		}
		if strings.Contains(d.path, "{id}") {
			op.Parameters = append([]*huma.Param{{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "string", MaxLength: intPtr(256)}}}, params...)
		}
		problemResponses(api, op, d.problems...)
		api.OpenAPI().AddOperation(op)
	}
}

// mountUI serves the dashboard at /ui/, and sends /ui there. The
// dashboard does its own auth (a session cookie, or loopback without
// keys).
func (s *server) mountUI(h http.Handler) error {
	if err := s.handle("/ui/", h); err != nil {
		return err
	}
	return s.handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
}
