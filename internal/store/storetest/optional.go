package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// testOptional runs the cases of the optional features (store.Listener,
// store.Heartbeater, store.Migrator, store.ChangeFeed) that the store has, and says which it
// lacks.
func testOptional(t *testing.T, open Opener) {
	t.Run("MigrationStatus", func(t *testing.T) {
		s := open(t)
		m, ok := s.(store.Migrator)
		if !ok {
			t.Skip("the store has no migrations")
		}
		st, err := m.MigrationStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 0 {
			t.Fatal("no migrations")
		}
		for i, x := range st {
			if !x.Applied || x.Unknown || x.AppliedAt.IsZero() || x.Name == "" {
				t.Errorf("migration %+v: want applied, known, named, with a time", x)
			}
			if i > 0 && x.Version <= st[i-1].Version {
				t.Errorf("versions out of order: %d after %d", x.Version, st[i-1].Version)
			}
		}
	})

	t.Run("Listen", func(t *testing.T) {
		s := open(t)
		l, ok := s.(store.Listener)
		if !ok {
			t.Skip("the store has no notices (one process)")
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch := l.Listen(ctx)
		// The first notice says "look at everything": the listener is up.
		wantNotice(t, ch, "")
		insert(t, s, at(0), msg("m1", "r"), due("a", "a", "ta", 0), waiting("b", "b", "tb", "a"))
		wantNotice(t, ch, "ta")
		complete(t, s, claimOne(t, s, "ta", "w", "a", at(time.Second)), record.DeliverySucceeded, at(time.Second))
		wantNotice(t, ch, "tb")
		cancel()
		waitFor(t, 10*time.Second, "the channel to close after ctx ends", func() bool {
			select {
			case _, open := <-ch:
				return !open
			default:
				return false
			}
		})
	})

	t.Run("Heartbeat", func(t *testing.T) {
		s := open(t)
		hb, ok := s.(store.Heartbeater)
		if !ok {
			t.Skip("the store is not shared by replicas")
		}
		ctx := context.Background()
		ttl := 15 * time.Second
		beat := func(owner string, now time.Duration, want int) {
			t.Helper()
			n, err := hb.Heartbeat(ctx, owner, t0.Add(now), ttl)
			if err != nil || n != want {
				t.Fatalf("heartbeat %s at %v: %d live (%v), want %d", owner, now, n, err, want)
			}
		}
		beat("a", 0, 1)
		beat("b", time.Second, 2)
		beat("c", 2*time.Second, 3)
		beat("a", ttl, 3)                       // all three seen within ttl
		beat("a", ttl+1500*time.Millisecond, 2) // b's last beat is older than ttl
		if err := hb.Leave(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		beat("a", ttl+1600*time.Millisecond, 1)
		if _, err := hb.Heartbeat(ctx, "", t0, ttl); err == nil {
			t.Error("a heartbeat without an owner: no error")
		}
	})

	t.Run("ChangeFeed", func(t *testing.T) { testChangeFeed(t, open) })
}

// wantNotice waits (bounded) for a notice naming target, skipping others.
func wantNotice(t *testing.T, ch <-chan string, target string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatalf("the notice channel closed before %q", target)
			}
			if got == target {
				return
			}
		case <-deadline:
			t.Fatalf("no notice for %q within 10s", target)
		}
	}
}
