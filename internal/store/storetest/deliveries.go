package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

func testClaim(t *testing.T, open Opener) {
	s := open(t)
	insert(t, s, at(0), msg("m1", "r"), due("da", "s", "t", -3*time.Minute))
	insert(t, s, at(0), msg("m2", "r"), due("db", "s", "t", -2*time.Minute))
	insert(t, s, at(0), msg("m3", "r"), due("dc", "s", "t", -time.Minute))
	insert(t, s, at(0), msg("m4", "r"), due("dd", "s", "t", time.Minute))
	insert(t, s, at(0), msg("m5", "r"), due("dx", "x", "other", time.Hour), waiting("dw", "w", "t", "x"))
	insert(t, s, at(0), msg("m6", "r"), due("du", "s", "u", -5*time.Minute))

	got := claim(t, s, "t", "w1", 2, time.Hour, at(0))
	wantIDs(t, "first claim", ids(got), []string{"da", "db"})
	for _, d := range got {
		if d.Status != record.DeliveryRunning || d.LeaseOwner != "w1" || d.Attempts != 0 || d.Target != "t" || d.MessageID == "" {
			t.Fatalf("claimed delivery: %+v", d)
		}
		wantTime(t, "lease end", d.NextAttemptAt, t0.Add(time.Hour))
	}
	wantIDs(t, "second claim", ids(claim(t, s, "t", "w2", 10, time.Hour, at(0))), []string{"dc"})
	wantIDs(t, "nothing due", ids(claim(t, s, "t", "w2", 10, time.Hour, at(0))), nil)
	wantIDs(t, "later", ids(claim(t, s, "t", "w2", 10, time.Hour, at(time.Minute))), []string{"dd"})
	wantIDs(t, "other target", ids(claim(t, s, "u", "w3", 10, time.Hour, at(0))), []string{"du"})
	wantIDs(t, "unknown target", ids(claim(t, s, "none", "w3", 10, time.Hour, at(0))), nil)

	d := wantDeliveryStatus(t, s, "m1", "da", record.DeliveryRunning)
	if d.LeaseOwner != "w1" {
		t.Fatalf("stored lease owner: got %q, want w1", d.LeaseOwner)
	}
	wantDeliveryStatus(t, s, "m5", "dw", record.DeliveryWaiting)
}

