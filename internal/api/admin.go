package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// Inputs of the admin operations. huma validates them against these tags
// before a handler runs: a bad value is a 422 problem, a body that is not
// JSON a 400 problem.

type listMessagesInput struct {
	Status         string    `query:"status" enum:"accepted,running,succeeded,partially_succeeded,failed,compensated" doc:"Only messages in this state."`
	Route          string    `query:"route" maxLength:"256" doc:"Only messages of this route."`
	IdempotencyKey string    `query:"idempotency_key" maxLength:"255" doc:"Only messages accepted with this inbound Idempotency-Key (on any route)."`
	CreatedFrom    time.Time `query:"created_from" doc:"Only messages created at or after this time (RFC 3339)."`
	CreatedBefore  time.Time `query:"created_before" doc:"Only messages created before this time (RFC 3339)."`
	Limit          int       `query:"limit" minimum:"1" maximum:"1000" default:"50" doc:"Page size."`
	Cursor         string    `query:"cursor" maxLength:"1024" doc:"next_cursor of the previous page."`
}

type getMessageInput struct {
	ID string `path:"id" maxLength:"256" doc:"Message id."`
}

type listDeadLettersInput struct {
	Route  string `query:"route" maxLength:"256" doc:"Only dead letters of this route."`
	Target string `query:"target" maxLength:"256" doc:"Only dead letters of this target."`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"50" doc:"Page size."`
	Cursor string `query:"cursor" maxLength:"1024" doc:"next_cursor of the previous page."`
}

type replayDeadLettersInput struct {
	Body tapi.ReplayRequest
}

type replayDeliveryInput struct {
	ID string `path:"id" maxLength:"256" doc:"Delivery id."`
}

type body[T any] struct {
	Body T
}

// secured marks an operation as needing the bearer key in the OpenAPI
// document, and caps its body at adminMaxBody.
func secured(op huma.Operation) huma.Operation {
	op.Security = []map[string][]string{{"bearer": {}}}
	op.MaxBodyBytes = adminMaxBody
	return op
}

// registerAdmin registers the /v1 operations on api. huma panics on an
// operation it cannot describe; that is turned into an error.
func (s *server) registerAdmin(api huma.API) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("register admin api: %v", r)
		}
	}()
	huma.Register(api, secured(huma.Operation{
		OperationID: "list-messages", Method: http.MethodGet, Path: "/v1/messages",
		Summary: "List messages", Description: "Messages newest first, filtered and paginated.",
		Tags: []string{"messages"}, Errors: []int{400, 401, 403, 422, 503},
	}), s.listMessages)
	huma.Register(api, secured(huma.Operation{
		OperationID: "get-message", Method: http.MethodGet, Path: "/v1/messages/{id}",
		Summary: "Get a message", Description: "A message with its inbound body, deliveries and their attempts.",
		Tags: []string{"messages"}, Errors: []int{401, 403, 404, 503},
	}), s.getMessage)
	huma.Register(api, secured(huma.Operation{
		OperationID: "list-dead-letters", Method: http.MethodGet, Path: "/v1/dead-letters",
		Summary: "List dead letters", Description: "Dead deliveries newest first, filtered and paginated.",
		Tags: []string{"dead letters"}, Errors: []int{400, 401, 403, 422, 503},
	}), s.listDeadLetters)
	huma.Register(api, secured(huma.Operation{
		OperationID: "replay-dead-letters", Method: http.MethodPost, Path: "/v1/dead-letters/replay",
		Summary: "Replay dead letters",
		Description: "Sends dead deliveries back to work with a fresh retry budget, by ids or by filter. " +
			"Deliveries that are not dead are left alone and not counted.",
		Tags: []string{"dead letters"}, Errors: []int{400, 401, 403, 422, 503},
	}), s.replayDeadLetters)
	huma.Register(api, secured(huma.Operation{
		OperationID: "replay-delivery", Method: http.MethodPost, Path: "/v1/deliveries/{id}/replay",
		Summary: "Replay one dead delivery", Description: "409 when the delivery is not dead.",
		Tags: []string{"dead letters"}, Errors: []int{401, 403, 404, 409, 503},
	}), s.replayDelivery)
	s.registerPurge(api)
	s.registerConfig(api) // config.go
	huma.Register(api, secured(huma.Operation{
		OperationID: "list-routes", Method: http.MethodGet, Path: "/v1/routes",
		Summary: "List routes", Tags: []string{"config"}, Errors: []int{401, 403, 503},
	}), s.listRoutes)
	huma.Register(api, secured(huma.Operation{
		OperationID: "list-targets", Method: http.MethodGet, Path: "/v1/targets",
		Summary: "List targets", Description: "Targets with their queue depth, and this replica's view of their health: circuit breaker, rate limit, concurrency and Retry-After pause. Secrets are never shown.",
		Tags: []string{"config"}, Errors: []int{401, 403, 503},
	}), s.listTargets)
	return nil
}

func (s *server) listMessages(ctx context.Context, in *listMessagesInput) (*body[tapi.MessageList], error) {
	out := &body[tapi.MessageList]{Body: tapi.MessageList{Messages: []tapi.MessageSummary{}}}
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return out, nil
	}
	res, err := st.MessageList(ctx, &store.MessageListParams{
		Status: record.MessageStatus(in.Status), Route: in.Route, Limit: in.Limit, Cursor: in.Cursor,
		IdempotencyKey: in.IdempotencyKey, CreatedFrom: in.CreatedFrom, CreatedBefore: in.CreatedBefore,
	})
	if err != nil {
		return nil, s.errorProblem(ctx, "list messages", false, err)
	}
	for _, m := range res.Messages {
		out.Body.Messages = append(out.Body.Messages, summaryOf(m))
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

func (s *server) getMessage(ctx context.Context, in *getMessageInput) (*body[*tapi.MessageDetail], error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, newProblem(tapi.ErrNotFound, "no message with id "+in.ID)
	}
	md, err := st.MessageGet(ctx, in.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newProblem(tapi.ErrNotFound, "no message with id "+in.ID)
	}
	if err != nil {
		return nil, s.errorProblem(ctx, "get message", false, err)
	}
	d := detailOf(md)
	d.TraceURL = telemetry.TraceLink(s.cfg.Telemetry.Tracing.Link, d.TraceID)
	return &body[*tapi.MessageDetail]{Body: d}, nil
}

func (s *server) listDeadLetters(ctx context.Context, in *listDeadLettersInput) (*body[tapi.DeadLetterList], error) {
	out := &body[tapi.DeadLetterList]{Body: tapi.DeadLetterList{DeadLetters: []tapi.DeadLetter{}}}
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	if st == nil {
		return out, nil
	}
	res, err := st.DeliveryList(ctx, &store.DeliveryListParams{
		Status: record.DeliveryDead, Route: in.Route, Target: in.Target, Limit: in.Limit, Cursor: in.Cursor,
	})
	if err != nil {
		return nil, s.errorProblem(ctx, "list dead letters", false, err)
	}
	for _, d := range res.Deliveries {
		out.Body.DeadLetters = append(out.Body.DeadLetters, deadLetterOf(d))
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

func (s *server) replayDeadLetters(ctx context.Context, in *replayDeadLettersInput) (*body[*tapi.ReplayResult], error) {
	req := in.Body
	p := &store.DeliveryReplayParams{}
	switch {
	case len(req.IDs) > 0:
		if req.Route != "" || req.Target != "" || req.All || req.Limit != 0 {
			return nil, invalid("ids cannot be combined with route, target, limit or all", "body.ids")
		}
		p.IDs = slices.Compact(slices.Sorted(slices.Values(req.IDs)))
	case req.Route != "" || req.Target != "" || req.All:
		p.Route, p.Target, p.Limit = req.Route, req.Target, req.Limit
	default:
		return nil, invalid(`give ids, a route or target filter, or "all": true`, "body")
	}
	if s.eng == nil {
		return nil, unavailable("the engine is not running")
	}
	res, err := s.eng.Replay(ctx, p)
	if err != nil {
		return nil, s.errorProblem(ctx, "replay dead letters", false, err)
	}
	return &body[*tapi.ReplayResult]{Body: replayOf(res)}, nil
}

func (s *server) replayDelivery(ctx context.Context, in *replayDeliveryInput) (*body[*tapi.ReplayResult], error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	notFound := newProblem(tapi.ErrNotFound, "no delivery with id "+in.ID)
	if st == nil {
		return nil, notFound
	}
	res, err := s.eng.Replay(ctx, &store.DeliveryReplayParams{IDs: []string{in.ID}})
	if err != nil {
		return nil, s.errorProblem(ctx, "replay delivery", false, err)
	}
	if len(res.Replayed) > 0 {
		return &body[*tapi.ReplayResult]{Body: replayOf(res)}, nil
	}
	for _, r := range res.Refused {
		if r.Reason == record.RefusedCompensationRan {
			return nil, newProblem(tapi.ErrReplayRefused, "delivery "+in.ID+" cannot be replayed: "+r.Reason)
		}
	}
	// Nothing was replayed: the delivery is unknown, or not dead.
	found, err := st.DeliveryList(ctx, &store.DeliveryListParams{ID: in.ID, Limit: 1})
	if err != nil {
		return nil, s.errorProblem(ctx, "find delivery", false, err)
	}
	for _, d := range found.Deliveries {
		if d.ID == in.ID {
			return nil, newProblem(tapi.ErrNotDead, "delivery "+in.ID+" is "+string(d.Status)+", not dead; only dead deliveries can be replayed")
		}
	}
	return nil, notFound
}

func (s *server) listRoutes(ctx context.Context, _ *struct{}) (*body[tapi.RouteList], error) {
	if s.eng == nil {
		return nil, unavailable("the engine is not running")
	}
	return &body[tapi.RouteList]{Body: routesOf(s.eng.Routes())}, nil
}

func (s *server) listTargets(ctx context.Context, _ *struct{}) (*body[tapi.TargetList], error) {
	stats := map[string]store.TargetStats{}
	// Targets come from the config; without an engine or a store the
	// queue counts are zero.
	if st := s.storeOrNil(); st != nil {
		all, err := st.DeliveryStats(ctx, nil)
		if err != nil {
			return nil, s.errorProblem(ctx, "delivery stats", false, err)
		}
		for _, t := range all {
			stats[t.Target] = t
		}
	}
	names := make([]string, 0, len(s.targets))
	for n := range s.targets {
		names = append(names, n)
	}
	slices.Sort(names)
	live := map[string]*engine.TargetHealth{}
	if s.eng != nil {
		hs := s.eng.TargetHealth()
		for i := range hs {
			live[hs[i].Name] = &hs[i]
		}
	}
	out := &body[tapi.TargetList]{Body: tapi.TargetList{Targets: make([]tapi.Target, 0, len(names))}}
	for _, n := range names {
		v := targetOf(s.targets[n], n, stats[n])
		if h := live[n]; h != nil {
			withHealth(&v, h)
			redactHosts(&v, s.targets[n]) // hosts.go
		}
		out.Body.Targets = append(out.Body.Targets, v)
	}
	return out, nil
}

// store returns the engine's store; nil (and no error) when no route is
// durable; a 503 problem without an engine.
func (s *server) store() (store.Store, error) {
	if s.eng == nil {
		return nil, unavailable("the engine is not running")
	}
	return s.eng.Store(), nil
}

// storeOrNil returns the engine's store, or nil.
func (s *server) storeOrNil() store.Store {
	if s.eng == nil {
		return nil
	}
	return s.eng.Store()
}

// healthz answers 200 while the process serves.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the engine can accept messages, else 503.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.eng == nil {
		writeProblem(w, r, unavailable("the engine is not running"))
		return
	}
	if err := s.eng.Ready(r.Context()); err != nil {
		// The cause may name hosts or files; it goes to the log, not to
		// this unauthenticated endpoint.
		p := unavailable("not ready")
		switch {
		case errors.Is(err, engine.ErrShuttingDown):
			p = retryLater(newProblem(tapi.ErrShuttingDown, "shutting down"))
		case errors.Is(err, store.ErrUnavailable):
			p = unavailable("the store is unavailable")
		}
		s.log.Warn("not ready", "err", err)
		writeProblem(w, r, p)
		return
	}
	if p := s.sourcesReady(); p != nil {
		writeProblem(w, r, p)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
