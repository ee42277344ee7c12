package engine

import (
	"context"
	"net/http"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/target"
)

// buildRequest makes the HTTP request of one delivery: the step forwards
// the inbound body unchanged, with the Idempotency-Key
// "{message_id}.{step}". d.Message is set.
func (tr *targetRunner) buildRequest(_ context.Context, sp *stepPlan, d *record.Delivery) (*target.Request, error) {
	return &target.Request{
		Endpoint:       tr.endpoint,
		Method:         sp.cfg.Method,
		Body:           d.Message.Body,
		Header:         forwardHeaders(d.Message.Headers),
		IdempotencyKey: d.MessageID + "." + d.Step,
	}, nil
}

// forwardHeaders picks the inbound headers a forwarded body needs.
func forwardHeaders(h map[string][]string) http.Header {
	out := http.Header{}
	if v := h["Content-Type"]; len(v) > 0 {
		out["Content-Type"] = v
	}
	return out
}
