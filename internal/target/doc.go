// Package target makes one HTTP call to a downstream API and classifies
// its outcome. It knows nothing of routes, retries or the store: the engine
// decides what to do with a Result.
//
// Invariants:
//
//   - One Caller holds one shared, pooled http.Transport. Per-endpoint
//     settings (connect timeout, total timeout) travel with each request,
//     never in the transport, so every endpoint shares the connection pool;
//     the exception is an endpoint with its own TLS settings (tls.go),
//     which gets a pool of its own.
//   - Signing (sign.go) is the last thing done to a request: over the exact
//     body bytes sent, at this attempt's time, so a retry carries the same
//     webhook-id and a fresh timestamp and signature.
//   - An OAuth2 token (oauth2.go) is fetched under the attempt's context
//     and never resent within an attempt: a 401 with a cached token drops
//     it and is transient (KindAuth); the next attempt fetches anew. Every
//     request on the wire is one counted attempt.
//   - The connect timeout bounds dialing and the TLS handshake together; the
//     total timeout bounds the whole attempt, response body included.
//   - Every response body is read up to the endpoint's cap, and the rest is
//     drained (up to a bound) before the body is closed, so keep-alive
//     connections go back to the pool.
//   - Redirects are never followed: a 3xx is an answer, classified permanent.
//   - Every failure is an *Error whose Kind names the fault and whose
//     message is fit for a dead letter's reason.
//   - Classify is a pure function of status, error and the success list;
//     Do fills Result.Outcome with it.
package target
