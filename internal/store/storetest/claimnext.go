package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// testClaimNext: a complete may claim the target's next due deliveries in
// its own transaction (DeliveryCompleteParams.ClaimNext). A store that
// does so claims as DeliveryClaim would: oldest due first, leased to the
// owner, a fencing token raised, a reclaimed running delivery marked
// outcome unknown, the message attached; nothing else can claim it, and
// its token records its result. A store that does not claims nothing and
// the complete is an ordinary one.
func testClaimNext(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
	insert(t, s, at(0), msg("m2", "r"), due("d2", "s", "t", time.Second))
	insert(t, s, at(0), msg("m3", "r"), due("d3", "s", "t", 2*time.Second))
	insert(t, s, at(0), msg("m4", "r"), due("d4", "s", "t", time.Hour)) // not due

	// d2 was claimed by a worker that died: its lease ends at 2s.
	dead := claim(t, s, "t", "gone", 1, time.Second, at(time.Second))
	wantIDs(t, "the dead worker's claim", ids(dead), []string{"d1"})
	first := claimOne(t, s, "t", "w", "d2", at(time.Second))

	p := completeParams(first, record.DeliverySucceeded, at(3*time.Second))
	p.ClaimNext = &store.DeliveryClaimParams{Target: "t", Limit: 2, LeaseFor: lease, Owner: "w2"}
	res, err := s.DeliveryComplete(ctx, p)
	if err != nil {
		t.Fatalf("complete with ClaimNext: %v", err)
	}
	wantStatus(t, s, "m2", record.MessageSucceeded)
	if len(res.Claimed) == 0 {
		// This store does not claim with a complete: the loop claims.
		wantIDs(t, "claim after a complete that claimed nothing", ids(claim(t, s, "t", "w2", 2, lease, at(3*time.Second))), []string{"d1", "d3"})
		return
	}
	// Oldest due first: d1 (its lease ended at 2s, due since 0) then d3.
	wantIDs(t, "claimed with the complete", ids(res.Claimed), []string{"d1", "d3"})
	for _, d := range res.Claimed {
		if d.Status != record.DeliveryRunning || d.LeaseOwner != "w2" || d.Message == nil || d.Message.ID != d.MessageID {
			t.Errorf("claimed %s: status %s owner %q message %v; want running, w2, attached", d.ID, d.Status, d.LeaseOwner, d.Message)
		}
		wantTime(t, "claimed "+d.ID+" lease end", d.NextAttemptAt, at(3*time.Second).Add(lease))
	}
	re := res.Claimed[0]
	if re.LeaseToken <= dead[0].LeaseToken {
		t.Errorf("reclaimed d1: token %d, not above the dead claim's %d", re.LeaseToken, dead[0].LeaseToken)
	}
	if !re.OutcomeUnknown {
		t.Errorf("reclaimed d1: outcome not unknown: the dead worker's request may have gone out")
	}
	if res.Claimed[1].OutcomeUnknown {
		t.Errorf("d3 was never claimed before: outcome unknown")
	}
	// Nothing else can take them while the leases hold.
	wantIDs(t, "claim while the chained leases hold", ids(claim(t, s, "t", "w3", 5, lease, at(4*time.Second))), nil)
	_, err = s.DeliveryComplete(ctx, completeParams(dead[0], record.DeliverySucceeded, at(4*time.Second)))
	wantErr(t, "the dead worker's late result", err, store.ErrLeaseLost)
	for _, d := range res.Claimed {
		complete(t, s, d, record.DeliverySucceeded, at(5*time.Second))
	}
	wantStatus(t, s, "m1", record.MessageSucceeded)
	wantStatus(t, s, "m3", record.MessageSucceeded)
	// With nothing due, a complete claims nothing.
	last := claimOne(t, s, "t", "w", "d4", at(time.Hour))
	p = completeParams(last, record.DeliverySucceeded, at(time.Hour+time.Second))
	p.ClaimNext = &store.DeliveryClaimParams{Target: "t", Limit: 1, LeaseFor: lease, Owner: "w"}
	if res, err = s.DeliveryComplete(ctx, p); err != nil || len(res.Claimed) != 0 {
		t.Fatalf("complete with nothing due: claimed %v, err %v", ids(res.Claimed), err)
	}
}
