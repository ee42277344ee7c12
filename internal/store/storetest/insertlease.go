package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// testInsertLease: MessageInsert with a Lease inserts the due deliveries
// it names already claimed, exactly as a claim right after the commit
// would leave them: running, leased to the owner, fencing token 1, the
// message attached; nothing else can claim them while the lease holds,
// the token records their result, and a lease that ends (the process
// died) hands them back as a claim would, outcome unknown. A delivery
// that waits, or is not due, is not leased; a repeat leases nothing.
func testInsertLease(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	m := msg("m1", "r")
	m.IdempotencyKey = "k1"
	p := &store.MessageInsertParams{
		Message: m,
		Deliveries: []record.Delivery{
			due("d1", "a", "t", 0), due("d2", "b", "u", 0),
			due("d3", "c", "t", time.Hour), waiting("d4", "d", "t", "a"),
		},
		Now:   at(0),
		Lease: &store.InsertLease{Owner: "w", LeaseFor: lease, IDs: []string{"d1", "d3", "d4"}},
	}
	res, err := s.MessageInsert(ctx, p)
	if err != nil {
		t.Fatalf("insert with a lease: %v", err)
	}
	wantIDs(t, "leased at insert", ids(res.Leased), []string{"d1"})
	d1 := res.Leased[0]
	if d1.Status != record.DeliveryRunning || d1.LeaseOwner != "w" || d1.LeaseToken != 1 || d1.Message == nil || d1.Message.ID != "m1" {
		t.Fatalf("leased d1: status %s owner %q token %d message %v; want running, w, 1, m1", d1.Status, d1.LeaseOwner, d1.LeaseToken, d1.Message)
	}
	wantTime(t, "leased d1 lease end", d1.NextAttemptAt, at(0).Add(lease))
	stored := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryRunning)
	if stored.LeaseOwner != "w" || stored.LeaseToken != 1 {
		t.Errorf("stored d1: owner %q token %d", stored.LeaseOwner, stored.LeaseToken)
	}
	wantDeliveryStatus(t, s, "m1", "d3", record.DeliveryScheduled)
	wantDeliveryStatus(t, s, "m1", "d4", record.DeliveryWaiting)

	// Held: a claim passes over it; d2 (not named) is claimable.
	wantIDs(t, "claim t while d1 is leased", ids(claim(t, s, "t", "x", 5, lease, at(time.Second))), nil)
	wantIDs(t, "claim u", ids(claim(t, s, "u", "x", 5, lease, at(time.Second))), []string{"d2"})

	// A repeat leases nothing.
	again := *p
	again.Message.ID = "m1-again"
	again.Deliveries = []record.Delivery{due("e1", "a", "t", 0)}
	again.Lease = &store.InsertLease{Owner: "w", LeaseFor: lease, IDs: []string{"e1"}}
	rep, err := s.MessageInsert(ctx, &again)
	if err != nil || !rep.Existing || len(rep.Leased) != 0 {
		t.Fatalf("repeat: existing %v, leased %v, err %v; want existing and nothing leased", rep != nil && rep.Existing, rep, err)
	}

	// The process that leased d1 dies: its lease ends and a claim takes
	// d1 again, with a higher token and its outcome unknown.
	re := claim(t, s, "t", "w2", 5, lease, at(lease+time.Second))
	wantIDs(t, "claim after the insert lease ended", ids(re), []string{"d1"})
	if re[0].LeaseToken <= 1 || !re[0].OutcomeUnknown {
		t.Errorf("reclaimed d1: token %d unknown %v; want above 1, unknown", re[0].LeaseToken, re[0].OutcomeUnknown)
	}
	_, err = s.DeliveryComplete(ctx, completeParams(d1, record.DeliverySucceeded, at(lease+2*time.Second)))
	wantErr(t, "the dead insert lease's late result", err, store.ErrLeaseLost)
	complete(t, s, re[0], record.DeliverySucceeded, at(lease+2*time.Second))

	// A lease that holds records its result with token 1.
	res2 := insert2(t, s, &store.MessageInsertParams{
		Message: msg("m2", "r"), Deliveries: []record.Delivery{due("f1", "a", "t", 0)}, Now: at(time.Minute),
		Lease: &store.InsertLease{Owner: "w", LeaseFor: lease, IDs: []string{"f1"}},
	})
	wantIDs(t, "leased m2", ids(res2.Leased), []string{"f1"})
	complete(t, s, res2.Leased[0], record.DeliverySucceeded, at(time.Minute+time.Second))
	wantStatus(t, s, "m2", record.MessageSucceeded)

	// A lease without an owner or a length is refused.
	_, err = s.MessageInsert(ctx, &store.MessageInsertParams{
		Message: msg("m3", "r"), Deliveries: []record.Delivery{due("g1", "a", "t", 0)}, Now: at(time.Minute),
		Lease: &store.InsertLease{IDs: []string{"g1"}},
	})
	if err == nil {
		t.Errorf("a lease without an owner: no error")
	}
}

func insert2(t *testing.T, s store.Store, p *store.MessageInsertParams) *store.MessageInsertResult {
	t.Helper()
	res, err := s.MessageInsert(context.Background(), p)
	if err != nil {
		t.Fatalf("insert %s: %v", p.Message.ID, err)
	}
	return res
}
