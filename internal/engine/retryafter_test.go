package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// TestRetryAfterCapped: a target that answers Retry-After: 86400 is waited
// for retry.max_retry_after (default retry.max), not a day: both the
// delivery's next attempt and the target-wide pause.
func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		retry string
		want  time.Duration
	}{
		{"max_retry_after", "{ max: 1m, max_retry_after: 10s }", 10 * time.Second},
		{"default: retry.max", "{ max: 20s }", 20 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			tg := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
				if n == 1 {
					return 429, http.Header{"Retry-After": {"86400"}}, `{}`
				}
				return 200, nil, `{}`
			})
			s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q, retry: %s }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL, tc.retry), engine.Options{Now: clk.Now, Logger: quiet(), Jitter: func() float64 { return 0 }})
			t0 := clk.Now()
			id := ingest(t, s.eng, "r", `{}`, "").Body.ID
			md := waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Deliveries[0].Attempts == 1 })
			if d := md.Deliveries[0]; d.Status != record.DeliveryScheduled || !d.NextAttemptAt.Equal(t0.Add(tc.want)) {
				t.Errorf("delivery: %s, next attempt at t0+%v; want scheduled at t0+%v", d.Status, d.NextAttemptAt.Sub(t0), tc.want)
			}
			if h := health(t, s.eng, "t"); !h.PausedUntil.Equal(t0.Add(tc.want)) {
				t.Errorf("target paused until t0+%v, want t0+%v", h.PausedUntil.Sub(t0), tc.want)
			}
			clk.Advance(tc.want)
			s.eng.Wake("t")
			waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
		})
	}
}

// TestPauseKeepsOwnSchedule: a delivery claimed before a target paused and
// stopped at the gate during the pause is given back as due as its own
// schedule says (now), not at the pause's end: the pause lives in one
// process's memory, and written into the store it would hold every
// replica and outlive a restart. It is not sent while the pause lasts.
func TestPauseKeepsOwnSchedule(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tg := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"30"}}, `{}`
		}
		return 200, nil, `{}`
	})
	const held = "m-held"
	reading := make(chan struct{})
	goOn := make(chan struct{})
	st := &readHookStore{Store: openSQLite(t)}
	var once sync.Once
	st.before = func(_ context.Context, id string, _ int64) error {
		if id == held {
			once.Do(func() { // the first read only
				close(reading)
				<-goOn
			})
		}
		return nil
	}
	eng := startOn(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), st, engine.Options{Now: clk.Now})
	// The first message is claimed and held while its message is read.
	ctx := context.Background()
	if _, err := st.Store.MessageInsert(ctx, insertOne(held, "r", "s", "t", clk.Now())); err != nil {
		t.Fatal(err)
	}
	eng.Wake("t")
	<-reading
	// A second message meets the 429 that pauses the target.
	second := ingest(t, eng, "r", `{}`, "").Body.ID
	waitMessage(t, st.Store, second, func(md *record.MessageDetail) bool { return md.Deliveries[0].Attempts == 1 })
	t0 := clk.Now()
	if h := health(t, eng, "t"); !h.PausedUntil.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("paused until t0+%v, want t0+30s", h.PausedUntil.Sub(t0))
	}
	close(goOn)
	md := waitMessage(t, st.Store, held, func(md *record.MessageDetail) bool { return md.Deliveries[0].Status != record.DeliveryRunning })
	if d := md.Deliveries[0]; d.Status != record.DeliveryScheduled || d.Attempts != 0 || !d.NextAttemptAt.Equal(t0) {
		t.Errorf("delivery stopped by the pause: %s, %d attempts, due at t0+%v; want scheduled, uncounted, due at t0", d.Status, d.Attempts, d.NextAttemptAt.Sub(t0))
	}
	if n := tg.calls.Load(); n != 1 {
		t.Errorf("the paused target got %d requests, want 1 (the 429)", n)
	}
	clk.Advance(30 * time.Second)
	eng.Wake("t")
	waitMessage(t, st.Store, held, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
}

// insertOne is a message with one delivery, due at now, as ingest would
// commit it, under a chosen id.
func insertOne(id, route, step, target string, now time.Time) *store.MessageInsertParams {
	return &store.MessageInsertParams{
		Message:    record.Message{ID: id, Route: route, Body: []byte(`{}`), BodyHash: "h-" + id},
		Deliveries: []record.Delivery{{ID: id + "." + step, Step: step, Target: target, Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now}},
		Now:        &now,
	}
}
