// Package api is tandem's HTTP server: the configured routes (ingest), the
// admin API under /v1 (huma, OpenAPI 3.1 at /openapi.json), /metrics,
// /healthz and /readyz. New returns one http.Handler for all of it.
//
// Invariants:
//
//   - Every error answer is an RFC 9457 problem (application/problem+json)
//     of the one Problem type (package api's, github.com/tandem-run/tandem/api),
//     with a stable type URI: plain handlers write it with writeProblem, huma
//     writes it through the toProblem transformer, which also converts
//     huma's own errors. huma's package-level NewError is never set, so a
//     program embedding tandem keeps its own. Errors of the engine and the
//     store become problems in one table (errorRules). Unknown paths get
//     404, known paths with another method 405 with an Allow header.
//   - The answers of the admin API are package api's types, which the Go
//     client decodes too.
//   - Bad input never reaches a 5xx: body size (413), JSON syntax on JSON
//     content types, Idempotency-Key and query syntax (400) are checked
//     before the engine is called. Only engine and store failures are 5xx:
//     503 with Retry-After when the store is unavailable (on a route: the
//     message may have been accepted) or the engine is shutting down, else
//     a generic 500 logged once here. Panics are
//     recovered as a logged 500 (defence in depth).
//   - Authorization, Cookie and Proxy-Authorization never reach the engine,
//     and API keys are never logged: only their sha256 is kept.
//   - With no auth keys the admin API, /metrics and /openapi.json answer
//     loopback clients only; /healthz and /readyz are always open.
//   - The event streams (GET /v1/events, GET /v1/messages/{id}/events,
//     events.go) never hold anything up: each write has a deadline, a
//     client that falls behind is dropped by the hub (internal/events), and
//     every stream ends when shutdown begins (events.Hub.Close). The
//     dashboard (Options.UI, internal/ui) is mounted at /ui/ and does its
//     own auth; it reads through Admin, the same views and operations.
//   - Route paths are exact; paths of tandem's own endpoints (/v1, /ui,
//     /metrics, /healthz, /readyz, /openapi.json, and below them) cannot be
//     routes: config.ReservedPath is the one list.
package api
