package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// kill claims every due delivery of target and completes it with status.
func kill(t *testing.T, s store.Store, target string, status record.DeliveryStatus, now *time.Time) {
	t.Helper()
	for _, d := range claim(t, s, target, "w", 1000, lease, now) {
		complete(t, s, d, status, now)
	}
}

func testDeadLetters(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	// Twelve messages a second apart: route r1 for even i, r2 for odd;
	// target ta, tb, tc by i%3. Those with i%4 == 3 succeed, the rest die.
	for i := range 12 {
		target := []string{"ta", "tb", "tc"}[i%3]
		if i%4 == 3 {
			target = "ok"
		}
		insert(t, s, at(time.Duration(i)*time.Second), msg(fmt.Sprintf("m%02d", i), fmt.Sprintf("r%d", i%2+1)),
			due(fmt.Sprintf("d%02d", i), "s", target, 0))
	}
	for _, target := range []string{"ta", "tb", "tc"} {
		kill(t, s, target, record.DeliveryDead, at(time.Hour))
	}
	kill(t, s, "ok", record.DeliverySucceeded, at(time.Hour))

	dead := record.DeliveryDead
	tests := []struct {
		name string
		p    store.DeliveryListParams
		want []string
	}{
		{"dead", store.DeliveryListParams{Status: dead}, []string{"d10", "d09", "d08", "d06", "d05", "d04", "d02", "d01", "d00"}},
		{"dead on r1", store.DeliveryListParams{Status: dead, Route: "r1"}, []string{"d10", "d08", "d06", "d04", "d02", "d00"}},
		{"dead on ta", store.DeliveryListParams{Status: dead, Target: "ta"}, []string{"d09", "d06", "d00"}},
		{"dead on r2 and tb", store.DeliveryListParams{Status: dead, Route: "r2", Target: "tb"}, []string{"d01"}},
		{"dead of m05", store.DeliveryListParams{Status: dead, MessageID: "m05"}, []string{"d05"}},
		{"by id", store.DeliveryListParams{ID: "d07"}, []string{"d07"}},
		{"by id and status", store.DeliveryListParams{ID: "d07", Status: dead}, nil},
		{"succeeded", store.DeliveryListParams{Status: record.DeliverySucceeded}, []string{"d11", "d07", "d03"}},
		{"all", store.DeliveryListParams{}, []string{"d11", "d10", "d09", "d08", "d07", "d06", "d05", "d04", "d03", "d02", "d01", "d00"}},
		{"none", store.DeliveryListParams{Status: record.DeliveryWaiting}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			res, err := s.DeliveryList(ctx, &p)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			wantIDs(t, "deliveries", ids(res.Deliveries), tt.want)
			if res.NextCursor != "" {
				t.Fatalf("one page but NextCursor %q", res.NextCursor)
			}
			for _, d := range res.Deliveries {
				if d.Status == dead && (d.Attempts != 1 || d.LastError == "" || d.Route == "" || d.MessageID == "") {
					t.Fatalf("dead letter lacks fields: %+v", d)
				}
			}
			for _, limit := range []int{1, 2, 5} {
				p := tt.p
				p.Limit = limit
				wantIDs(t, fmt.Sprintf("pages of %d", limit), walkDeliveries(t, s, p), tt.want)
			}
		})
	}

	t.Run("ties", func(t *testing.T) {
		// Five deliveries of one message share CreatedAt.
		var ds []record.Delivery
		for i := range 5 {
			ds = append(ds, due(fmt.Sprintf("tie%d", i), fmt.Sprintf("s%d", i), "tt", 0))
		}
		insert(t, s, at(time.Hour), msg("mtie", "r3"), ds...)
		kill(t, s, "tt", dead, at(time.Hour))
		got := walkDeliveries(t, s, store.DeliveryListParams{Status: dead, Route: "r3", Limit: 2})
		slices.Sort(got)
		wantIDs(t, "walk", got, []string{"tie0", "tie1", "tie2", "tie3", "tie4"})
	})
}

// walkDeliveries follows NextCursor to the end and returns every id seen.
func walkDeliveries(t *testing.T, s store.Store, p store.DeliveryListParams) []string {
	t.Helper()
	var out []string
	for range 1000 {
		res, err := s.DeliveryList(context.Background(), &p)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(res.Deliveries) > p.Limit {
			t.Fatalf("page of %d deliveries with Limit %d", len(res.Deliveries), p.Limit)
		}
		out = append(out, ids(res.Deliveries)...)
		if res.NextCursor == "" {
			return out
		}
		p.Cursor = res.NextCursor
	}
	t.Fatal("cursor never ended")
	return nil
}

func replay(t *testing.T, s store.Store, p store.DeliveryReplayParams) []record.Delivery {
	t.Helper()
	res, err := s.DeliveryReplay(context.Background(), &p)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return res.Replayed
}

