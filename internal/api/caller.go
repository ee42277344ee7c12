package api

import (
	"context"
	"net/http"
)

// callerCtxKey keys the caller's identity in a request's context.
type callerCtxKey struct{}

// withCaller returns ctx carrying the caller's identity: "key:<name>" for
// an API key, "jwt:<subject>" for a JWT (the auth layer sets it once it
// has checked the credential). It namespaces Idempotency-Keys: the same
// key from two callers names two messages.
func withCaller(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, callerCtxKey{}, id)
}

// callerKey returns the caller identity set by withCaller, or "".
func callerKey(ctx context.Context) string {
	id, _ := ctx.Value(callerCtxKey{}).(string)
	return id
}

// callerOf names who sent r, once the ingest auth check has passed: the
// identity the auth layer put in the context, else the name of the API
// key the request carries, else "" (no keys configured: anonymous).
func (s *server) callerOf(r *http.Request) string {
	if id := callerKey(r.Context()); id != "" {
		return id
	}
	if !s.auth.enabled() {
		return ""
	}
	if k, p := s.auth.identify(r); p == nil && k != nil {
		return "key:" + k.name
	}
	return ""
}
