package api

import "net/http"

// callerOf names who sent r for per-caller state, once the ingest auth
// check has passed: the Namespace of the identity the auth layer put in
// the request's context ("key:<name>" for an API key, "jwt:<iss>:<sub>"
// for a JWT), "" when auth is off (anonymous). The engine keeps
// Idempotency-Keys per route and per this name (engine.Inbound.Caller).
func (s *server) callerOf(r *http.Request) string {
	return callerIdentityFrom(r.Context()).Namespace()
}
