package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// testFencing: every claim has its own fencing token. A worker of the same
// process (same owner string) that holds an expired claim cannot record a
// result or give the delivery back once another claim took it.
func testFencing(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
	old := claimOne(t, s, "t", "w", "d1", at(0))
	cur := claimOne(t, s, "t", "w", "d1", at(lease)) // the same owner, after the lease ended
	if cur.LeaseToken <= old.LeaseToken {
		t.Fatalf("tokens: first claim %d, second %d; want the second higher", old.LeaseToken, cur.LeaseToken)
	}

	_, err := s.DeliveryComplete(ctx, completeParams(old, record.DeliverySucceeded, at(lease+time.Second)))
	wantErr(t, "late result of the expired claim", err, store.ErrLeaseLost)
	err = postpone(s, old, t0, "stale", at(lease+time.Second))
	wantErr(t, "stale postpone", err, store.ErrLeaseLost)
	d := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryRunning)
	if d.LeaseToken != cur.LeaseToken || d.Attempts != 0 || d.LastError != "" {
		t.Fatalf("after the stale calls: token %d attempts %d error %q; want %d, 0, none", d.LeaseToken, d.Attempts, d.LastError, cur.LeaseToken)
	}
	// The live claim is still held: nobody else can take it.
	wantIDs(t, "claim while the live lease holds", ids(claim(t, s, "t", "w", 1, lease, at(lease+2*time.Second))), nil)

	complete(t, s, cur, record.DeliverySucceeded, at(lease+time.Second))
	wantStatus(t, s, "m1", record.MessageSucceeded)

	// A postpone gives the claim back; its token cannot end the next claim.
	insert(t, s, at(0), msg("m2", "r"), due("e1", "s", "t2", 0))
	first := claimOne(t, s, "t2", "w", "e1", at(0))
	if err := postpone(s, first, t0, "", at(time.Second)); err != nil {
		t.Fatalf("postpone: %v", err)
	}
	second := claimOne(t, s, "t2", "w", "e1", at(time.Second))
	_, err = s.DeliveryComplete(ctx, completeParams(first, record.DeliverySucceeded, at(2*time.Second)))
	wantErr(t, "result under a token given back", err, store.ErrLeaseLost)
	complete(t, s, second, record.DeliverySucceeded, at(2*time.Second))
}

