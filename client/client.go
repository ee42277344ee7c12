// Package client is a small Go client for tandem's admin API and routes.
//
//	c := client.New("http://127.0.0.1:8080", os.Getenv("TANDEM_API_KEY"))
//	msg, err := c.Message(ctx, id)
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-run/tandem/api"
)

// Client talks to one tandem server.
type Client struct {
	base string
	key  string
	http *http.Client
}

// New returns a client for the server at base (e.g. http://127.0.0.1:8080).
// key, when not empty, is sent as "Authorization: Bearer <key>".
func New(base, key string) *Client {
	return &Client{base: strings.TrimRight(base, "/"), key: key, http: &http.Client{Timeout: 60 * time.Second}}
}

// Problem is an error answer of the server (RFC 9457). errors.Is matches
// it against the sentinels below by its Type:
//
//	if errors.Is(err, client.ErrNotDead) { ... }
type Problem = api.Problem

// ErrorDetail is one field error of a Problem.
type ErrorDetail = api.ErrorDetail

// Sentinels for errors.Is, one per problem type the server sends (see
// package api and docs/api.md).
var (
	ErrMalformedRequest     = api.ErrMalformedRequest
	ErrInvalidCursor        = api.ErrInvalidCursor
	ErrUnauthorized         = api.ErrUnauthorized
	ErrForbidden            = api.ErrForbidden
	ErrNotFound             = api.ErrNotFound
	ErrMethodNotAllowed     = api.ErrMethodNotAllowed
	ErrIdempotencyInFlight  = api.ErrIdempotencyInFlight
	ErrNotDead              = api.ErrNotDead
	ErrReplayRefused        = api.ErrReplayRefused
	ErrTooLarge             = api.ErrTooLarge
	ErrUnsupportedMediaType = api.ErrUnsupportedMediaType
	ErrValidation           = api.ErrValidation
	ErrIdempotencyConflict  = api.ErrIdempotencyConflict
	ErrInternal             = api.ErrInternal
	ErrUnavailable          = api.ErrUnavailable
	ErrShuttingDown         = api.ErrShuttingDown
	ErrMisdirected          = api.ErrMisdirected
	ErrOverloaded           = api.ErrOverloaded
)

// The answers of the admin API, shared with the server.
type (
	// Message is a message with its deliveries (GET /v1/messages/{id}).
	Message = api.MessageDetail
	// Delivery is one step of a message, or a saga's compensation.
	Delivery = api.Delivery
	// Attempt is one HTTP try of a delivery.
	Attempt = api.Attempt
	// MessageSummary is one row of GET /v1/messages.
	MessageSummary = api.MessageSummary
	// DeadLetter is one row of GET /v1/dead-letters.
	DeadLetter = api.DeadLetter
	// ReplayRequest selects dead letters to replay: by IDs, by
	// Route/Target, or All.
	ReplayRequest = api.ReplayRequest
	// Route is one configured route (GET /v1/routes).
	Route = api.RouteInfo
	// Target is one target with its queue and health (GET /v1/targets).
	Target = api.Target
)

// ListOptions filter a list; zero values do not filter.
type ListOptions struct {
	Status, Route, Target string
	Limit                 int
	Cursor                string
}

func (o ListOptions) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"status": o.Status, "route": o.Route, "target": o.Target, "cursor": o.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// Messages lists messages newest first; next is the cursor of the next page.
func (c *Client) Messages(ctx context.Context, o ListOptions) (ms []MessageSummary, next string, err error) {
	var out api.MessageList
	err = c.do(ctx, http.MethodGet, "/v1/messages"+o.query(), nil, &out)
	return out.Messages, out.NextCursor, err
}

// Message returns one message with its deliveries and attempts.
func (c *Client) Message(ctx context.Context, id string) (*Message, error) {
	var m Message
	if err := c.do(ctx, http.MethodGet, "/v1/messages/"+url.PathEscape(id), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DeadLetters lists dead deliveries newest first.
func (c *Client) DeadLetters(ctx context.Context, o ListOptions) (ds []DeadLetter, next string, err error) {
	var out api.DeadLetterList
	o.Status = ""
	err = c.do(ctx, http.MethodGet, "/v1/dead-letters"+o.query(), nil, &out)
	return out.DeadLetters, out.NextCursor, err
}

// Replay sends dead letters back to work and returns the replayed ids.
func (c *Client) Replay(ctx context.Context, r ReplayRequest) ([]string, error) {
	var out api.ReplayResult
	err := c.do(ctx, http.MethodPost, "/v1/dead-letters/replay", r, &out)
	return out.IDs, err
}

// ReplayDelivery sends one dead delivery back to work. A delivery that is
// not dead gives an error that matches ErrNotDead.
func (c *Client) ReplayDelivery(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/replay", struct{}{}, nil)
}

// Routes lists the configured routes.
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var out api.RouteList
	err := c.do(ctx, http.MethodGet, "/v1/routes", nil, &out)
	return out.Routes, err
}

// Targets lists the targets with their queues and this server's view of
// their health.
func (c *Client) Targets(ctx context.Context) ([]Target, error) {
	var out api.TargetList
	err := c.do(ctx, http.MethodGet, "/v1/targets", nil, &out)
	return out.Targets, err
}

// SendResult is a route's answer.
type SendResult struct {
	StatusCode int
	Location   string
	Header     http.Header
	Body       json.RawMessage
}

// Send posts body to a route path (e.g. /orders) with an optional
// Idempotency-Key, and returns the answer whatever its status.
func (c *Client) Send(ctx context.Context, path string, body []byte, contentType, idempotencyKey string) (*SendResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	return &SendResult{StatusCode: resp.StatusCode, Location: resp.Header.Get("Location"), Header: resp.Header, Body: b}, nil
}

// Err returns the answer as a *Problem when the server refused the request
// with a problem document (a 4xx or 5xx of tandem itself), else nil. A
// route's own answers (200, 202, 207, 502 with the steps' results) are not
// errors.
func (r *SendResult) Err() error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.StatusCode < 400 || mt != problemContentType {
		return nil
	}
	return problemOf(r.StatusCode, r.Body)
}

// Replayed reports whether the answer is the first answer of an earlier
// request with the same Idempotency-Key.
func (r *SendResult) Replayed() bool { return r.Header.Get("Idempotent-Replayed") == "true" }

func (c *Client) auth(req *http.Request) {
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return problemOf(resp.StatusCode, b)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// problemContentType is the media type of the server's error answers.
const problemContentType = "application/problem+json"

// problemOf decodes an error answer. What is not a problem document (a
// proxy's HTML page, say) still gives a Problem with the status, and with
// no Type, so it matches no sentinel.
func problemOf(status int, body []byte) *Problem {
	p := &Problem{}
	if err := json.Unmarshal(body, p); err != nil || p.Status == 0 {
		p = &Problem{}
	}
	p.Status = status
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	return p
}
