package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// One group commit holding good calls, a repeated key, a conflicting key
// and a call the database rejects: each caller gets its own answer.
func TestInsertBatchIsolation(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id, key, hash string, steps ...string) *insertOp {
		t.Helper()
		var ds []record.Delivery
		for i, st := range steps {
			ds = append(ds, record.Delivery{ID: fmt.Sprintf("%s-%d", id, i), Step: st, Target: "t"})
		}
		op, err := newInsertOp(&store.MessageInsertParams{
			Message:    record.Message{ID: id, Route: "r", IdempotencyKey: key, BodyHash: hash},
			Deliveries: ds, Now: &now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	// One step twice: PrepareInsert refuses it, so the op is edited after
	// the check to make the database reject it (a unique violation).
	bad := mk("bad", "", "h", "a", "b")
	bad.ds[1].Step = "a"
	ops := []*insertOp{
		mk("good1", "", "h", "a", "b"),
		mk("first", "k", "h", "a"),
		bad,
		mk("repeat", "k", "h", "a"),
		mk("conflict", "k", "other", "a"),
		mk("good2", "k2", "h", "a"),
		mk("good1", "", "h", "a"), // the same id again
	}
	s.runInserts(ctx, ops)

	want := map[string]struct {
		id       string
		existing bool
		err      error
	}{
		"good1":    {"good1", false, nil},
		"first":    {"first", false, nil},
		"repeat":   {"first", true, nil},
		"conflict": {"first", true, store.ErrIdempotencyConflict},
		"good2":    {"good2", false, nil},
	}
	failed := 0
	for _, op := range ops {
		<-op.done
		w, ok := want[op.msg.ID]
		switch {
		case op.msg.ID == "bad" || op.msg.ID == "good1" && len(op.ds) == 1:
			if op.err == nil {
				t.Errorf("%s (%d deliveries): no error", op.msg.ID, len(op.ds))
			}
			failed++
		case !ok:
			t.Fatalf("unexpected op %s", op.msg.ID)
		case !errors.Is(op.err, w.err) || w.err == nil && op.err != nil:
			t.Errorf("%s: error %v, want %v", op.msg.ID, op.err, w.err)
		case op.res == nil || op.res.Message.ID != w.id || op.res.Existing != w.existing:
			t.Errorf("%s: result %+v, want %s existing=%v", op.msg.ID, op.res, w.id, w.existing)
		}
	}
	if failed != 2 {
		t.Fatalf("%d calls failed, want 2", failed)
	}
	for _, id := range []string{"good1", "first", "good2"} {
		if _, err := s.MessageGet(ctx, id); err != nil {
			t.Errorf("get %s: %v", id, err)
		}
	}
	for _, id := range []string{"bad", "repeat", "conflict"} {
		if _, err := s.MessageGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %s: %v, want not found", id, err)
		}
	}
	md, err := s.MessageGet(ctx, "good1")
	if err != nil || len(md.Deliveries) != 2 {
		t.Fatalf("good1 keeps its own two deliveries: %v %v", md, err)
	}
}

// One group commit of completes: siblings of one message (the last makes
// the join ready, once), a lost lease, an unknown delivery, a wrong attempt
// number and a repeat of a delivery each get their own answer.
func TestCompleteBatchIsolation(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
		Message: record.Message{ID: "m1", Route: "r"},
		Deliveries: []record.Delivery{
			{ID: "a", Step: "a", Target: "t", Required: true},
			{ID: "b", Step: "b", Target: "t", Required: true},
			{ID: "c", Step: "c", Target: "t", Required: true},
			{ID: "d", Step: "d", Target: "t", Required: true},
			{ID: "join", Step: "join", Target: "j", Required: true, After: []string{"a", "b"}},
		},
		Now: &now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 10, LeaseFor: time.Minute, Owner: "w", Now: &now})
	if err != nil || len(ds) != 4 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	mk := func(id, owner string, n int) *completeOp {
		t.Helper()
		op, err := newCompleteOp(&store.DeliveryCompleteParams{
			DeliveryID: id, Owner: owner, LeaseToken: 1, Status: record.DeliverySucceeded,
			Attempt: record.Attempt{N: n, Outcome: record.OutcomeSuccess}, Now: &now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	ops := []*completeOp{
		mk("a", "w", 1),
		mk("c", "other", 1), // lease lost
		mk("b", "w", 1),
		mk("nope", "w", 1), // not found
		mk("d", "w", 3),    // wrong attempt number
		mk("a", "w", 1),    // repeat: the first one took the lease
	}
	s.runCompletes(ctx, ops)
	wantErr := []error{nil, store.ErrLeaseLost, nil, store.ErrNotFound, nil, store.ErrLeaseLost}
	ready := 0
	for i, op := range ops {
		<-op.done
		switch {
		case i == 4:
			if op.err == nil || errors.Is(op.err, store.ErrLeaseLost) || errors.Is(op.err, store.ErrNotFound) {
				t.Errorf("wrong attempt number: %v", op.err)
			}
		case !errors.Is(op.err, wantErr[i]) || wantErr[i] == nil && op.err != nil:
			t.Errorf("op %d (%s): error %v, want %v", i, op.p.DeliveryID, op.err, wantErr[i])
		case op.err == nil:
			if op.res.MessageID != "m1" || op.res.MessageStatus != record.MessageRunning {
				t.Errorf("op %d: result %+v", i, op.res)
			}
			for _, r := range op.res.Ready {
				if r.ID != "join" || r.Status != record.DeliveryScheduled {
					t.Errorf("ready: %+v", r)
				}
				ready++
			}
		}
	}
	if ready != 1 {
		t.Fatalf("join made ready %d times, want 1", ready)
	}
	md, err := s.MessageGet(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]record.DeliveryStatus{"a": "succeeded", "b": "succeeded", "c": "running", "d": "running", "join": "scheduled"}
	for _, d := range md.Deliveries {
		if d.Status != want[d.ID] {
			t.Errorf("%s: %s, want %s", d.ID, d.Status, want[d.ID])
		}
	}
	if n := len(md.Attempts["a"]); n != 1 {
		t.Errorf("a has %d attempts, want 1", n)
	}
}
