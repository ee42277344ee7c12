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
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
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

// Problem is an error answer of the server (RFC 9457).
type Problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// Message is a message with its deliveries (GET /v1/messages/{id}).
type Message struct {
	ID             string          `json:"id"`
	Route          string          `json:"route"`
	Status         string          `json:"status"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	IdempotencyKey string          `json:"idempotency_key"`
	Body           json.RawMessage `json:"body"`
	Deliveries     []Delivery      `json:"deliveries"`
}

// Terminal reports whether no delivery of the message will run again
// without a replay.
func (m *Message) Terminal() bool {
	switch m.Status {
	case "succeeded", "partially_succeeded", "failed", "compensated":
		return true
	}
	return false
}

// Delivery is one step of a message.
type Delivery struct {
	ID            string     `json:"id"`
	Step          string     `json:"step"`
	Target        string     `json:"target"`
	Status        string     `json:"status"`
	After         []string   `json:"after"`
	Required      bool       `json:"required"`
	Attempts      []Attempt  `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastError     string     `json:"last_error"`
	Replays       int        `json:"replays"`
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	N          int       `json:"n"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	HTTPStatus int       `json:"http_status"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error"`
}

// MessageSummary is one row of GET /v1/messages.
type MessageSummary struct {
	ID             string    `json:"id"`
	Route          string    `json:"route"`
	Status         string    `json:"status"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	IdempotencyKey string    `json:"idempotency_key"`
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
	var out struct {
		Messages   []MessageSummary `json:"messages"`
		NextCursor string           `json:"next_cursor"`
	}
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
	var out struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
		NextCursor  string       `json:"next_cursor"`
	}
	o.Status = ""
	err = c.do(ctx, http.MethodGet, "/v1/dead-letters"+o.query(), nil, &out)
	return out.DeadLetters, out.NextCursor, err
}

// ReplayRequest selects dead letters to replay: by IDs, by Route/Target, or
// All.
type ReplayRequest struct {
	IDs    []string `json:"ids,omitempty"`
	Route  string   `json:"route,omitempty"`
	Target string   `json:"target,omitempty"`
	Limit  int      `json:"limit,omitempty"`
	All    bool     `json:"all,omitempty"`
}

// Replay sends dead letters back to work and returns the replayed ids.
func (c *Client) Replay(ctx context.Context, r ReplayRequest) ([]string, error) {
	var out struct {
		IDs []string `json:"ids"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/dead-letters/replay", r, &out)
	return out.IDs, err
}

// ReplayDelivery sends one dead delivery back to work.
func (c *Client) ReplayDelivery(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/replay", struct{}{}, nil)
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
		p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = json.Unmarshal(b, p)
		return p
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
