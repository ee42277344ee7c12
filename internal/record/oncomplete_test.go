package record

import (
	"testing"
	"time"
)

func TestOnCompleteWaitsForEveryStep(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	oc := func(s DeliveryStatus) Delivery {
		x := d(OnCompleteStep("target"), s)
		x.Required = false
		return x
	}
	tests := []struct {
		name      string
		ds        []Delivery
		scheduled bool
		status    MessageStatus
	}{
		{"a step still running", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryRunning), oc(DeliveryWaiting)}, false, MessageRunning},
		{"a retry pending", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryScheduled), oc(DeliveryWaiting)}, false, MessageRunning},
		{"a dependant still waiting", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryWaiting, "a"), oc(DeliveryWaiting)}, false, MessageRunning},
		{"all succeeded", []Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded), oc(DeliveryWaiting)}, true, MessageSucceeded},
		{"one dead, its dependant skipped this write", []Delivery{d("a", DeliveryDead), d("b", DeliveryWaiting, "a"), oc(DeliveryWaiting)}, true, MessageFailed},
		{"partial", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryDead), oc(DeliveryWaiting)}, true, MessagePartiallySucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := append([]Delivery(nil), tt.ds...)
			applyChanges(ds, Resolve(ds, now))
			last := ds[len(ds)-1]
			if got := last.Status == DeliveryScheduled; got != tt.scheduled {
				t.Errorf("on_complete %s, want scheduled=%v", last.Status, tt.scheduled)
			}
			if tt.scheduled && !last.NextAttemptAt.Equal(now) {
				t.Errorf("on_complete due at %v, want now", last.NextAttemptAt)
			}
			// The status is the steps' outcome, whatever the on_complete does.
			if got := DeriveMessageStatus(ds); got != tt.status {
				t.Errorf("status %s, want %s", got, tt.status)
			}
			for _, s := range []DeliveryStatus{DeliveryRunning, DeliveryDead, DeliverySucceeded} {
				ds[len(ds)-1].Status = s
				if got := DeriveMessageStatus(ds); got != tt.status {
					t.Errorf("with on_complete %s: status %s, want %s", s, got, tt.status)
				}
			}
		})
	}
}

func TestOnCompleteWaitsForSaga(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	charge := d("charge", DeliverySucceeded)
	ship := d("ship", DeliveryDead)
	comp := d(CompensationStep("charge"), DeliveryWaiting)
	comp.Required = false
	oc := d(OnCompleteStep("publish"), DeliveryWaiting)
	oc.Required = false
	ds := []Delivery{charge, ship, comp, oc}
	applyChanges(ds, Resolve(ds, now))
	if ds[2].Status != DeliveryScheduled || ds[3].Status != DeliveryWaiting {
		t.Fatalf("after the failure: compensation %s, on_complete %s; want scheduled, waiting", ds[2].Status, ds[3].Status)
	}
	// The compensation runs and succeeds: now the summary is due.
	ds[2].Status = DeliverySucceeded
	applyChanges(ds, Resolve(ds, now))
	if ds[3].Status != DeliveryScheduled {
		t.Fatalf("after the compensation: on_complete %s, want scheduled", ds[3].Status)
	}
	if got := DeriveMessageStatus(ds); got != MessageCompensated {
		t.Errorf("status %s, want compensated", got)
	}
	if g := GraphOrder(ds); g[len(g)-1].Step != oc.Step {
		t.Errorf("graph order ends with %s, want the on_complete", g[len(g)-1].Step)
	}
}

func TestOnCompleteReplay(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	oc := d(OnCompleteStep("target"), DeliveryDead)
	oc.Required = false
	comp := d(CompensationStep("a"), DeliveryCancelled)
	// Every step final: a dead summary may be replayed, and replaying it
	// reopens nothing else (the cancelled compensation stays cancelled).
	f := NewFamily("m", MessageSucceeded, []Delivery{d("a", DeliverySucceeded), comp, oc}, now)
	f.Replay([]string{oc.ID})
	w := f.Writes()
	if len(w.Replayed) != 1 || len(w.Refused) != 0 || len(w.Changes) != 0 || w.StatusChanged {
		t.Fatalf("replay of a due summary: %+v", w)
	}
	// A step still open: refused.
	f = NewFamily("m", MessageRunning, []Delivery{d("a", DeliveryRunning), oc}, now)
	f.Replay([]string{oc.ID})
	if w := f.Writes(); len(w.Replayed) != 0 || len(w.Refused) != 1 || w.Refused[0].Reason != RefusedOnCompleteNotDue {
		t.Fatalf("replay of a summary not due: %+v", w)
	}
	// Replayed together with a dead step: not due either.
	f = NewFamily("m", MessageFailed, []Delivery{d("a", DeliveryDead), oc}, now)
	f.Replay([]string{"id-a", oc.ID})
	if w := f.Writes(); len(w.Replayed) != 1 || len(w.Refused) != 1 {
		t.Fatalf("replay of a step and its summary: %+v", w)
	}
}
