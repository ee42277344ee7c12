package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
)

// problemContentType is the media type of every error answer (RFC 9457).
const problemContentType = "application/problem+json"

// adminMaxBody caps the body of an admin API request.
const adminMaxBody = 1 << 20

// Problem is an error answer on its way out: the problem document of
// package api, plus the headers to send with it. The plain handlers (route
// ingest, auth, 404, 405, panics) write it with writeProblem; the admin
// operations return it to huma, which writes it through toProblem.
type Problem struct {
	tapi.Problem

	header http.Header
}

// newProblem returns a problem of the given kind (one of package api's
// sentinels) with detail.
func newProblem(kind *tapi.Problem, detail string) *Problem {
	return &Problem{Problem: tapi.Problem{Type: kind.Type, Title: kind.Title, Status: kind.Status, Detail: detail}}
}

// withHeader adds a response header to be sent with the problem.
func (p *Problem) withHeader(name, value string) *Problem {
	if p.header == nil {
		p.header = http.Header{}
	}
	p.header.Add(name, value)
	return p
}

// withField adds a field error about location.
func (p *Problem) withField(message, location string) *Problem {
	p.Errors = append(p.Errors, &tapi.ErrorDetail{Message: message, Location: location})
	return p
}

// GetStatus returns the HTTP status (huma.StatusError).
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders returns the extra response headers (huma.HeadersError).
func (p *Problem) GetHeaders() http.Header { return p.header }

// ContentType makes huma send problems as application/problem+json
// (huma.ContentTypeFilter).
func (p *Problem) ContentType(string) string { return problemContentType }

// tooLarge is the 413 problem for a body over limit, on a route or the
// admin API alike.
func tooLarge(limit int64) *Problem {
	return newProblem(tapi.ErrTooLarge, fmt.Sprintf("the body is larger than the limit of %d bytes", limit))
}

// unavailable is a 503 problem that asks the caller to come back soon.
func unavailable(detail string) *Problem {
	return retryLater(newProblem(tapi.ErrUnavailable, detail))
}

// retryLater adds Retry-After: 1.
func retryLater(p *Problem) *Problem { return p.withHeader("Retry-After", "1") }

// invalid is a 422 problem about one field of the input.
func invalid(detail, location string) *Problem {
	return newProblem(tapi.ErrValidation, detail).withField(detail, location)
}

// errorRule turns one error of the layers below into a problem.
type errorRule struct {
	// err is matched with errors.Is.
	err error
	// kind gives the status and type.
	kind *tapi.Problem
	// detail is the problem's detail.
	detail string
	// ingest, when set, is the detail on a route instead: what the caller
	// must know about the message it sent.
	ingest string
	// field, when set, adds a field error at this location.
	field string
}

// errorRules is the one table from the errors of the engine and the store
// to HTTP answers, for routes and the admin API alike. The first rule that
// matches wins; an error no rule matches is a logged 500.
var errorRules = []errorRule{
	{err: engine.ErrUnknownRoute, kind: tapi.ErrNotFound, detail: "no such route"},
	{err: store.ErrNotFound, kind: tapi.ErrNotFound, detail: "not found"},
	{err: store.ErrInvalidCursor, kind: tapi.ErrInvalidCursor, field: "query.cursor",
		detail: "the cursor is not one this server handed out; start again without it"},
	{err: store.ErrIdempotencyConflict, kind: tapi.ErrIdempotencyConflict,
		detail: "this Idempotency-Key was already used on this route with a different body"},
	{err: engine.ErrIdempotencyInFlight, kind: tapi.ErrIdempotencyInFlight,
		detail: "the first request with this Idempotency-Key is still waiting for its answer; repeat it once that one is answered"},
	// A lost commit (PostgreSQL failing over, a cut connection) looks the
	// same as a refused one, so the caller must not take 503 for "nothing
	// was stored".
	{err: store.ErrUnavailable, kind: tapi.ErrUnavailable, detail: "the store is unavailable; try again",
		ingest: "the store is unavailable: the message may have been accepted; resend with the same Idempotency-Key"},
	{err: engine.ErrShuttingDown, kind: tapi.ErrShuttingDown, detail: "the server is shutting down; try again"},
}