// testInputChecks: both drivers refuse the same malformed input, before
// touching the database, and never edit the caller's values.
func testInputChecks(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	ds := []record.Delivery{{ID: "d1", Step: "a", Target: "t"}, {ID: "d2", Step: "b", Target: "t", After: []string{"a"}}}
	p := &store.MessageInsertParams{Message: msg("m1", "r"), Deliveries: ds, Now: at(0)}
	if _, err := s.MessageInsert(ctx, p); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if ds[0].Status != "" || ds[0].MessageID != "" || !ds[0].CreatedAt.IsZero() {
		t.Errorf("insert edited the caller's deliveries: %+v", ds[0])
	}
	bad := []struct {
		name string
		p    store.MessageInsertParams
	}{
		{"no id", store.MessageInsertParams{Message: record.Message{Route: "r"}}},
		{"no route", store.MessageInsertParams{Message: record.Message{ID: "x"}}},
		{"delivery without target", store.MessageInsertParams{Message: msg("x1", "r"), Deliveries: []record.Delivery{{ID: "x1-a", Step: "a"}}}},
		{"two deliveries of a step", store.MessageInsertParams{Message: msg("x2", "r"), Deliveries: []record.Delivery{
			{ID: "x2-a", Step: "a", Target: "t"}, {ID: "x2-b", Step: "a", Target: "t"}}}},
		{"running at insert", store.MessageInsertParams{Message: msg("x3", "r"), Deliveries: []record.Delivery{
			{ID: "x3-a", Step: "a", Target: "t", Status: record.DeliveryRunning}}}},
	}
	for _, b := range bad {
		b.p.Now = at(0)
		if _, err := s.MessageInsert(ctx, &b.p); !store.IsInvalid(err) {
			t.Errorf("insert %s: error %v, want an invalid-params error", b.name, err)
		}
	}

	d := claimOne(t, s, "t", "w", "d1", at(0))
	badComplete := []struct {
		name string
		edit func(p *store.DeliveryCompleteParams)
	}{
		{"no owner", func(p *store.DeliveryCompleteParams) { p.Owner = "" }},
		{"no token", func(p *store.DeliveryCompleteParams) { p.LeaseToken = 0 }},
		{"no attempt number", func(p *store.DeliveryCompleteParams) { p.Attempt.N = 0 }},
		{"status running", func(p *store.DeliveryCompleteParams) { p.Status = record.DeliveryRunning }},
		{"success with a next attempt", func(p *store.DeliveryCompleteParams) { p.NextAttemptAt = t0 }},
	}
	for _, b := range badComplete {
		p := completeParams(d, record.DeliverySucceeded, at(time.Second))
		b.edit(p)
		if _, err := s.DeliveryComplete(ctx, p); !store.IsInvalid(err) {
			t.Errorf("complete %s: error %v, want an invalid-params error", b.name, err)
		}
	}
	pp := store.Postpone(store.Lease{DeliveryID: "d1", Owner: "w"}, t0, "")
	pp.Now = at(time.Second)
	if err := s.DeliveryPostpone(ctx, pp); !store.IsInvalid(err) {
		t.Errorf("postpone without a token: error %v, want an invalid-params error", err)
	}
	// None of it touched the claim.
	got := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryRunning)
	if got.Attempts != 0 || got.LeaseToken != d.LeaseToken {
		t.Fatalf("refused calls left traces: %+v", got)
	}
	complete(t, s, d, record.DeliverySucceeded, at(time.Second))
}

// testDiscard: the open deliveries of a target that is no longer
// configured are dead-lettered with the reason, their dependants skipped,
// their messages settled; a claim still held is left to its worker; a
// replay brings them back.
func testDiscard(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	insert(t, s, at(0), msg("m1", "r"), due("a", "a", "gone", 0), waiting("b", "b", "kept", "a"))
	insert(t, s, at(0), msg("m2", "r"), due("c", "c", "kept", 0), waiting("d", "d", "gone", "c"))
	insert(t, s, at(0), msg("m3", "r"), due("e", "e", "gone", 0))
	insert(t, s, at(0), msg("m4", "r"), due("f", "f", "gone", 0))
	held := claimOne(t, s, "gone", "w", "a", at(0)) // expires at lease
	claim(t, s, "gone", "w", 10, 10*lease, at(time.Second))

	reason := `target "gone" is no longer configured`
	n, err := s.DeliveryDiscard(ctx, &store.DeliveryDiscardParams{Target: "gone", Reason: reason, Now: at(2 * lease)})
	if err != nil {
		t.Fatalf("discard: %v", err)
	}
	// a's lease ended; d waits; e and f are held for 10 leases.
	if n != 2 {
		t.Fatalf("discarded %d, want 2 (a and d)", n)
	}
	for _, c := range []struct{ m, id string }{{"m1", "a"}, {"m2", "d"}} {
		got := wantDeliveryStatus(t, s, c.m, c.id, record.DeliveryDead)
		if got.LastError != reason || got.LeaseOwner != "" {
			t.Errorf("%s: error %q owner %q", c.id, got.LastError, got.LeaseOwner)
		}
	}
	wantDeliveryStatus(t, s, "m1", "b", record.DeliverySkipped)
	wantStatus(t, s, "m1", record.MessageFailed)
	wantDeliveryStatus(t, s, "m2", "c", record.DeliveryScheduled)
	wantDeliveryStatus(t, s, "m3", "e", record.DeliveryRunning)
	_, err = s.DeliveryComplete(ctx, completeParams(held, record.DeliverySucceeded, at(2*lease)))
	wantErr(t, "result of a discarded claim", err, store.ErrLeaseLost)

	// The target is back: the dead letters replay.
	out := replay(t, s, store.DeliveryReplayParams{Target: "gone", Now: at(3 * lease)})
	wantIDs(t, "replayed", ids(out), []string{"a", "d"})
	wantDeliveryStatus(t, s, "m1", "b", record.DeliveryWaiting)
	wantStatus(t, s, "m1", record.MessageRunning)
}

