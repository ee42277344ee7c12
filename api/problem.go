package api

import (
	"fmt"
	"net/http"
	"strings"
)

// ProblemTypeBase is the prefix of every problem type tandem sends.
const ProblemTypeBase = "https://tandem.run/problems/"

// The problem types: the "type" of every error answer, one per kind of
// problem. They are stable: a client may branch on them. docs/api.md lists
// when each is sent.
const (
	// TypeMalformedRequest (400): the request cannot be read: a JSON body
	// that is not JSON, a bad Idempotency-Key header, a malformed query.
	TypeMalformedRequest = ProblemTypeBase + "malformed-request"
	// TypeInvalidCursor (400): a cursor this server did not hand out.
	TypeInvalidCursor = ProblemTypeBase + "invalid-cursor"
	// TypeUnauthorized (401): no valid bearer key.
	TypeUnauthorized = ProblemTypeBase + "unauthorized"
	// TypeForbidden (403): the key lacks the scope, or the client may not
	// call this endpoint.
	TypeForbidden = ProblemTypeBase + "forbidden"
	// TypeNotFound (404): no route, endpoint, message or delivery there.
	TypeNotFound = ProblemTypeBase + "not-found"
	// TypeMethodNotAllowed (405): the path is served for other methods.
	TypeMethodNotAllowed = ProblemTypeBase + "method-not-allowed"
	// TypeIdempotencyInFlight (409): the first request with this
	// Idempotency-Key has not been answered yet.
	TypeIdempotencyInFlight = ProblemTypeBase + "idempotency-in-flight"
	// TypeNotDead (409): only dead deliveries can be replayed.
	TypeNotDead = ProblemTypeBase + "not-dead"
	// TypeReplayRefused (409): a forward step of a saga whose compensation
	// has begun cannot be replayed.
	TypeReplayRefused = ProblemTypeBase + "replay-refused"
	// TypeTooLarge (413): the body is over the size limit.
	TypeTooLarge = ProblemTypeBase + "too-large"
	// TypeUnsupportedMediaType (415): the body is not of a media type the
	// endpoint takes.
	TypeUnsupportedMediaType = ProblemTypeBase + "unsupported-media-type"
	// TypeValidation (422): well-formed input that breaks a rule; the
	// field errors say which.
	TypeValidation = ProblemTypeBase + "validation"
	// TypeIdempotencyConflict (422): this Idempotency-Key was already used
	// on this route with another body.
	TypeIdempotencyConflict = ProblemTypeBase + "idempotency-conflict"
	// TypeInternal (500): the server failed; the cause is in its log.
	TypeInternal = ProblemTypeBase + "internal"
	// TypeUnavailable (503): the store or the engine is unavailable; come
	// back after Retry-After.
	TypeUnavailable = ProblemTypeBase + "unavailable"
	// TypeMisdirected (421): the admin API does not answer this Host
	// name (neither a loopback name nor in server.hosts): a guard against
	// DNS rebinding.
	TypeMisdirected = ProblemTypeBase + "misdirected-request"
	// TypeOverloaded (503): more callers are waiting for answers than
	// server.max_waiting allows; come back after Retry-After. Nothing was
	// accepted.
	TypeOverloaded = ProblemTypeBase + "overloaded"
	// TypeShuttingDown (503): the server is shutting down; come back after
	// Retry-After (another replica may answer at once).
	TypeShuttingDown = ProblemTypeBase + "shutting-down"
)

// Sentinels, one per problem type, for errors.Is: a Problem matches the
// sentinel of its Type. Each also gives the status the server sends with
// that type.
var (
	ErrMalformedRequest     = kind(TypeMalformedRequest, http.StatusBadRequest)
	ErrInvalidCursor        = kind(TypeInvalidCursor, http.StatusBadRequest)
	ErrUnauthorized         = kind(TypeUnauthorized, http.StatusUnauthorized)
	ErrForbidden            = kind(TypeForbidden, http.StatusForbidden)
	ErrNotFound             = kind(TypeNotFound, http.StatusNotFound)
	ErrMethodNotAllowed     = kind(TypeMethodNotAllowed, http.StatusMethodNotAllowed)
	ErrIdempotencyInFlight  = kind(TypeIdempotencyInFlight, http.StatusConflict)
	ErrNotDead              = kind(TypeNotDead, http.StatusConflict)
	ErrReplayRefused        = kind(TypeReplayRefused, http.StatusConflict)
	ErrTooLarge             = kind(TypeTooLarge, http.StatusRequestEntityTooLarge)
	ErrUnsupportedMediaType = kind(TypeUnsupportedMediaType, http.StatusUnsupportedMediaType)
	ErrValidation           = kind(TypeValidation, http.StatusUnprocessableEntity)
	ErrIdempotencyConflict  = kind(TypeIdempotencyConflict, http.StatusUnprocessableEntity)
	ErrInternal             = kind(TypeInternal, http.StatusInternalServerError)
	ErrUnavailable          = kind(TypeUnavailable, http.StatusServiceUnavailable)
	ErrShuttingDown         = kind(TypeShuttingDown, http.StatusServiceUnavailable)
	ErrMisdirected          = kind(TypeMisdirected, http.StatusMisdirectedRequest)
	ErrOverloaded           = kind(TypeOverloaded, http.StatusServiceUnavailable)
)

