package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	return openSQLiteAt(t, t.TempDir())
}

func openSQLiteAt(t testing.TB, dir string) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{
		DSN: "file:" + filepath.Join(dir, "tandem.db"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// running starts a hub on st and returns it with the wrapped store.
func running(t *testing.T, opts Options) (*Hub, store.Store) {
	t.Helper()
	h := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, h.Wrap(opts.Store)
}

// insert commits a message of route with steps a (due) and b (after a).
func insert(t *testing.T, st store.Store, id, route string) {
	t.Helper()
	now := t0
	_, err := st.MessageInsert(context.Background(), &store.MessageInsertParams{
		Message: record.Message{ID: id, Route: route, Body: []byte(`{}`), BodyHash: "h-" + id},
		Deliveries: []record.Delivery{
			{ID: id + ".a", Step: "a", Target: "ta", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now},
			{ID: id + ".b", Step: "b", Target: "tb", Required: true, Status: record.DeliveryWaiting, After: []string{"a"}},
		},
		Now: &now,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// warmInsert commits a message of route "warm" with one delivery to a
// target no other test claims.
func warmInsert(t *testing.T, st store.Store, id string) {
	t.Helper()
	now := t0
	_, err := st.MessageInsert(context.Background(), &store.MessageInsertParams{
		Message:    record.Message{ID: id, Route: "warm", Body: []byte(`{}`), BodyHash: "h-" + id},
		Deliveries: []record.Delivery{{ID: id + ".w", Step: "w", Target: "tw", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now}},
		Now:        &now,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deliver claims the due delivery of target and records one attempt
// with status st (succeeded or dead).
func deliver(t *testing.T, s store.Store, target string, st record.DeliveryStatus) {
	t.Helper()
	ctx := context.Background()
	now := t0.Add(time.Second)
	ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: target, Limit: 1, LeaseFor: time.Minute, Owner: "w", Now: &now})
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim %s: %v (%d)", target, err, len(ds))
	}
	a := record.Attempt{N: ds[0].Attempts + 1, StartedAt: now, Duration: 5 * time.Millisecond, HTTPStatus: 200, Outcome: record.OutcomeSuccess}
	p := store.CompleteSucceeded(store.LeaseOf(&ds[0]), a, store.Response{Status: 200, Body: []byte(`{"ok":true}`)})
	if st == record.DeliveryDead {
		a.HTTPStatus, a.Outcome, a.Error = 400, record.OutcomePermanent, "status 400 Bad Request"
		p = store.CompleteDead(store.LeaseOf(&ds[0]), a, store.Response{Status: 400}, "status 400 Bad Request")
	}
	p.Now = &now
	if _, err := s.DeliveryComplete(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// next waits (bounded) for the next event on sub.
func next(t *testing.T, sub *Subscription) Event {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case e, ok := <-sub.C:
		if !ok {
			t.Fatalf("subscription closed: %v", sub.Err())
		}
		return e
	case <-timer.C:
		t.Fatal("no event within 10s")
	}
	return Event{}
}

// brief describes an event for comparisons: kind, step and status.
func brief(e Event) string {
	switch e.Kind {
	case KindMessage:
		return fmt.Sprintf("message %s %s", e.Message.ID, e.Message.Status)
	case KindDelivery:
		return fmt.Sprintf("delivery %s %s", e.Delivery.Step, e.Delivery.Status)
	case KindAttempt:
		return fmt.Sprintf("attempt %s #%d %s", e.Delivery.Step, e.Attempt.N, e.Attempt.Outcome)
	}
	return fmt.Sprintf("reset %s", e.Reason)
}

func want(t *testing.T, sub *Subscription, briefs ...string) []Event {
	t.Helper()
	var got []Event
	for _, b := range briefs {
		e := next(t, sub)
		got = append(got, e)
		if brief(e) != b {
			t.Fatalf("event %d: %q, want %q", len(got), brief(e), b)
		}
	}
	return got
}

func TestStreamFollowsTheStore(t *testing.T) {
	h, st := running(t, Options{Store: openSQLite(t)})
	sub := h.Subscribe(Filter{}, "")
	defer sub.Close()
	insert(t, st, "m1", "orders")
	evs := want(t, sub, "message m1 accepted", "delivery a scheduled", "delivery b waiting")
	if evs[0].Message.Route != "orders" || evs[1].Message.ID != "m1" || evs[1].Delivery.Target != "ta" {
		t.Errorf("events lack their message or target: %+v", evs)
	}
	deliver(t, st, "ta", record.DeliverySucceeded)
	// The claim (running) may be read together with the completion.
	e := next(t, sub)
	if brief(e) == "delivery a running" {
		e = next(t, sub)
	}
	if brief(e) != "attempt a #1 success" {
		t.Fatalf("got %q, want the attempt", brief(e))
	}
	want(t, sub, "delivery a succeeded", "delivery b scheduled", "message m1 running")
	deliver(t, st, "tb", record.DeliveryDead)
	e = next(t, sub)
	if brief(e) == "delivery b running" {
		e = next(t, sub)
	}
	if brief(e) != "attempt b #1 permanent" || e.Attempt.HTTPStatus != 400 {
		t.Fatalf("got %q (%+v), want the failed attempt", brief(e), e.Attempt)
	}
	evs = want(t, sub, "delivery b dead", "message m1 partially_succeeded")
	for i := 1; i < len(evs); i++ {
		if evs[i].seq != evs[i-1].seq+1 {
			t.Errorf("ids %s then %s: want consecutive", evs[i-1].ID, evs[i].ID)
		}
	}
	// A replay is seen too.
	if _, err := st.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{"m1.b"}}); err != nil {
		t.Fatal(err)
	}
	want(t, sub, "delivery b scheduled", "message m1 running")
}

func TestFilters(t *testing.T) {
	h, st := running(t, Options{Store: openSQLite(t)})
	byRoute := h.Subscribe(Filter{Route: "b-route"}, "")
	byMessage := h.Subscribe(Filter{MessageID: "m2"}, "")
	byStatus := h.Subscribe(Filter{Statuses: []string{"waiting", "failed"}}, "")
	defer byRoute.Close()
	defer byMessage.Close()
	defer byStatus.Close()
	insert(t, st, "m1", "a-route")
	insert(t, st, "m2", "b-route")
	want(t, byRoute, "message m2 accepted", "delivery a scheduled", "delivery b waiting")
	e := want(t, byMessage, "message m2 accepted")
	if e[0].Message.ID != "m2" {
		t.Fatal(e)
	}
	for _, id := range []string{"m1", "m2"} {
		e := want(t, byStatus, "delivery b waiting")
		if e[0].Message.ID != id {
			t.Errorf("status filter: message %s, want %s", e[0].Message.ID, id)
		}
	}
}

func TestResume(t *testing.T) {
	h, st := running(t, Options{Store: openSQLite(t), Buffer: 6})
	sub := h.Subscribe(Filter{}, "")
	insert(t, st, "m1", "r")
	evs := want(t, sub, "message m1 accepted", "delivery a scheduled", "delivery b waiting")
	sub.Close()
	// Within the buffer: what followed the id, exactly once.
	again := h.Subscribe(Filter{}, evs[0].ID)
	if len(again.Backlog) != 2 || again.Backlog[0].ID != evs[1].ID || again.Backlog[1].ID != evs[2].ID {
		t.Fatalf("backlog %+v, want events 2 and 3", again.Backlog)
	}
	if last := h.Subscribe(Filter{}, evs[2].ID); len(last.Backlog) != 0 {
		t.Errorf("resume from the last event: backlog %+v, want none", last.Backlog)
	} else {
		last.Close()
	}
	// Past the buffer: a reset.
	insert(t, st, "m2", "r")
	insert(t, st, "m3", "r")
	for range 6 {
		next(t, again)
	}
	again.Close()
	for _, c := range []struct{ id, reason string }{
		{evs[0].ID, ReasonExpired},
		{"0123456789ab-1", ReasonUnknownID},
		{h.Epoch() + "-999999", ReasonUnknownID},
		{"nonsense", ReasonUnknownID},
	} {
		s := h.Subscribe(Filter{}, c.id)
		if len(s.Backlog) != 1 || s.Backlog[0].Kind != KindReset || s.Backlog[0].Reason != c.reason {
			t.Errorf("resume from %q: backlog %+v, want one reset %s", c.id, s.Backlog, c.reason)
		}
		if s.Backlog[0].ID != h.LastID() {
			t.Errorf("reset id %s, want the last id %s", s.Backlog[0].ID, h.LastID())
		}
		s.Close()
	}
}

func TestSlowSubscriberIsDroppedNotWaitedFor(t *testing.T) {
	h, st := running(t, Options{Store: openSQLite(t), ClientBuffer: 4})
	stuck := h.Subscribe(Filter{}, "") // never read
	reader := h.Subscribe(Filter{MessageID: "m19"}, "")
	defer reader.Close()
	for i := range 20 {
		insert(t, st, fmt.Sprintf("m%d", i), "r") // returns at once: nothing waits for stuck
	}
	want(t, reader, "message m19 accepted", "delivery a scheduled", "delivery b waiting")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, open := <-stuck.C; !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stuck subscriber was not dropped")
		}
	}
	if stuck.Err() != ErrSlow || h.Dropped() != 1 {
		t.Errorf("err %v, dropped %d: want ErrSlow, 1", stuck.Err(), h.Dropped())
	}
}

func TestIdleHubDoesNotRead(t *testing.T) {
	now := t0
	h, st := running(t, Options{Store: openSQLite(t), Linger: time.Minute, Now: func() time.Time { return now }})
	insert(t, st, "m1", "r") // nobody listens: not read back
	h.pmu.Lock()
	n := len(h.pending)
	h.pmu.Unlock()
	if n != 0 {
		t.Fatalf("%d pending with no subscriber", n)
	}
	sub := h.Subscribe(Filter{}, "")
	id := h.LastID()
	sub.Close()
	// Within the linger a resume is exact; after it, a reset.
	now = now.Add(30 * time.Second)
	insert(t, st, "m2", "r")
	waitFor(t, func() bool { return h.LastID() != id })
	s := h.Subscribe(Filter{}, id)
	if len(s.Backlog) == 0 || s.Backlog[0].Kind != KindMessage || s.Backlog[0].Message.ID != "m2" {
		t.Fatalf("resume within the linger: %+v", s.Backlog)
	}
	s.Close()
	id = h.LastID()
	now = now.Add(2 * time.Minute)
	insert(t, st, "m3", "r")
	s = h.Subscribe(Filter{}, id)
	if len(s.Backlog) != 1 || s.Backlog[0].Reason != ReasonExpired {
		t.Fatalf("resume after the linger: %+v, want a reset", s.Backlog)
	}
	s.Close()
}

// TestReplicasSeeEachOther runs two hubs on two stores of one PostgreSQL
// database: what one replica writes, the other's subscribers see.
func TestReplicasSeeEachOther(t *testing.T) {
	dsn := os.Getenv("TANDEM_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TANDEM_TEST_POSTGRES is not set")
		}
		t.Skip("TANDEM_TEST_POSTGRES is not set")
	}
	schema := fmt.Sprintf("events_%d", time.Now().UnixNano())
	open := func() store.Store {
		s, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, Schema: schema, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	t.Cleanup(func() {
		if p, ok := a.(*postgres.Store); ok {
			_, _ = p.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		}
	})
	_, wa := running(t, Options{Store: a})
	hb, _ := running(t, Options{Store: b})
	// b's listener connects in the background; a notice sent before it
	// listens is lost (and announced by a reset). Warm up on another
	// route until b sees one, so the real message is sent to a listener.
	warm := hb.Subscribe(Filter{Route: "warm"}, "")
	seen := false
	for i := 0; i < 30 && !seen; i++ {
		warmInsert(t, wa, fmt.Sprintf("w%d", i))
		timer := time.NewTimer(time.Second)
	wait:
		for {
			select {
			case e := <-warm.C:
				if e.Kind != KindReset {
					seen = true
					break wait
				}
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
	}
	warm.Close()
	if !seen {
		t.Fatal("replica b saw none of 30 messages of replica a")
	}
	sub := hb.Subscribe(Filter{Route: "r"}, "")
	defer sub.Close()
	insert(t, wa, "m1", "r")
	var got []string
	for len(got) < 3 {
		if e := next(t, sub); e.Kind != KindReset { // b's listener may (re)connect meanwhile
			got = append(got, brief(e))
		}
	}
	if fmt.Sprint(got) != "[message m1 accepted delivery a scheduled delivery b waiting]" {
		t.Fatalf("replica b saw %q", got)
	}
	deliver(t, wa, "ta", record.DeliverySucceeded)
	for {
		e := next(t, sub)
		if brief(e) == "message m1 running" {
			break
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOverflowResets(t *testing.T) {
	st := openSQLite(t)
	h := New(Options{Store: st, MaxPending: 2}) // not running: the test drains by hand
	sub := h.Subscribe(Filter{}, "")
	defer sub.Close()
	for _, id := range []string{"m1", "m2", "m3"} {
		insert(t, st, id, "r")
	}
	before := h.LastID()
	h.Changed("m1", "m2", "m3") // m3 does not fit
	h.drain(context.Background())
	e := next(t, sub)
	if e.Kind != KindReset || e.Reason != ReasonLost {
		t.Fatalf("first event %q, want a reset (lost)", brief(e))
	}
	want(t, sub, "message m1 accepted", "delivery a scheduled", "delivery b waiting", "message m2 accepted")
	// A resume from before the loss is not exact any more.
	s := h.Subscribe(Filter{}, before)
	defer s.Close()
	if len(s.Backlog) != 1 || s.Backlog[0].Reason != ReasonExpired {
		t.Fatalf("resume across the loss: %+v", s.Backlog)
	}
}
