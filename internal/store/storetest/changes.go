package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

// testChangeFeed checks store.ChangeFeed: the first notice says "look at
// everything", then every queued id arrives under its origin, also when
// there are more than one notice can carry, and the channel closes when
// ctx ends.
func testChangeFeed(t *testing.T, open Opener) {
	s := open(t)
	f, ok := s.(store.ChangeFeed)
	if !ok {
		t.Skip("the store is not shared by replicas")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := f.ChangeListen(ctx)
	first := nextChange(t, ch)
	if len(first.MessageIDs) != 0 {
		t.Fatalf("first notice %+v: want one with no ids (listener up)", first)
	}
	f.ChangeNotify("replica-a", []string{"m1", "m2"})
	f.ChangeNotify("replica-b", []string{"m3"})
	f.ChangeNotify("replica-a", nil) // nothing to say: no notice
	// 600 ids of 36 bytes do not fit in one 8000-byte notice.
	many := map[string]bool{}
	var ids []string
	for i := range 600 {
		id := fmt.Sprintf("0190c0de-0000-7000-8000-%012d", i)
		many[id] = true
		ids = append(ids, id)
	}
	f.ChangeNotify("replica-c", ids)

	want := map[string]string{"m1": "replica-a", "m2": "replica-a", "m3": "replica-b"}
	for len(want) > 0 || len(many) > 0 {
		c := nextChange(t, ch)
		for _, id := range c.MessageIDs {
			if o, ok := want[id]; ok {
				if o != c.Origin {
					t.Errorf("message %s: origin %q, want %q", id, c.Origin, o)
				}
				delete(want, id)
				continue
			}
			if many[id] {
				if c.Origin != "replica-c" {
					t.Errorf("message %s: origin %q, want replica-c", id, c.Origin)
				}
				delete(many, id)
			}
		}
	}
	cancel()
	waitFor(t, 10*time.Second, "the change channel to close after ctx ends", func() bool {
		select {
		case _, open := <-ch:
			return !open
		default:
			return false
		}
	})
}

// nextChange waits (bounded) for the next change notice.
func nextChange(t *testing.T, ch <-chan store.Change) store.Change {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("the change channel closed")
		}
		return c
	case <-timer.C:
		t.Fatal("no change notice within 10s")
	}
	return store.Change{}
}
