package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// RunPurge checks retention (MessagePurge) and the dead-letter purge
// (DeliveryPurge).
func RunPurge(t *testing.T, open Opener) {
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("RetentionBatches", func(t *testing.T) { testRetentionBatches(t, open) })
	t.Run("DeadLetterPurge", func(t *testing.T) { testDeadLetterPurge(t, open) })
}

func purgeMessages(t *testing.T, s store.Store, p store.MessagePurgeParams) int {
	t.Helper()
	n, err := s.MessagePurge(context.Background(), &p)
	if err != nil {
		t.Fatalf("purge messages: %v", err)
	}
	return n
}

func purgeDead(t *testing.T, s store.Store, p store.DeliveryPurgeParams) []record.Delivery {
	t.Helper()
	ds, err := s.DeliveryPurge(context.Background(), &p)
	if err != nil {
		t.Fatalf("purge dead letters: %v", err)
	}
	return ds
}

// exists reports whether the store still has message id.
func exists(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	_, err := s.MessageGet(context.Background(), id)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		return false
	}
	t.Fatalf("get %s: %v", id, err)
	return false
}

func testRetention(t *testing.T, open Opener) {
	s := open(t)
	// Every message finishes at t0+1h. ok succeeded; failed failed and its
	// dead letter was purged, so it holds none; dead still holds one;
	// mixed succeeded but its optional step is dead; open is still running.
	insert(t, s, at(0), msg("ok", "r"), due("ok-a", "a", "good", 0))
	insert(t, s, at(0), msg("failed", "r"), due("failed-a", "a", "bad", 0))
	insert(t, s, at(0), msg("dead", "r"), due("dead-a", "a", "bad2", 0))
	optional := due("mixed-b", "b", "bad3", 0)
	optional.Required = false
	insert(t, s, at(0), msg("mixed", "r"), due("mixed-a", "a", "good", 0), optional)
	insert(t, s, at(0), msg("open", "r"), due("open-a", "a", "later", 0))
	kill(t, s, "good", record.DeliverySucceeded, at(time.Hour))
	kill(t, s, "bad", record.DeliveryDead, at(time.Hour))
	kill(t, s, "bad2", record.DeliveryDead, at(time.Hour))
	kill(t, s, "bad3", record.DeliveryDead, at(time.Hour))
	wantIDs(t, "purge failed-a", ids(purgeDead(t, s, store.DeliveryPurgeParams{IDs: []string{"failed-a"}, Now: at(time.Hour)})), []string{"failed-a"})
	if st := get(t, s, "mixed").Message.Status; st != record.MessageSucceeded {
		t.Fatalf("mixed is %s", st)
	}

	day := 24 * time.Hour
	keep := store.MessagePurgeParams{Succeeded: day, Failed: 2 * day, Dead: 3 * day}
	steps := []struct {
		now  time.Duration // after t0+1h
		n    int
		gone []string
	}{
		{12 * time.Hour, 0, nil},
		{day + time.Second, 1, []string{"ok"}},
		{2*day + time.Second, 1, []string{"ok", "failed"}},
		{3*day + time.Second, 2, []string{"ok", "failed", "dead", "mixed"}},
		{300 * day, 0, []string{"ok", "failed", "dead", "mixed"}},
	}
	for _, st := range steps {
		p := keep
		p.Now = at(time.Hour + st.now)
		if n := purgeMessages(t, s, p); n != st.n {
			t.Fatalf("at +%s: purged %d, want %d", st.now, n, st.n)
		}
		for _, id := range []string{"ok", "failed", "dead", "mixed", "open"} {
			gone := strings.Contains(strings.Join(st.gone, ","), id)
			if exists(t, s, id) == gone {
				t.Fatalf("at +%s: %s exists: %v, want %v", st.now, id, !gone, !gone)
			}
		}
	}
	// The purged messages' deliveries are gone too; the open one stays.
	res, err := s.DeliveryList(context.Background(), &store.DeliveryListParams{})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "deliveries left", ids(res.Deliveries), []string{"open-a"})
	// Zero ages keep everything.
	s2 := open(t)
	insert(t, s2, at(0), msg("ok", "r"), due("ok-a", "a", "good", 0))
	kill(t, s2, "good", record.DeliverySucceeded, at(time.Hour))
	if n := purgeMessages(t, s2, store.MessagePurgeParams{Now: at(1000 * day)}); n != 0 || !exists(t, s2, "ok") {
		t.Fatalf("zero ages purged %d", n)
	}
}

