package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// A W3C traceparent and tracestate as an ingest span leaves them.
const (
	traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceState  = "tandem=1,congo=t61rcWkgMzE"
)

// testTraceContext: a message keeps its trace context, and every read
// gives it back: the detail, a list, a claimed delivery's message, and an
// idempotent repeat (which keeps the first message's context). A malformed
// context is refused as invalid params.
func testTraceContext(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	m := msg("m1", "orders")
	m.IdempotencyKey = "k1"
	m.TraceParent, m.TraceState = traceParent, traceState
	insert(t, s, at(0), m, due("d1", "charge", "payments", 0))
	plain := msg("m2", "orders")
	insert(t, s, at(0), plain, due("d2", "charge", "payments", 0))

	want := func(where string, got record.Message, parent, state string) {
		t.Helper()
		if got.TraceParent != parent || got.TraceState != state {
			t.Errorf("%s: trace context %q %q, want %q %q", where, got.TraceParent, got.TraceState, parent, state)
		}
	}
	want("get", get(t, s, "m1").Message, traceParent, traceState)
	want("get untraced", get(t, s, "m2").Message, "", "")

	list, err := s.MessageList(ctx, &store.MessageListParams{Route: "orders"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	seen := 0
	for _, lm := range list.Messages {
		switch lm.ID {
		case "m1":
			want("list", lm, traceParent, traceState)
			seen++
		case "m2":
			want("list untraced", lm, "", "")
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("list: %d of 2 messages", seen)
	}

	// A worker on another replica, after any restart, reads the context
	// from the claimed delivery's message.
	for _, d := range claim(t, s, "payments", "w1", 2, lease, at(0)) {
		if d.Message == nil {
			d.Message = &get(t, s, d.MessageID).Message
		}
		if d.MessageID == "m1" {
			want("claimed delivery's message", *d.Message, traceParent, traceState)
		} else {
			want("claimed untraced", *d.Message, "", "")
		}
	}

	// A repeat under the same key is the first message, context and all.
	again := msg("m3", "orders")
	again.IdempotencyKey = "k1"
	again.Body, again.BodyHash = m.Body, m.BodyHash
	again.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res := insert(t, s, at(1), again, due("d3", "charge", "payments", 0))
	if !res.Existing || res.Message.ID != "m1" {
		t.Fatalf("repeat: existing %v id %q, want the first message m1", res.Existing, res.Message.ID)
	}
	want("repeat", res.Message, traceParent, traceState)

	bad := []struct{ name, parent, state string }{
		{"short", "00-4bf92f3577b34da6-00f067aa0ba902b7-01", ""},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", ""},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"state alone", "", "congo=t61rcWkgMzE"},
		{"state too long", traceParent, "a=" + strings.Repeat("b", store.MaxTraceState)},
	}
	for i, b := range bad {
		x := msg("bad"+string(rune('a'+i)), "orders")
		x.TraceParent, x.TraceState = b.parent, b.state
		_, err := s.MessageInsert(ctx, &store.MessageInsertParams{Message: x, Now: at(2)})
		if !store.IsInvalid(err) {
			t.Errorf("insert with %s trace context: error %v, want an invalid-params error", b.name, err)
		}
	}
}
