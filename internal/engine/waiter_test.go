package engine

import (
	"testing"

	"github.com/tandem-run/tandem/internal/record"
)

// TestWaiterStatus: completions committed together notify in any order;
// a terminal status told first is not hidden by an older one told after,
// and a change that does not know the status makes the caller read.
func TestWaiterStatus(t *testing.T) {
	e := &Engine{waiters: map[string]*waiter{}}
	w, ch := e.subscribe("m")
	e.notifyStatus("m", record.MessageSucceeded)
	e.notifyStatus("m", record.MessageRunning)
	select {
	case <-ch:
	default:
		t.Fatal("the first change did not close the channel taken at subscribe")
	}
	next, status := e.next(w)
	if status != record.MessageSucceeded {
		t.Errorf("status %q, want %q", status, record.MessageSucceeded)
	}
	e.notify("m")
	<-next
	if _, status := e.next(w); status != "" {
		t.Errorf("after a change that did not say: status %q, want none", status)
	}
	e.unsubscribe("m")
	e.notifyStatus("m", record.MessageFailed) // nobody waits: no panic
}
