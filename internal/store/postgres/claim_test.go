package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Claimed deliveries come with their message, so workers need not read it.
func TestClaimAttachesMessages(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"m1", "m2"} {
		_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
			Message: record.Message{ID: id, Route: "r", Body: []byte(`{"id":"` + id + `"}`),
				Headers: map[string][]string{"X-Id": {id}}},
			Deliveries: []record.Delivery{
				{ID: id + "a", Step: "a", Target: "t", Status: record.DeliveryScheduled, NextAttemptAt: now},
				{ID: id + "b", Step: "b", Target: "t", Status: record.DeliveryScheduled, NextAttemptAt: now},
			},
			Now: &now,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 10, LeaseFor: time.Minute, Owner: "w", Now: &now})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 4 {
		t.Fatalf("claimed %d, want 4", len(ds))
	}
	for _, d := range ds {
		m := d.Message
		if m == nil {
			t.Fatalf("delivery %s: no message", d.ID)
		}
		if m.ID != d.MessageID || string(m.Body) != `{"id":"`+d.MessageID+`"}` || m.Headers["X-Id"][0] != d.MessageID {
			t.Errorf("delivery %s: message %+v", d.ID, m)
		}
	}
}

// Completes that ask ClaimNext, batched together, share one claim per
// target and each get their own next delivery, leased in the completes'
// commit: nothing is claimed twice, and each op gets at most its limit.
func TestClaimWithCompletes(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 40
	for i := range n {
		id := "m" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
			Message:    record.Message{ID: id, Route: "r", Body: []byte(`{}`)},
			Deliveries: []record.Delivery{{ID: id + "-d", Step: "a", Target: "t", Status: record.DeliveryScheduled, NextAttemptAt: now.Add(time.Duration(i) * time.Millisecond)}},
			Now:        &now,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	at := now.Add(time.Second)
	first, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 10, LeaseFor: time.Minute, Owner: "w", Now: &at})
	if err != nil || len(first) != 10 {
		t.Fatalf("claim: %d, %v", len(first), err)
	}
	// Ten completes at once, each asking for its slot's next delivery.
	results := make([]*store.DeliveryCompleteResult, len(first))
	errs := make(chan error, len(first))
	done := at.Add(time.Second)
	for i, d := range first {
		go func() {
			p := store.CompleteSucceeded(store.LeaseOf(&d), record.Attempt{N: 1, StartedAt: at, Outcome: record.OutcomeSuccess, HTTPStatus: 200}, store.Response{Status: 200})
			p.Now = &done
			p.ClaimNext = &store.DeliveryClaimParams{Target: "t", Limit: 1, LeaseFor: time.Minute, Owner: "w"}
			var err error
			results[i], err = s.DeliveryComplete(ctx, p)
			errs <- err
		}()
	}
	for range first {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, d := range first {
		seen[d.ID] = true
	}
	for i, r := range results {
		if len(r.Claimed) != 1 {
			t.Fatalf("complete %d: claimed %d, want its one next delivery", i, len(r.Claimed))
		}
		d := r.Claimed[0]
		if seen[d.ID] {
			t.Errorf("delivery %s claimed twice", d.ID)
		}
		seen[d.ID] = true
		if d.Status != record.DeliveryRunning || d.LeaseOwner != "w" || d.Message == nil || d.Message.ID != d.MessageID {
			t.Errorf("claimed %s: status %s owner %q message %v", d.ID, d.Status, d.LeaseOwner, d.Message)
		}
	}
	// The twenty claimed so far are leased: a claim takes the other twenty.
	rest, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: n, LeaseFor: time.Minute, Owner: "w", Now: &done})
	if err != nil || len(rest) != n-20 {
		t.Fatalf("claim the rest: %d, %v; want %d", len(rest), err, n-20)
	}
	for _, d := range rest {
		if seen[d.ID] {
			t.Errorf("delivery %s claimed again while leased", d.ID)
		}
	}
}
