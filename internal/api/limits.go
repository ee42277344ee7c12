package api

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
)

// waitCap counts the callers waiting for an answer on routes that answer
// after their steps (server.max_waiting).
type waitCap struct {
	n   atomic.Int64
	max int64
}

// enter takes a place, or reports false when all are taken.
func (c *waitCap) enter() bool {
	if c.n.Add(1) > c.max {
		c.n.Add(-1)
		return false
	}
	return true
}

// leave gives a place back.
func (c *waitCap) leave() { c.n.Add(-1) }

// overloadRetryAfter is the Retry-After of an overloaded answer, in seconds.
const overloadRetryAfter = 1

// overloaded is the 503 for a caller beyond server.max_waiting.
func overloaded(max int64) *Problem {
	return newProblem(tapi.ErrOverloaded, fmt.Sprintf("%d callers are waiting for answers already (server.max_waiting); nothing was accepted, send again later", max)).
		withHeader("Retry-After", strconv.Itoa(overloadRetryAfter))
}

// schemaProblem is the 422 for a body that fails its route's schema: one
// field error per violation, with its JSON pointer.
func schemaProblem(se *engine.SchemaError) *Problem {
	p := newProblem(tapi.ErrValidation, fmt.Sprintf("the body does not match the JSON Schema of route %s; nothing was stored", se.Route))
	for _, v := range se.Violations {
		ptr := v.Pointer
		p.Errors = append(p.Errors, &tapi.ErrorDetail{Message: v.Message, Location: "body" + ptr, Pointer: &ptr})
	}
	return p
}

// ConfigureServer sets srv's timeouts and header limit from cfg.Server
// (defaults filled by the config loader; zero keeps net/http's own).
// `tandem serve` calls it on its listener.
func ConfigureServer(srv *http.Server, cfg *config.Config) {
	s := cfg.Server
	srv.ReadHeaderTimeout = s.ReadHeaderTimeout.D()
	srv.ReadTimeout = s.ReadTimeout.D()
	srv.WriteTimeout = s.WriteTimeout.D()
	srv.IdleTimeout = s.IdleTimeout.D()
	srv.MaxHeaderBytes = int(s.MaxHeaderBytes)
}

// streaming lifts server.write_timeout (and read_timeout) off a
// long-lived answer, such as a Server-Sent Events stream: net/http's
// WriteTimeout would otherwise cut it. A streaming handler calls it before
// its first write and bounds the stream itself (heartbeats, ctx).
func streaming(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
}