// sagaRow is one row of the saga table in docs/states.md: how the
// forward steps and compensations of a saga (charge → reserve → ship,
// charge and reserve compensable) ended, the message status that gives,
// and which replays are allowed.
type sagaRow struct {
	name string
	// run drives message id to the row's state.
	run    func(t *testing.T, s store.Store, id string)
	status record.MessageStatus
	// delivery states, by step ("charge", "charge.compensate", ...).
	states map[string]record.DeliveryStatus
	// replays: step → allowed.
	replays map[string]bool
}

// finish claims the delivery of step and completes it as status, at now.
func finishStep(t *testing.T, s store.Store, id, step string, status record.DeliveryStatus, unknown bool, now time.Duration) {
	t.Helper()
	targets := map[string]string{"charge": "pay", "reserve": "stock", "ship": "ship",
		"charge.compensate": "refund", "reserve.compensate": "release"}
	did := id + "-" + step
	if c, ok := record.Compensates(step); ok {
		did = id + "-" + c + "-c"
	}
	d := claimOne(t, s, targets[step], "w", did, at(now))
	p := completeParams(d, status, at(now))
	p.Unknown = unknown
	if _, err := s.DeliveryComplete(context.Background(), p); err != nil {
		t.Fatalf("complete %s as %s: %v", step, status, err)
	}
}

// SagaTable is the saga table of docs/states.md, checked row by row.
var sagaTable = []sagaRow{
	{
		name: "every forward step succeeded",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliverySucceeded, false, time.Second)
			finishStep(t, s, id, "reserve", record.DeliverySucceeded, false, 2*time.Second)
			finishStep(t, s, id, "ship", record.DeliverySucceeded, false, 3*time.Second)
		},
		status: record.MessageSucceeded,
		states: map[string]record.DeliveryStatus{"charge": "succeeded", "reserve": "succeeded", "ship": "succeeded",
			"charge.compensate": "cancelled", "reserve.compensate": "cancelled"},
		replays: map[string]bool{"charge": false, "ship": false},
	},
	{
		name: "the first step failed for sure: nothing to undo",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliveryDead, false, time.Second)
		},
		status: record.MessageFailed,
		states: map[string]record.DeliveryStatus{"charge": "dead", "reserve": "skipped", "ship": "skipped",
			"charge.compensate": "cancelled", "reserve.compensate": "cancelled"},
		replays: map[string]bool{"charge": true},
	},
	{
		name: "the first step timed out (may have happened): it is undone",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliveryDead, true, time.Second)
		},
		status: record.MessageRunning,
		states: map[string]record.DeliveryStatus{"charge": "dead", "reserve": "skipped", "ship": "skipped",
			"charge.compensate": "scheduled", "reserve.compensate": "cancelled"},
		replays: map[string]bool{"charge": false},
	},
	{
		name: "a timed-out step undone",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliveryDead, true, time.Second)
			finishStep(t, s, id, "charge.compensate", record.DeliverySucceeded, false, 2*time.Second)
		},
		status:  record.MessageCompensated,
		states:  map[string]record.DeliveryStatus{"charge": "dead", "charge.compensate": "succeeded", "reserve.compensate": "cancelled"},
		replays: map[string]bool{"charge": false},
	},
	{
		name: "a later step failed: compensation runs",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliverySucceeded, false, time.Second)
			finishStep(t, s, id, "reserve", record.DeliveryDead, false, 2*time.Second)
		},
		status: record.MessageRunning,
		states: map[string]record.DeliveryStatus{"charge": "compensating", "reserve": "dead", "ship": "skipped",
			"charge.compensate": "scheduled", "reserve.compensate": "cancelled"},
		replays: map[string]bool{"reserve": false},
	},
	{
		name: "compensated",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliverySucceeded, false, time.Second)
			finishStep(t, s, id, "reserve", record.DeliveryDead, false, 2*time.Second)
			finishStep(t, s, id, "charge.compensate", record.DeliverySucceeded, false, 3*time.Second)
		},
		status:  record.MessageCompensated,
		states:  map[string]record.DeliveryStatus{"charge": "compensated", "reserve": "dead", "charge.compensate": "succeeded"},
		replays: map[string]bool{"reserve": false},
	},
	{
		name: "a compensation failed: a person must act",
		run: func(t *testing.T, s store.Store, id string) {
			finishStep(t, s, id, "charge", record.DeliverySucceeded, false, time.Second)
			finishStep(t, s, id, "reserve", record.DeliveryDead, false, 2*time.Second)
			finishStep(t, s, id, "charge.compensate", record.DeliveryDead, false, 3*time.Second)
		},
		status:  record.MessageFailed,
		states:  map[string]record.DeliveryStatus{"charge": "succeeded", "reserve": "dead", "charge.compensate": "dead"},
		replays: map[string]bool{"reserve": false, "charge.compensate": true},
	},
}

