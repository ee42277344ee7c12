package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// testOnComplete: an on_complete delivery (record.OnCompleteStep) waits
// until every other delivery of its message is final, is then ready in
// the result of the write that made the last one final, and never counts
// towards the message's status: a dead summary leaves it as it was. A dead
// summary replays only once the message is finished.
func testOnComplete(t *testing.T, open Opener) {
	s := open(t)
	oc := waiting("oc", record.OnCompleteStep("target"), "crm")
	oc.Required = false
	insert(t, s, at(0), msg("m1", "r"), due("a", "a", "ta", 0), due("b", "b", "tb", 0), oc)
	wantIDs(t, "a waiting summary is not claimed", ids(claim(t, s, "crm", "w", 10, lease, at(time.Hour))), nil)

	res := complete(t, s, claimOne(t, s, "ta", "w", "a", at(0)), record.DeliverySucceeded, at(time.Second))
	wantIDs(t, "ready after a", ids(res.Ready), nil)
	wantDeliveryStatus(t, s, "m1", "oc", record.DeliveryWaiting)
	res = complete(t, s, claimOne(t, s, "tb", "w", "b", at(0)), record.DeliveryDead, at(2*time.Second))
	wantIDs(t, "ready after b", ids(res.Ready), []string{"oc"})
	if res.MessageStatus != record.MessagePartiallySucceeded {
		t.Fatalf("status with the summary still to send: %s, want partially_succeeded", res.MessageStatus)
	}
	wantTime(t, "summary due at", res.Ready[0].NextAttemptAt, t0.Add(2*time.Second))

	res = complete(t, s, claimOne(t, s, "crm", "w", "oc", at(2*time.Second)), record.DeliveryDead, at(3*time.Second))
	if res.MessageStatus != record.MessagePartiallySucceeded {
		t.Fatalf("status after the summary died: %s", res.MessageStatus)
	}
	wantStatus(t, s, "m1", record.MessagePartiallySucceeded)
	// A step replayed: the message is open again, the dead summary stays
	// dead and is not replayable until the message is finished again.
	rr, err := s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{"b"}, Now: at(4 * time.Second)})
	if err != nil || len(rr.Replayed) != 1 {
		t.Fatalf("replay of the dead step: %+v %v", rr, err)
	}
	rr, err = s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{"oc"}, Now: at(4 * time.Second)})
	if err != nil || len(rr.Replayed) != 0 || len(rr.Refused) != 1 || rr.Refused[0].Reason != record.RefusedOnCompleteNotDue {
		t.Fatalf("replay of a summary not due: %+v %v", rr, err)
	}
	res = complete(t, s, claimOne(t, s, "tb", "w", "b", at(4*time.Second)), record.DeliverySucceeded, at(5*time.Second))
	if res.MessageStatus != record.MessageSucceeded || len(res.Ready) != 0 {
		t.Fatalf("after the replayed step succeeded: %+v", res)
	}
	wantDeliveryStatus(t, s, "m1", "oc", record.DeliveryDead)
	rr, err = s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{"oc"}, Now: at(6 * time.Second)})
	if err != nil || len(rr.Replayed) != 1 || len(rr.Refused) != 0 {
		t.Fatalf("replay of a due summary: %+v %v", rr, err)
	}
	wantDeliveryStatus(t, s, "m1", "oc", record.DeliveryScheduled)
	wantStatus(t, s, "m1", record.MessageSucceeded)
}