// errorProblem maps an error of the engine or the store to a problem. op
// names what failed for the log; ingest says whether a route's caller
// gets the answer. Errors with no meaning for the client are logged here,
// once, and answered with a generic 500.
func (s *server) errorProblem(ctx context.Context, op string, ingest bool, err error) *Problem {
	for _, r := range errorRules {
		if !errors.Is(err, r.err) {
			continue
		}
		detail := r.detail
		if ingest && r.ingest != "" {
			detail = r.ingest
		}
		p := newProblem(r.kind, detail)
		if r.field != "" {
			p.withField(r.err.Error(), r.field)
		}
		if p.Status == http.StatusServiceUnavailable {
			retryLater(p)
		}
		return p
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		// The caller went away; nobody reads this answer.
		s.log.Debug("request cancelled by caller", "op", op)
		detail := "the request was cancelled"
		if ingest {
			detail = "the request was cancelled: the message may have been accepted; resend with the same Idempotency-Key"
		}
		return unavailable(detail)
	}
	s.log.Error(op+" failed", "err", err)
	return newProblem(tapi.ErrInternal, "internal error")
}

// writeProblem renders p on w. It is the one place where the plain handlers
// write an error; huma writes the same type for the admin operations.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	b, err := json.Marshal(p)
	if err != nil {
		// A Problem holds strings, ints and echoed JSON values; this cannot
		// fail, but an answer must still go out.
		b = []byte(`{"type":"` + tapi.TypeInternal + `","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	for k, vs := range p.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", problemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// frameworkKinds are the kinds of the errors huma itself answers, by
// status: bad parameters and bodies, a body over the limit or of another
// media type. Another status (huma's 408 for a body read too slowly, say)
// gets about:blank.
var frameworkKinds = map[int]*tapi.Problem{
	http.StatusBadRequest:            tapi.ErrMalformedRequest,
	http.StatusRequestEntityTooLarge: tapi.ErrTooLarge,
	http.StatusUnsupportedMediaType:  tapi.ErrUnsupportedMediaType,
	http.StatusUnprocessableEntity:   tapi.ErrValidation,
	http.StatusInternalServerError:   tapi.ErrInternal,
}

// toProblem is a huma transformer: it turns the errors huma builds itself
// (huma.ErrorModel, or whatever huma.NewError makes in this program) into
// Problems, and fills in every problem's instance. tandem leaves huma's
// package-level NewError alone, so a program that embeds tandem and uses
// huma itself keeps its own error type.
func toProblem(ctx huma.Context, _ string, v any) (any, error) {
	p, ok := v.(*Problem)
	if !ok {
		se, isErr := v.(huma.StatusError)
		if !isErr {
			return v, nil
		}
		p = frameworkProblem(se)
	}
	if p.Instance == "" {
		u := ctx.URL()
		p.Instance = u.Path
	}
	return p, nil
}

// frameworkProblem converts an error answer of huma.
func frameworkProblem(se huma.StatusError) *Problem {
	status := se.GetStatus()
	kind := frameworkKinds[status]
	if kind == nil {
		kind = &tapi.Problem{Type: "about:blank", Title: http.StatusText(status), Status: status}
	}
	p := newProblem(kind, se.Error())
	switch status {
	case http.StatusBadRequest:
		if p.Detail == "validation failed" {
			p.Detail = "the request could not be read; errors says where"
		}
	case http.StatusRequestEntityTooLarge:
		p.Detail = tooLarge(adminMaxBody).Detail
	case http.StatusUnsupportedMediaType:
		p.Detail = "the body must be JSON: send it with Content-Type: application/json"
	}
	if em, ok := se.(*huma.ErrorModel); ok {
		for _, d := range em.Errors {
			if d != nil {
				p.Errors = append(p.Errors, &tapi.ErrorDetail{Message: d.Message, Location: d.Location, Value: d.Value})
			}
		}
	}
	return p
}

// problemSchemas makes the OpenAPI document describe every error answer,
// huma's own included, as package api's Problem.
func problemSchemas(reg huma.Registry) {
	reg.RegisterTypeAlias(reflect.TypeFor[huma.ErrorModel](), reflect.TypeFor[tapi.Problem]())
	reg.RegisterTypeAlias(reflect.TypeFor[Problem](), reflect.TypeFor[tapi.Problem]())
}