// kinds lists every sentinel, in the order of the table in docs/api.md.
var kinds = []*Problem{
	ErrMalformedRequest, ErrInvalidCursor, ErrUnauthorized, ErrForbidden, ErrNotFound,
	ErrMethodNotAllowed, ErrIdempotencyInFlight, ErrNotDead, ErrReplayRefused, ErrTooLarge,
	ErrUnsupportedMediaType, ErrValidation, ErrIdempotencyConflict, ErrInternal,
	ErrUnavailable, ErrShuttingDown, ErrMisdirected, ErrOverloaded,
}

func kind(typ string, status int) *Problem {
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status}
}

// Problem is the body of every error answer (RFC 9457 problem details).
type Problem struct {
	// Type names the kind of problem: one of the Type constants, or
	// "about:blank" when the status says it all.
	Type string `json:"type" doc:"A URI that names the kind of problem: https://tandem.run/problems/<kind> (listed in docs/api.md), or about:blank when the status says it all."`
	// Title is the status text of Status.
	Title string `json:"title" doc:"A short summary of the kind of problem (the HTTP status text)."`
	// Status repeats the HTTP status code.
	Status int `json:"status" doc:"The HTTP status code."`
	// Detail says what went wrong in this occurrence.
	Detail string `json:"detail,omitempty" doc:"What went wrong in this occurrence."`
	// Instance is the path of the request that failed.
	Instance string `json:"instance,omitempty" doc:"The path of the request that failed."`
	// Errors lists individual validation failures, when there are some.
	Errors []*ErrorDetail `json:"errors,omitempty" doc:"Individual validation failures, if any."`
}

// ErrorDetail is one field error of a Problem: which input is wrong and why.
type ErrorDetail struct {
	// Message says what is wrong.
	Message string `json:"message,omitempty" doc:"Error message text"`
	// Location is where: "query.limit", "body.ids[2]", "path.id".
	Location string `json:"location,omitempty" doc:"Where the error occurred, e.g. 'body.items[3].tags' or 'path.thing-id'"`
	// Pointer is where in the body, as a JSON pointer (RFC 6901), for a
	// body that fails its route's JSON Schema ("" for the whole body).
	Pointer *string `json:"pointer,omitempty" doc:"For a body that fails the route's JSON Schema: the failing value's place in the body, as a JSON pointer (RFC 6901); \"\" is the whole body."`
	// Value is the value found there, echoed back.
	Value any `json:"value,omitempty" doc:"The value at the given location"`
}

// maxErrorValue bounds a field error's value in Problem.Error.
const maxErrorValue = 60

// Error returns the status, the title, the detail and every field error on
// one line: `422 Unprocessable Entity: validation failed; query.status:
// expected value to be one of "accepted, ..." (got "bogus")`.
func (p *Problem) Error() string {
	if p == nil {
		return "<nil problem>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	for _, e := range p.Errors {
		if e == nil || (e.Message == "" && e.Location == "") {
			continue
		}
		b.WriteString("; ")
		if e.Location != "" {
			b.WriteString(e.Location)
			b.WriteString(": ")
		}
		b.WriteString(e.Message)
		if e.Value != nil {
			if v := fmt.Sprintf("%#v", e.Value); len(v) <= maxErrorValue {
				b.WriteString(" (got ")
				b.WriteString(v)
				b.WriteString(")")
			}
		}
	}
	return b.String()
}

// Is reports whether target is a Problem of the same Type, so that
// errors.Is(err, api.ErrNotDead) holds for every "not dead" answer,
// whatever its detail. A target without a Type matches nothing.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	if !ok || p == nil || t == nil || t.Type == "" || t.Type == "about:blank" {
		return false
	}
	return p.Type == t.Type
}