func testClaimConcurrent(t *testing.T, open Opener) {
	s := open(t)
	const n = 100
	ds := make([]record.Delivery, n)
	for i := range ds {
		ds[i] = due(fmt.Sprintf("d%03d", i), fmt.Sprintf("s%03d", i), "t", -time.Duration(i)*time.Millisecond)
	}
	insert(t, s, at(0), msg("m1", "r"), ds...)

	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got []string
	)
	for w := range 8 {
		wg.Go(func() {
			for {
				claimed, err := s.DeliveryClaim(context.Background(), &store.DeliveryClaimParams{
					Target: "t", Limit: 3, LeaseFor: time.Hour, Owner: fmt.Sprintf("w%d", w), Now: at(0),
				})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(claimed) == 0 {
					return
				}
				mu.Lock()
				got = append(got, ids(claimed)...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("claimed %d deliveries, want %d", len(got), n)
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != n {
		t.Fatal("a delivery was claimed twice")
	}
}

func testLeaseExpiry(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
	old := claimOne(t, s, "t", "w1", "d1", at(0))
	wantTime(t, "lease end", old.NextAttemptAt, t0.Add(lease))

	wantIDs(t, "before the lease ends", ids(claim(t, s, "t", "w2", 1, lease, at(lease-time.Second))), nil)
	cur := claimOne(t, s, "t", "w2", "d1", at(lease))
	if cur.LeaseOwner != "w2" || cur.Attempts != 0 {
		t.Fatalf("re-claimed: owner %q attempts %d, want w2 and 0", cur.LeaseOwner, cur.Attempts)
	}
	wantTime(t, "new lease end", cur.NextAttemptAt, t0.Add(2*lease))

	_, err := s.DeliveryComplete(ctx, completeParams(old, record.DeliverySucceeded, at(lease+time.Second)))
	wantErr(t, "complete by the old owner", err, store.ErrLeaseLost)
	err = postpone(s, old, t0, "", at(lease))
	wantErr(t, "postpone by the old owner", err, store.ErrLeaseLost)
	d := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryRunning)
	if d.LeaseOwner != "w2" || d.Attempts != 0 {
		t.Fatalf("after the lost calls: owner %q attempts %d, want w2 and 0", d.LeaseOwner, d.Attempts)
	}

	complete(t, s, cur, record.DeliverySucceeded, at(lease+time.Second))
	_, err = s.DeliveryComplete(ctx, completeParams(cur, record.DeliverySucceeded, at(lease+2*time.Second)))
	wantErr(t, "complete twice", err, store.ErrLeaseLost)
	err = postpone(s, cur, t0, "", at(lease))
	wantErr(t, "postpone after complete", err, store.ErrLeaseLost)
	wantStatus(t, s, "m1", record.MessageSucceeded)
	if n := len(get(t, s, "m1").Attempts["d1"]); n != 1 {
		t.Fatalf("attempts: got %d, want 1", n)
	}
}

func testComplete(t *testing.T, open Opener) {
	ok, dead := record.DeliverySucceeded, record.DeliveryDead
	tests := []struct {
		name     string
		required []bool
		outcome  []record.DeliveryStatus
		want     record.MessageStatus
	}{
		{"succeeded", []bool{true}, []record.DeliveryStatus{ok}, record.MessageSucceeded},
		{"failed", []bool{true}, []record.DeliveryStatus{dead}, record.MessageFailed},
		{"partially", []bool{true, true}, []record.DeliveryStatus{ok, dead}, record.MessagePartiallySucceeded},
		{"optional failed", []bool{true, false}, []record.DeliveryStatus{ok, dead}, record.MessageSucceeded},
		{"none required", []bool{false, false}, []record.DeliveryStatus{dead, ok}, record.MessagePartiallySucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			var ds []record.Delivery
			for i, req := range tt.required {
				d := due(fmt.Sprintf("d%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("t%d", i), 0)
				d.Required = req
				ds = append(ds, d)
			}
			insert(t, s, at(0), msg("m1", "r"), ds...)
			for i, outcome := range tt.outcome {
				d := claimOne(t, s, fmt.Sprintf("t%d", i), "w", ds[i].ID, at(time.Second))
				res := complete(t, s, d, outcome, at(2*time.Second))
				want := record.MessageRunning
				if i == len(tt.outcome)-1 {
					want = tt.want
				}
				if res.MessageID != "m1" || res.MessageStatus != want {
					t.Fatalf("after %s: result %q %q, want m1 %s", d.ID, res.MessageID, res.MessageStatus, want)
				}
				wantStatus(t, s, "m1", want)
				got := wantDeliveryStatus(t, s, "m1", d.ID, outcome)
				if got.Attempts != 1 || got.LeaseOwner != "" {
					t.Fatalf("delivery %s: attempts %d owner %q, want 1 and none", d.ID, got.Attempts, got.LeaseOwner)
				}
			}
		})
	}

	t.Run("retry then dead", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
		d := claimOne(t, s, "t", "w", "d1", at(0))
		p := completeParams(d, record.DeliveryScheduled, at(time.Second))
		res, err := s.DeliveryComplete(context.Background(), p)
		if err != nil {
			t.Fatalf("complete retry: %v", err)
		}
		if res.MessageStatus != record.MessageRunning || len(res.Ready) != 0 {
			t.Fatalf("retry result: %+v", res)
		}
		got := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryScheduled)
		if got.Attempts != 1 || got.LeaseOwner != "" || got.LastError != p.LastError {
			t.Fatalf("after retry: %+v", got)
		}
		wantTime(t, "retry at", got.NextAttemptAt, p.NextAttemptAt)
		wantStatus(t, s, "m1", record.MessageRunning)

		wantIDs(t, "before the retry", ids(claim(t, s, "t", "w", 1, lease, at(10*time.Second))), nil)
		d = claimOne(t, s, "t", "w", "d1", at(11*time.Second))
		if d.Attempts != 1 {
			t.Fatalf("claimed retry: attempts %d, want 1", d.Attempts)
		}
		complete(t, s, d, record.DeliveryDead, at(12*time.Second))
		wantStatus(t, s, "m1", record.MessageFailed)
		as := get(t, s, "m1").Attempts["d1"]
		if len(as) != 2 || as[0].N != 1 || as[1].N != 2 ||
			as[0].Outcome != record.OutcomeTransient || as[1].Outcome != record.OutcomePermanent {
			t.Fatalf("attempts: %+v", as)
		}
	})
}

func testCompleteErrors(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0), due("d2", "s2", "t2", 0))

	p := completeParams(record.Delivery{ID: "nope", LeaseOwner: "w", LeaseToken: 1}, record.DeliverySucceeded, at(0))
	_, err := s.DeliveryComplete(ctx, p)
	wantErr(t, "unknown delivery", err, store.ErrNotFound)

	p = completeParams(record.Delivery{ID: "d2", LeaseOwner: "w", LeaseToken: 1}, record.DeliverySucceeded, at(0))
	_, err = s.DeliveryComplete(ctx, p)
	wantErr(t, "never claimed", err, store.ErrLeaseLost)

	d := claimOne(t, s, "t", "w", "d1", at(0))
	d.Attempts = 1 // so the attempt's N is 2 where 1 is due
	if _, err := s.DeliveryComplete(ctx, completeParams(d, record.DeliverySucceeded, at(time.Second))); err == nil {
		t.Fatal("complete with the wrong attempt number: no error")
	}
	got := wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryRunning)
	if got.Attempts != 0 || len(get(t, s, "m1").Attempts["d1"]) != 0 {
		t.Fatalf("a failed complete left traces: %+v", got)
	}
}

