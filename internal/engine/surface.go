package engine

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// Errors the engine returns to the API layer; check with errors.Is.
var (
	// ErrUnknownRoute: no route has that name.
	ErrUnknownRoute = errors.New("unknown route")
	// ErrShuttingDown: the engine no longer accepts messages (503, with
	// Retry-After).
	ErrShuttingDown = errors.New("shutting down")
	// ErrIdempotencyInFlight: a repeat of an Idempotency-Key whose first
	// request still waits for its answer (409).
	ErrIdempotencyInFlight = errors.New("a request with this idempotency key is still in progress")
)

// Inbound is one request received on a route.
type Inbound struct {
	Body           []byte
	Header         http.Header // auth headers already removed by the caller
	Query          url.Values
	IdempotencyKey string // the inbound Idempotency-Key header, if any
	// Caller identifies the caller's credentials (a digest, never the
	// credential); a route's cache keeps answers apart by it unless
	// cache.shared. "" for an anonymous caller.
	Caller string
}

// Answer is what the caller of a route gets back.
type Answer struct {
	// HTTPStatus: 202 accepted; 200/207/502 for respond all; 200/502 for a
	// list of steps; 202 when a waiting caller's deadline passed.
	HTTPStatus int
	// Location is "/v1/messages/{id}" for durable routes.
	Location string
	// Body is the JSON answer.
	Body *MessageAnswer
	// Raw, when set, replaces Body (a route's response template); its
	// content type is JSON.
	Raw json.RawMessage
	// Repeat is true when an idempotency key matched an earlier message.
	Repeat bool
	// Header holds extra answer headers (Tandem-Cache and Age on a cached
	// route).
	Header http.Header

	fresh *freshness // what the targets' Cache-Control allows (cache.go)
}

// MessageAnswer is the JSON body of a route's answer (DESIGN "Answers").
type MessageAnswer struct {
	ID     string                `json:"id"`
	Status record.MessageStatus  `json:"status"`
	Steps  map[string]StepAnswer `json:"steps,omitempty"`
}

// StepAnswer is one step's part of a waiting caller's answer.
type StepAnswer struct {
	Status     record.DeliveryStatus `json:"status"`
	HTTPStatus int                   `json:"http_status,omitempty"`
	Body       json.RawMessage       `json:"body,omitempty"`
	Attempts   int                   `json:"attempts"`
	DurationMS int64                 `json:"duration_ms"`
	Error      string                `json:"error,omitempty"`
}

// RouteInfo describes one configured route for GET /v1/routes.
type RouteInfo struct {
	Name    string   `json:"name"`
	Method  string   `json:"method"`
	Path    string   `json:"path"`
	Respond any      `json:"respond"` // "accepted", "all" or a list of steps
	Durable bool     `json:"durable"`
	Saga    bool     `json:"saga"`
	Steps   []string `json:"steps"`
	Targets []string `json:"targets"`
	// Deadline for waiting callers.
	Deadline time.Duration `json:"-"`
}
