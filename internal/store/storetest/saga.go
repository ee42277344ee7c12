package storetest

import (
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// RunSaga checks that a store runs sagas: compensation deliveries
// ("<step>.compensate", committed waiting with the message) are decided by
// record.Resolve inside DeliveryComplete and DeliveryReplay, in reverse
// dependency order, and the message ends compensated or failed. It needs
// no store support beyond calling Resolve and DeriveMessageStatus in
// those transactions. Run calls it.
func RunSaga(t *testing.T, open Opener) {
	t.Run("Compensated", func(t *testing.T) { testSagaCompensated(t, open) })
	t.Run("CompensationFailsAndReplay", func(t *testing.T) { testSagaCompensationFails(t, open) })
	t.Run("AllSucceeded", func(t *testing.T) { testSagaAllSucceeded(t, open) })
}

// comp builds a waiting compensation of step.
func comp(id, step, target string) record.Delivery {
	return record.Delivery{ID: id, Step: record.CompensationStep(step), Target: target, Status: record.DeliveryWaiting}
}

// sagaMessage inserts charge → reserve → ship, each with a compensation.
func sagaMessage(t *testing.T, s store.Store, id string) {
	t.Helper()
	insert(t, s, at(0), msg(id, "order"),
		due(id+"-charge", "charge", "pay", 0),
		waiting(id+"-reserve", "reserve", "stock", "charge"),
		waiting(id+"-ship", "ship", "ship", "reserve"),
		comp(id+"-charge-c", "charge", "refund"),
		comp(id+"-reserve-c", "reserve", "release"),
	)
}

func testSagaCompensated(t *testing.T, open Opener) {
	s := open(t)
	sagaMessage(t, s, "m1")
	complete(t, s, claimOne(t, s, "pay", "w", "m1-charge", at(time.Second)), record.DeliverySucceeded, at(time.Second))
	complete(t, s, claimOne(t, s, "stock", "w", "m1-reserve", at(2*time.Second)), record.DeliverySucceeded, at(2*time.Second))
	res := complete(t, s, claimOne(t, s, "ship", "w", "m1-ship", at(3*time.Second)), record.DeliveryDead, at(3*time.Second))

	// The deepest succeeded step is undone first; the charge's waits.
	if got := ids(res.Ready); len(got) != 1 || got[0] != "m1-reserve-c" {
		t.Fatalf("ready after the failure %v, want [m1-reserve-c]", got)
	}
	wantDeliveryStatus(t, s, "m1", "m1-reserve", record.DeliveryCompensating)
	wantDeliveryStatus(t, s, "m1", "m1-charge-c", record.DeliveryWaiting)
	wantStatus(t, s, "m1", record.MessageRunning)
	if ds := claim(t, s, "refund", "w", 10, lease, at(4*time.Second)); len(ds) != 0 {
		t.Fatalf("the charge's compensation ran before the reservation's: %v", ids(ds))
	}

	res = complete(t, s, claimOne(t, s, "release", "w", "m1-reserve-c", at(4*time.Second)), record.DeliverySucceeded, at(4*time.Second))
	if got := ids(res.Ready); len(got) != 1 || got[0] != "m1-charge-c" {
		t.Fatalf("ready after the release %v, want [m1-charge-c]", got)
	}
	wantDeliveryStatus(t, s, "m1", "m1-reserve", record.DeliveryCompensated)
	wantDeliveryStatus(t, s, "m1", "m1-charge", record.DeliveryCompensating)

	res = complete(t, s, claimOne(t, s, "refund", "w", "m1-charge-c", at(5*time.Second)), record.DeliverySucceeded, at(5*time.Second))
	if res.MessageStatus != record.MessageCompensated {
		t.Errorf("message status %s, want compensated", res.MessageStatus)
	}
	wantDeliveryStatus(t, s, "m1", "m1-charge", record.DeliveryCompensated)
	wantDeliveryStatus(t, s, "m1", "m1-ship", record.DeliveryDead)
	wantStatus(t, s, "m1", record.MessageCompensated)
}

func testSagaCompensationFails(t *testing.T, open Opener) {
	s := open(t)
	sagaMessage(t, s, "m2")
	complete(t, s, claimOne(t, s, "pay", "w", "m2-charge", at(time.Second)), record.DeliverySucceeded, at(time.Second))
	res := complete(t, s, claimOne(t, s, "stock", "w", "m2-reserve", at(2*time.Second)), record.DeliveryDead, at(2*time.Second))
	// ship is skipped; reserve did not succeed, so only the charge is undone.
	wantDeliveryStatus(t, s, "m2", "m2-ship", record.DeliverySkipped)
	wantDeliveryStatus(t, s, "m2", "m2-reserve-c", record.DeliveryCancelled)
	if got := ids(res.Ready); len(got) != 1 || got[0] != "m2-charge-c" {
		t.Fatalf("ready %v, want [m2-charge-c]", got)
	}
	res = complete(t, s, claimOne(t, s, "refund", "w", "m2-charge-c", at(3*time.Second)), record.DeliveryDead, at(3*time.Second))
	if res.MessageStatus != record.MessageFailed {
		t.Errorf("message status %s, want failed", res.MessageStatus)
	}
	d := wantDeliveryStatus(t, s, "m2", "m2-charge", record.DeliverySucceeded)
	if d.LastError == "" {
		t.Errorf("the charge does not say its compensation failed")
	}

	// A person fixes the refund API and replays the dead compensation.
	out := replay(t, s, store.DeliveryReplayParams{IDs: []string{"m2-charge-c"}, Now: at(4 * time.Second)})
	if len(out) != 1 {
		t.Fatalf("replay: %v", ids(out))
	}
	wantDeliveryStatus(t, s, "m2", "m2-charge", record.DeliveryCompensating)
	wantStatus(t, s, "m2", record.MessageRunning)
	complete(t, s, claimOne(t, s, "refund", "w", "m2-charge-c", at(5*time.Second)), record.DeliverySucceeded, at(5*time.Second))
	wantDeliveryStatus(t, s, "m2", "m2-charge", record.DeliveryCompensated)
	wantStatus(t, s, "m2", record.MessageCompensated)
}

func testSagaAllSucceeded(t *testing.T, open Opener) {
	s := open(t)
	sagaMessage(t, s, "m3")
	complete(t, s, claimOne(t, s, "pay", "w", "m3-charge", at(time.Second)), record.DeliverySucceeded, at(time.Second))
	complete(t, s, claimOne(t, s, "stock", "w", "m3-reserve", at(2*time.Second)), record.DeliverySucceeded, at(2*time.Second))
	wantStatus(t, s, "m3", record.MessageRunning)
	res := complete(t, s, claimOne(t, s, "ship", "w", "m3-ship", at(3*time.Second)), record.DeliverySucceeded, at(3*time.Second))
	if res.MessageStatus != record.MessageSucceeded || len(res.Ready) != 0 {
		t.Errorf("status %s, ready %v", res.MessageStatus, ids(res.Ready))
	}
	wantDeliveryStatus(t, s, "m3", "m3-charge-c", record.DeliveryCancelled)
	wantDeliveryStatus(t, s, "m3", "m3-reserve-c", record.DeliveryCancelled)
	wantDeliveryStatus(t, s, "m3", "m3-charge", record.DeliverySucceeded)
}