// testSagaTable checks every row of the saga table: the states, the
// message status, and each replay (allowed ones go ahead, refused ones
// come back in Refused with the reason and change nothing).
func testSagaTable(t *testing.T, open Opener) {
	for i, row := range sagaTable {
		t.Run(row.name, func(t *testing.T) {
			s := open(t)
			id := "m" + string(rune('a'+i))
			sagaMessage(t, s, id)
			row.run(t, s, id)
			md := get(t, s, id)
			if md.Message.Status != row.status {
				t.Errorf("message status %s, want %s", md.Message.Status, row.status)
			}
			byStep := map[string]record.Delivery{}
			for _, d := range md.Deliveries {
				byStep[d.Step] = d
			}
			for step, want := range row.states {
				if got := byStep[step].Status; got != want {
					t.Errorf("%s: %s, want %s", step, got, want)
				}
			}
			steps := slices.Sorted(func(yield func(string) bool) {
				for k := range row.replays {
					if !yield(k) {
						return
					}
				}
			})
			for _, step := range steps {
				allowed := row.replays[step]
				d := byStep[step]
				res, err := s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{d.ID}, Now: at(time.Minute)})
				if err != nil {
					t.Fatalf("replay %s: %v", step, err)
				}
				switch {
				case allowed && len(res.Replayed) != 1:
					t.Errorf("replay %s: refused %+v, want it replayed", step, res.Refused)
				case !allowed && len(res.Replayed) != 0:
					t.Errorf("replay %s: replayed, want it refused", step)
				case !allowed && d.Status == record.DeliveryDead &&
					(len(res.Refused) != 1 || res.Refused[0].Reason != record.RefusedCompensationRan):
					t.Errorf("replay %s: refused %+v, want the compensation reason", step, res.Refused)
				}
				if !allowed {
					if got := delivery(t, s, id, d.ID); got.Status != d.Status || got.Replays != d.Replays {
						t.Errorf("refused replay of %s changed it: %s → %s", step, d.Status, got.Status)
					}
				}
			}
		})
	}

	t.Run("bulk replay lists refused forward steps", func(t *testing.T) {
		s := open(t)
		sagaMessage(t, s, "mz")
		finishStep(t, s, "mz", "charge", record.DeliverySucceeded, false, time.Second)
		finishStep(t, s, "mz", "reserve", record.DeliveryDead, false, 2*time.Second)
		res, err := s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{Target: "stock", Now: at(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Replayed) != 0 || len(res.Refused) != 1 || res.Refused[0].DeliveryID != "mz-reserve" ||
			res.Refused[0].Reason != record.RefusedCompensationRan {
			t.Fatalf("bulk replay: replayed %v refused %+v", ids(res.Replayed), res.Refused)
		}
	})

	t.Run("compensate_unknown false", func(t *testing.T) {
		s := open(t)
		c := due("mu-charge", "charge", "pay", 0)
		c.NoCompensateUnknown = true
		insert(t, s, at(0), msg("mu", "order"), c, comp("mu-charge-c", "charge", "refund"))
		finishStep(t, s, "mu", "charge", record.DeliveryDead, true, time.Second)
		wantDeliveryStatus(t, s, "mu", "mu-charge-c", record.DeliveryCancelled)
		wantStatus(t, s, "mu", record.MessageFailed)
		if d := delivery(t, s, "mu", "mu-charge"); !d.OutcomeUnknown || !d.NoCompensateUnknown {
			t.Errorf("stored flags: unknown %v, no-compensate %v", d.OutcomeUnknown, d.NoCompensateUnknown)
		}
	})
}