func testDependencies(t *testing.T, open Opener) {
	t.Run("chain", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"),
			due("a", "a", "ta", 0), waiting("b", "b", "tb", "a"), waiting("c", "c", "tc", "b"))
		wantIDs(t, "waiting is not claimed", ids(claim(t, s, "tb", "w", 10, lease, at(time.Hour))), nil)

		res := complete(t, s, claimOne(t, s, "ta", "w", "a", at(0)), record.DeliverySucceeded, at(time.Second))
		wantIDs(t, "ready after a", ids(res.Ready), []string{"b"})
		b := res.Ready[0]
		if b.Status != record.DeliveryScheduled || b.Target != "tb" || b.Step != "b" || b.MessageID != "m1" {
			t.Fatalf("ready delivery: %+v", b)
		}
		wantTime(t, "ready at", b.NextAttemptAt, t0.Add(time.Second))
		wantDeliveryStatus(t, s, "m1", "c", record.DeliveryWaiting)

		res = complete(t, s, claimOne(t, s, "tb", "w", "b", at(time.Second)), record.DeliverySucceeded, at(2*time.Second))
		wantIDs(t, "ready after b", ids(res.Ready), []string{"c"})
		res = complete(t, s, claimOne(t, s, "tc", "w", "c", at(2*time.Second)), record.DeliverySucceeded, at(3*time.Second))
		if res.MessageStatus != record.MessageSucceeded || len(res.Ready) != 0 {
			t.Fatalf("last result: %+v", res)
		}
	})

	t.Run("skip transitively", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"),
			due("a", "a", "ta", 0), waiting("b", "b", "tb", "a"), waiting("c", "c", "tc", "b"), due("d", "d", "td", 0))
		res := complete(t, s, claimOne(t, s, "ta", "w", "a", at(0)), record.DeliveryDead, at(time.Second))
		if len(res.Ready) != 0 || res.MessageStatus != record.MessageRunning {
			t.Fatalf("after a died: %+v", res)
		}
		for _, id := range []string{"b", "c"} {
			d := wantDeliveryStatus(t, s, "m1", id, record.DeliverySkipped)
			if d.LastError == "" {
				t.Fatalf("skipped %s has no LastError", id)
			}
		}
		wantIDs(t, "skipped is not claimed", ids(claim(t, s, "tb", "w", 10, lease, at(time.Hour))), nil)
		res = complete(t, s, claimOne(t, s, "td", "w", "d", at(0)), record.DeliverySucceeded, at(time.Second))
		if res.MessageStatus != record.MessagePartiallySucceeded {
			t.Fatalf("message status: got %s, want partially_succeeded", res.MessageStatus)
		}
	})

	t.Run("diamond", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"),
			due("a", "a", "ta", 0), due("b", "b", "tb", 0), waiting("c", "c", "tc", "a", "b"))
		res := complete(t, s, claimOne(t, s, "ta", "w", "a", at(0)), record.DeliverySucceeded, at(time.Second))
		wantIDs(t, "ready after a", ids(res.Ready), nil)
		res = complete(t, s, claimOne(t, s, "tb", "w", "b", at(0)), record.DeliverySucceeded, at(time.Second))
		wantIDs(t, "ready after b", ids(res.Ready), []string{"c"})
	})
}

