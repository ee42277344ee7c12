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
