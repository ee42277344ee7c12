package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// Request is a request to one of the server's routes.
type Request struct {
	Method string // default POST
	Path   string // e.g. /orders
	Body   []byte
	// Header holds the request's headers (Content-Type, Idempotency-Key,
	// anything the route reads); the client adds Authorization.
	Header http.Header
}

// SendRequest sends r to a route and returns the answer whatever its
// status.
func (c *Client) SendRequest(ctx context.Context, r *Request) (*SendResult, error) {
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+r.Path, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
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