func testRetentionBatches(t *testing.T, open Opener) {
	s := open(t)
	for i := range 5 {
		m := msg(fmt.Sprintf("m%d", i), "r")
		m.IdempotencyKey = fmt.Sprintf("key-%d", i)
		insert(t, s, at(time.Duration(i)*time.Second), m, due(fmt.Sprintf("d%d", i), "a", "good", 0))
	}
	kill(t, s, "good", record.DeliverySucceeded, at(time.Hour))
	p := store.MessagePurgeParams{Succeeded: time.Hour, Limit: 2, Now: at(3 * time.Hour)}
	for i, want := range []int{2, 2, 1, 0} {
		if n := purgeMessages(t, s, p); n != want {
			t.Fatalf("batch %d: purged %d, want %d", i, n, want)
		}
		if i == 0 && (exists(t, s, "m0") || exists(t, s, "m1") || !exists(t, s, "m2")) {
			t.Fatal("the first batch did not take the oldest")
		}
	}
	// A purged message's idempotency key is free again.
	m := msg("m0-again", "r")
	m.IdempotencyKey = "key-0"
	if res := insert(t, s, at(4*time.Hour), m, due("d0-again", "a", "good", 0)); res.Existing {
		t.Fatal("the key of a purged message still names it")
	}
}

func testDeadLetterPurge(t *testing.T, open Opener) {
	s := open(t)
	// m0..m3 each have one dead step on route r1 or r2; m4 has a succeeded
	// step and a dead one (partially succeeded).
	for i := range 4 {
		insert(t, s, at(time.Duration(i)*time.Second), msg(fmt.Sprintf("m%d", i), fmt.Sprintf("r%d", i%2+1)),
			due(fmt.Sprintf("d%d", i), "a", "bad", 0))
	}
	insert(t, s, at(5*time.Second), msg("m4", "r1"), due("m4-ok", "a", "good", 0), due("m4-dead", "b", "bad", 0))
	kill(t, s, "bad", record.DeliveryDead, at(time.Hour))
	kill(t, s, "good", record.DeliverySucceeded, at(time.Hour))

	got := purgeDead(t, s, store.DeliveryPurgeParams{IDs: []string{"d0", "m4-ok", "nope"}, Now: at(2 * time.Hour)})
	wantIDs(t, "purge by ids", ids(got), []string{"d0"})
	d := delivery(t, s, "m0", "d0")
	if d.Status != record.DeliveryCancelled || d.LastError != store.PurgedPrefix+"400 Bad Request" {
		t.Fatalf("purged delivery: %s %q", d.Status, d.LastError)
	}
	if st := get(t, s, "m0").Message.Status; st != record.MessageFailed {
		t.Fatalf("m0 is %s", st)
	}
	if st := delivery(t, s, "m4", "m4-ok").Status; st != record.DeliverySucceeded {
		t.Fatalf("a live delivery was purged: %s", st)
	}
	// A purged dead letter cannot be replayed, and is no longer listed.
	wantIDs(t, "replay of a purged letter", ids(replay(t, s, store.DeliveryReplayParams{IDs: []string{"d0"}, Now: at(3 * time.Hour)})), nil)
	wantIDs(t, "purge again", ids(purgeDead(t, s, store.DeliveryPurgeParams{IDs: []string{"d0"}, Now: at(3 * time.Hour)})), nil)
	res, err := s.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "dead letters", ids(res.Deliveries), []string{"m4-dead", "d3", "d2", "d1"})

	// A filter takes the oldest first, up to Limit.
	wantIDs(t, "purge r1", ids(purgeDead(t, s, store.DeliveryPurgeParams{Route: "r1", Limit: 1, Now: at(4 * time.Hour)})), []string{"d2"})
	wantIDs(t, "purge the rest", ids(purgeDead(t, s, store.DeliveryPurgeParams{Target: "bad", Now: at(4 * time.Hour)})), []string{"d1", "d3", "m4-dead"})
	if st := get(t, s, "m4").Message.Status; st != record.MessagePartiallySucceeded {
		t.Fatalf("m4 is %s", st)
	}
	res, err = s.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "dead letters at the end", ids(res.Deliveries), nil)
}