// testMayHave: "may have happened" marks found by the model (model/):
// it is sticky across attempts, a reclaimed claim sets it (its worker may
// have sent the request), and a compensation is replayed only when due.
func testMayHave(t *testing.T, open Opener) {
	t.Run("sticky across attempts", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "order"), due("m1-charge", "charge", "pay", 0), comp("m1-charge-c", "charge", "refund"))
		d := claimOne(t, s, "pay", "w", "m1-charge", at(0))
		p := completeParams(d, record.DeliveryScheduled, at(time.Second))
		p.Unknown = true // a timeout after the request was written
		if _, err := s.DeliveryComplete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		d = claimOne(t, s, "pay", "w", "m1-charge", at(11*time.Second))
		complete(t, s, d, record.DeliveryDead, at(12*time.Second)) // a clean 4xx this time
		if got := delivery(t, s, "m1", "m1-charge"); !got.OutcomeUnknown {
			t.Error("a clean failure cleared the earlier unknown outcome")
		}
		wantDeliveryStatus(t, s, "m1", "m1-charge-c", record.DeliveryScheduled)
	})
	t.Run("a reclaimed claim may have been sent", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
		claimOne(t, s, "t", "w1", "d1", at(0))
		if got := delivery(t, s, "m1", "d1"); got.OutcomeUnknown {
			t.Fatal("a first claim marked the outcome unknown")
		}
		claimOne(t, s, "t", "w2", "d1", at(lease))
		if got := delivery(t, s, "m1", "d1"); !got.OutcomeUnknown {
			t.Error("a claim taken over from a dead worker is not marked unknown")
		}
	})
	t.Run("a compensation is replayed only when due", func(t *testing.T) {
		s := open(t)
		sagaMessage(t, s, "m1")
		// The refund target is gone while the order is still running.
		if _, err := s.DeliveryDiscard(context.Background(), &store.DeliveryDiscardParams{Target: "refund", Reason: "gone", Now: at(time.Second)}); err != nil {
			t.Fatal(err)
		}
		wantDeliveryStatus(t, s, "m1", "m1-charge-c", record.DeliveryDead)
		res, err := s.DeliveryReplay(context.Background(), &store.DeliveryReplayParams{IDs: []string{"m1-charge-c"}, Now: at(2 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Replayed) != 0 || len(res.Refused) != 1 || res.Refused[0].Reason != record.RefusedCompensationNotDue {
			t.Fatalf("replay of a compensation not due: replayed %v refused %+v", ids(res.Replayed), res.Refused)
		}
		// The discarded compensation did not begin the compensation: the
		// order goes on.
		complete(t, s, claimOne(t, s, "pay", "w", "m1-charge", at(3*time.Second)), record.DeliverySucceeded, at(3*time.Second))
		wantDeliveryStatus(t, s, "m1", "m1-reserve", record.DeliveryScheduled)
	})
}
