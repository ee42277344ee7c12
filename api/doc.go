// Package api holds the JSON shapes of tandem's HTTP API: the answers of the
// admin API under /v1 and the problem documents of every error answer. The
// server (internal/api) renders these types and the Go client (client/)
// decodes them, so the two cannot drift.
//
// Every error answer is a Problem (RFC 9457) whose Type is one of the Type
// constants below; the sentinels (ErrIdempotencyConflict, ErrNotDead, ...)
// match a Problem of that type with errors.Is:
//
//	_, err := c.Send(ctx, ...)
//	if errors.Is(err, api.ErrIdempotencyConflict) { ... }
//
// The struct tags beyond json (doc, enum, nullable, maxLength, ...) describe
// the fields in the server's OpenAPI document; they do nothing else.
package api