func testPostpone(t *testing.T, open Opener) {
	s := open(t)
	insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
	d := claimOne(t, s, "t", "w", "d1", at(0))
	err := postpone(s, d, t0.Add(time.Minute), "breaker open", at(time.Second))
	if err != nil {
		t.Fatalf("postpone: %v", err)
	}
	d = wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryScheduled)
	if d.Attempts != 0 || d.LeaseOwner != "" || d.LastError != "breaker open" {
		t.Fatalf("postponed: attempts %d owner %q error %q", d.Attempts, d.LeaseOwner, d.LastError)
	}
	wantTime(t, "postponed to", d.NextAttemptAt, t0.Add(time.Minute))
	wantTime(t, "updated at", d.UpdatedAt, t0.Add(time.Second))
	if n := len(get(t, s, "m1").Attempts["d1"]); n != 0 {
		t.Fatalf("postpone recorded %d attempts", n)
	}

	wantIDs(t, "before", ids(claim(t, s, "t", "w", 1, lease, at(time.Minute-time.Second))), nil)
	d = claimOne(t, s, "t", "w", "d1", at(time.Minute))
	err = postpone(s, d, t0.Add(2*time.Minute), "", at(time.Minute))
	if err != nil {
		t.Fatalf("postpone without reason: %v", err)
	}
	d = wantDeliveryStatus(t, s, "m1", "d1", record.DeliveryScheduled)
	if d.LastError != "breaker open" {
		t.Fatalf("an empty reason replaced LastError: %q", d.LastError)
	}
	err = postpone(s, record.Delivery{ID: "nope", LeaseOwner: "w", LeaseToken: 1}, t0, "", at(0))
	wantErr(t, "postpone of an unknown delivery", err, store.ErrNotFound)
}

func testStats(t *testing.T, open Opener) {
	s := open(t)
	// ta: r and x are claimed first (oldest); x dies, r stays running.
	insert(t, s, at(-time.Hour), msg("m1", "r"), due("r", "r", "ta", -10*time.Minute))
	insert(t, s, at(-time.Hour), msg("m2", "r"), due("x", "x", "ta", -9*time.Minute))
	for _, d := range claim(t, s, "ta", "w", 2, time.Hour, at(-5*time.Minute)) {
		if d.ID == "x" {
			complete(t, s, d, record.DeliveryDead, at(-5*time.Minute))
		}
	}
	insert(t, s, at(-time.Hour), msg("m3", "r"),
		due("s1", "s1", "ta", -time.Second), due("s2", "s2", "ta", 0), due("s3", "s3", "ta", time.Minute),
		waiting("w", "w", "ta", "s1"), due("y", "y", "tb", -time.Second))
	insert(t, s, at(-time.Hour), msg("m4", "r"), due("ok", "ok", "tc", -time.Hour))
	complete(t, s, claimOne(t, s, "tc", "w", "ok", at(-time.Hour)), record.DeliverySucceeded, at(-time.Hour))

	got := statsByTarget(t, s, at(0))
	want := map[string]store.TargetStats{
		"ta": {Target: "ta", Due: 2, Scheduled: 1, Waiting: 1, Running: 1, Dead: 1, OldestDue: t0.Add(-time.Second)},
		"tb": {Target: "tb", Due: 1, OldestDue: t0.Add(-time.Second)},
		"tc": {Target: "tc"},
	}
	for name, w := range want {
		g := got[name]
		g.Target = name
		if !g.OldestDue.Equal(w.OldestDue) {
			t.Fatalf("stats of %s: oldest due %v, want %v", name, g.OldestDue, w.OldestDue)
		}
		g.OldestDue = w.OldestDue
		if g != w {
			t.Fatalf("stats of %s: got %+v, want %+v", name, g, w)
		}
	}
}