func testReplay(t *testing.T, open Opener) {
	t.Run("by id", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"),
			due("a", "a", "ta", 0), waiting("b", "b", "tb", "a"), waiting("c", "c", "tc", "b"))
		insert(t, s, at(0), msg("m2", "r"), due("ok", "ok", "tok", 0))
		complete(t, s, claimOne(t, s, "tok", "w", "ok", at(0)), record.DeliverySucceeded, at(0))
		complete(t, s, claimOne(t, s, "ta", "w", "a", at(0)), record.DeliveryScheduled, at(time.Second))
		complete(t, s, claimOne(t, s, "ta", "w", "a", at(time.Minute)), record.DeliveryDead, at(time.Minute))
		wantStatus(t, s, "m1", record.MessageFailed)
		wantDeliveryStatus(t, s, "m1", "c", record.DeliverySkipped)

		got := replay(t, s, store.DeliveryReplayParams{IDs: []string{"a", "ok", "nope"}, Now: at(time.Hour)})
		wantIDs(t, "replayed", ids(got), []string{"a"})
		a := got[0]
		if a.Status != record.DeliveryScheduled || a.Attempts != 2 || a.AttemptsAtReplay != 2 || a.Replays != 1 || a.LeaseOwner != "" {
			t.Fatalf("replayed delivery: %+v", a)
		}
		wantTime(t, "due at", a.NextAttemptAt, t0.Add(time.Hour))
		wantTime(t, "replayed at", a.ReplayedAt, t0.Add(time.Hour))
		stored := wantDeliveryStatus(t, s, "m1", "a", record.DeliveryScheduled)
		if stored.Replays != 1 || stored.AttemptsAtReplay != 2 {
			t.Fatalf("stored replay fields: %+v", stored)
		}
		wantDeliveryStatus(t, s, "m1", "b", record.DeliveryWaiting)
		wantDeliveryStatus(t, s, "m1", "c", record.DeliveryWaiting)
		wantDeliveryStatus(t, s, "m2", "ok", record.DeliverySucceeded)
		wantStatus(t, s, "m1", record.MessageRunning)
		wantIDs(t, "replay of a live delivery", ids(replay(t, s, store.DeliveryReplayParams{IDs: []string{"a"}, Now: at(time.Hour)})), nil)

		d := claimOne(t, s, "ta", "w", "a", at(time.Hour))
		if d.Attempts != 2 {
			t.Fatalf("claimed replay: attempts %d, want 2", d.Attempts)
		}
		res := complete(t, s, d, record.DeliverySucceeded, at(time.Hour))
		wantIDs(t, "ready", ids(res.Ready), []string{"b"})
		complete(t, s, claimOne(t, s, "tb", "w", "b", at(time.Hour)), record.DeliverySucceeded, at(time.Hour))
		res = complete(t, s, claimOne(t, s, "tc", "w", "c", at(time.Hour)), record.DeliverySucceeded, at(time.Hour))
		if res.MessageStatus != record.MessageSucceeded {
			t.Fatalf("message status: got %s, want succeeded", res.MessageStatus)
		}
		if n := len(get(t, s, "m1").Attempts["a"]); n != 3 {
			t.Fatalf("attempts of a: got %d, want 3", n)
		}
	})

	t.Run("other dependency still dead", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"),
			due("x", "x", "tx", 0), due("y", "y", "ty", 0), waiting("z", "z", "tz", "x", "y"))
		kill(t, s, "tx", record.DeliveryDead, at(0))
		kill(t, s, "ty", record.DeliveryDead, at(0))
		wantDeliveryStatus(t, s, "m1", "z", record.DeliverySkipped)
		wantStatus(t, s, "m1", record.MessageFailed)

		wantIDs(t, "replay x", ids(replay(t, s, store.DeliveryReplayParams{IDs: []string{"x"}, Now: at(time.Hour)})), []string{"x"})
		// z still depends on y, which is dead: it stays skipped.
		wantDeliveryStatus(t, s, "m1", "z", record.DeliverySkipped)
		wantStatus(t, s, "m1", record.MessageRunning)
		wantIDs(t, "replay y", ids(replay(t, s, store.DeliveryReplayParams{IDs: []string{"y"}, Now: at(time.Hour)})), []string{"y"})
		wantDeliveryStatus(t, s, "m1", "z", record.DeliveryWaiting)
	})
}

func testReplayFilter(t *testing.T, open Opener) {
	s := open(t)
	// Six dead deliveries: route r1 for even i, r2 for odd; ta for i < 3.
	for i := range 6 {
		target := "ta"
		if i >= 3 {
			target = "tb"
		}
		insert(t, s, at(time.Duration(i)*time.Second), msg(fmt.Sprintf("m%d", i), fmt.Sprintf("r%d", i%2+1)),
			due(fmt.Sprintf("d%d", i), "s", target, 0))
	}
	kill(t, s, "ta", record.DeliveryDead, at(time.Minute))
	kill(t, s, "tb", record.DeliveryDead, at(time.Minute))
	insert(t, s, at(0), msg("mok", "r1"), due("ok", "s", "ta", 0))
	kill(t, s, "ta", record.DeliverySucceeded, at(time.Minute))

	sorted := func(ds []record.Delivery) []string {
		out := ids(ds)
		slices.Sort(out)
		return out
	}
	steps := []struct {
		name string
		p    store.DeliveryReplayParams
		want []string
	}{
		{"target", store.DeliveryReplayParams{Target: "tb"}, []string{"d3", "d4", "d5"}},
		{"route", store.DeliveryReplayParams{Route: "r1"}, []string{"d0", "d2"}},
		{"limit", store.DeliveryReplayParams{Limit: 1}, []string{"d1"}},
		{"nothing left", store.DeliveryReplayParams{}, nil},
	}
	for _, st := range steps {
		st.p.Now = at(time.Hour)
		got := replay(t, s, st.p)
		wantIDs(t, st.name, sorted(got), st.want)
		for _, d := range got {
			if d.Status != record.DeliveryScheduled || d.Replays != 1 || d.AttemptsAtReplay != 1 {
				t.Fatalf("%s: replayed delivery %+v", st.name, d)
			}
			wantStatus(t, s, d.MessageID, record.MessageRunning)
		}
	}
	wantDeliveryStatus(t, s, "mok", "ok", record.DeliverySucceeded)
	res, err := s.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	wantIDs(t, "dead letters left", ids(res.Deliveries), nil)
}
