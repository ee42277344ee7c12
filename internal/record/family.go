package record

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// The write core. Every store write that changes a message's deliveries
// (a completion, a replay, a discard) goes through a Family: the driver
// reads the message's deliveries inside its write transaction, hands them
// to NewFamily, applies the operations, and persists exactly what Writes
// returns. The decisions (is the lease still held, is the attempt the one
// due, which steps become due or skipped, which compensations run, may a
// replay go ahead, what the message status becomes) are made here once,
// so the two drivers cannot drift; what stays per driver is SQL and
// transactions.

// ErrLeaseLost: the delivery is not leased under the given fencing token
// any more (the lease ran out and another worker claimed it, it was given
// back, or it was replayed). store.ErrLeaseLost is this error.
var ErrLeaseLost = errors.New("delivery lease lost")

// AttemptError is a completion whose attempt number is not the one due.
type AttemptError struct {
	DeliveryID string
	Given, Due int
}

func (e *AttemptError) Error() string {
	return fmt.Sprintf("complete delivery %s: attempt %d given, %d due", e.DeliveryID, e.Given, e.Due)
}

// Completion is the result of one attempt, to be recorded for the
// delivery it was made on, under the claim that made it.
type Completion struct {
	DeliveryID string
	Owner      string
	LeaseToken int64
	Attempt    Attempt
	// Status is succeeded, scheduled (a retry at NextAttemptAt) or dead.
	Status        DeliveryStatus
	NextAttemptAt time.Time
	LastError     string
	// Unknown: the attempt may have reached the target without tandem
	// learning its outcome (the request was written, then a timeout or a
	// reset). A saga compensates such a step if it ends dead.
	Unknown         bool
	ResponseStatus  int
	ResponseBody    []byte
	ResponseHeaders map[string][]string
}

// Refusal is a delivery a replay left alone, and why.
type Refusal struct {
	DeliveryID string
	Reason     string
}

// Reasons a replay refuses a delivery.
const (
	RefusedNotDead         = "not dead"
	RefusedCompensationRan = "compensation has begun: its forward steps cannot be replayed"
	// RefusedCompensationNotDue: a compensation may run only once every
	// forward step is final, a required one failed, and its own step
	// succeeded or may have.
	RefusedCompensationNotDue = "its saga has not failed, or its step never ran: there is nothing to undo yet"
	// RefusedOnCompleteNotDue: an on_complete delivery may run only once
	// every other delivery of its message is final.
	RefusedOnCompleteNotDue = "the message is not finished: its summary is sent once every step is final"
)

// Writes is what a driver persists for one message, in this order:
// Completed (an attempt row each, and the delivery's result), then
// Replayed (the whole new replay state), then Changes (status,
// next_attempt_at and last_error; a change may name a delivery of the two
// lists before, and then wins), then the message status when
// StatusChanged.
type Writes struct {
	MessageID string
	Completed []*Completion
	Replayed  []Delivery
	Changes   []Change
	Refused   []Refusal
	// Status is the message status after the writes.
	Status        MessageStatus
	StatusChanged bool
	// Ready are the deliveries this write made scheduled and due (resolved
	// dependants, compensations), so the caller can wake their targets.
	Ready []Delivery
}

// Empty reports whether there is nothing to persist.
func (w *Writes) Empty() bool {
	return len(w.Completed) == 0 && len(w.Replayed) == 0 && len(w.Changes) == 0 && !w.StatusChanged
}

// Family is one message's deliveries, as a driver read them inside its
// write transaction, and the operations decided on them. Its methods do no
// I/O.
type Family struct {
	messageID string
	was       MessageStatus
	now       time.Time
	ds        []Delivery // a copy, changed as operations apply
	orig      []Delivery
	completed []*Completion
	replayed  []string // ids, in order
	unskip    []string // steps whose skipped dependants go back to waiting
	refused   []Refusal
	discarded map[string]string // id → reason
}

// NewFamily starts a write on the message messageID, whose stored status
// is status and whose deliveries are ds (every delivery of the message;
// ds is not modified). now is the write's clock.
func NewFamily(messageID string, status MessageStatus, ds []Delivery, now time.Time) *Family {
	return &Family{
		messageID: messageID,
		was:       status,
		now:       now,
		ds:        slices.Clone(ds),
		orig:      slices.Clone(ds),
		discarded: map[string]string{},
	}
}

// MessageID returns the id of the family's message.
func (f *Family) MessageID() string { return f.messageID }

// Now returns the write's clock.
func (f *Family) Now() time.Time { return f.now }

// Deliveries returns the family's deliveries as the operations so far
// left them (after Writes: as they will be stored).
func (f *Family) Deliveries() []Delivery { return f.ds }

func (f *Family) index(id string) int {
	for i := range f.ds {
		if f.ds[i].ID == id {
			return i
		}
	}
	return -1
}

// Has reports whether the family holds the delivery id.
func (f *Family) Has(id string) bool { return f.index(id) >= 0 }

// Complete records c if its claim still holds: the delivery is running
// under c's owner and fencing token, and c's attempt is the one due. It
// returns ErrLeaseLost (wrapped) or an *AttemptError otherwise, and then
// changes nothing.
func (f *Family) Complete(c *Completion) error {
	i := f.index(c.DeliveryID)
	if i < 0 {
		return fmt.Errorf("complete delivery %s: not in message %s", c.DeliveryID, f.messageID)
	}
	d := &f.ds[i]
	if d.Status != DeliveryRunning || d.LeaseOwner != c.Owner || d.LeaseToken != c.LeaseToken {
		return fmt.Errorf("complete delivery %s: %w", c.DeliveryID, ErrLeaseLost)
	}
	if c.Attempt.N != d.Attempts+1 {
		return &AttemptError{DeliveryID: d.ID, Given: c.Attempt.N, Due: d.Attempts + 1}
	}
	d.Status, d.Attempts, d.LeaseOwner = c.Status, d.Attempts+1, ""
	// "May have happened" is sticky: a later attempt's clean failure does
	// not undo an earlier attempt that may have reached the target.
	d.NextAttemptAt, d.LastError, d.OutcomeUnknown = c.NextAttemptAt, c.LastError, d.OutcomeUnknown || c.Unknown
	c.Unknown = d.OutcomeUnknown
	if c.Status == DeliveryScheduled && d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = f.now
	}
	if c.Status != DeliveryScheduled {
		d.NextAttemptAt = time.Time{}
	}
	d.ResponseStatus, d.ResponseBody, d.ResponseHeaders = c.ResponseStatus, c.ResponseBody, c.ResponseHeaders
	f.completed = append(f.completed, c)
	return nil
}

// compensationBegan reports whether any compensation of the message has
// run or is running: from then on the saga's outcome is decided and its
// forward steps stay as they are.
func (f *Family) compensationBegan() bool {
	for _, d := range f.ds {
		if _, isComp := Compensates(d.Step); isComp {
			switch {
			case d.Status == DeliveryScheduled, d.Status == DeliveryRunning, d.Status == DeliverySucceeded:
				return true
			case d.Status == DeliveryDead && d.Attempts > 0:
				return true // a compensation dead-lettered unsent (its target gone) never ran
			}
			continue
		}
		if d.Status == DeliveryCompensating || d.Status == DeliveryCompensated {
			return true
		}
	}
	return false
}

// compensationDue reports whether the compensation comp may run: every
// forward step is final, a required one failed for good, and the step it
// undoes succeeded (or is being undone) or may have happened.
func (f *Family) compensationDue(comp string) bool {
	base, _ := Compensates(comp)
	failed := false
	for _, d := range f.ds {
		if _, isComp := Compensates(d.Step); isComp || IsOnComplete(d.Step) {
			continue
		}
		s := d.Status
		if !s.Final() && s != DeliveryCompensating {
			return false
		}
		if d.Required && (s == DeliveryDead || s == DeliverySkipped || s == DeliveryCancelled) {
			failed = true
		}
		if d.Step == base {
			switch {
			case s == DeliverySucceeded, s == DeliveryCompensating, s == DeliveryCompensated:
			case s == DeliveryDead && d.OutcomeUnknown && !d.NoCompensateUnknown:
			default:
				return false
			}
		}
	}
	return failed || f.compensationBegan()
}

// othersFinal reports whether every delivery but id is final, and none
// of them is being replayed by this write.
func (f *Family) othersFinal(id string) bool {
	for _, d := range f.ds {
		if d.ID != id && !IsOnComplete(d.Step) && (!d.Status.Final() || slices.Contains(f.replayed, d.ID)) {
			return false
		}
	}
	return true
}

// Replay sends the dead deliveries ids back to work with a fresh retry
// budget. A delivery that is not dead is refused (RefusedNotDead), and so
// is a forward step of a saga whose compensation has begun
// (RefusedCompensationRan); a dead compensation may always be replayed.
// Ids not in the family are ignored.
func (f *Family) Replay(ids []string) {
	began := f.compensationBegan()
	for _, id := range ids {
		i := f.index(id)
		if i < 0 || slices.Contains(f.replayed, id) {
			continue
		}
		d := &f.ds[i]
		_, isComp := Compensates(d.Step)
		switch {
		case d.Status != DeliveryDead:
			f.refused = append(f.refused, Refusal{DeliveryID: id, Reason: RefusedNotDead})
			continue
		case began && !isComp:
			f.refused = append(f.refused, Refusal{DeliveryID: id, Reason: RefusedCompensationRan})
			continue
		case isComp && !f.compensationDue(d.Step):
			f.refused = append(f.refused, Refusal{DeliveryID: id, Reason: RefusedCompensationNotDue})
			continue
		case IsOnComplete(d.Step) && !f.othersFinal(id):
			f.refused = append(f.refused, Refusal{DeliveryID: id, Reason: RefusedOnCompleteNotDue})
			continue
		}
		d.Status, d.NextAttemptAt, d.LeaseOwner = DeliveryScheduled, f.now, ""
		d.AttemptsAtReplay, d.ReplayedAt, d.Replays = d.Attempts, f.now, d.Replays+1
		f.replayed = append(f.replayed, id)
		if !IsOnComplete(d.Step) {
			f.unskip = append(f.unskip, d.Step)
		}
	}
}

// Discard dead-letters the open deliveries ids (waiting, scheduled, or
// running with a lease that ended by now) with reason: nothing can ever
// deliver them (their target is gone). A running delivery whose lease
// still holds is left to its worker.
func (f *Family) Discard(ids []string, reason string) {
	for _, id := range ids {
		i := f.index(id)
		if i < 0 {
			continue
		}
		d := &f.ds[i]
		switch {
		case d.Status == DeliveryWaiting, d.Status == DeliveryScheduled:
		case d.Status == DeliveryRunning && !d.NextAttemptAt.After(f.now):
		default:
			continue
		}
		if d.Status == DeliveryRunning {
			// Its worker may have sent the request before it died.
			d.OutcomeUnknown = true
		}
		d.Status, d.NextAttemptAt, d.LeaseOwner, d.LastError = DeliveryDead, time.Time{}, "", reason
		f.discarded[id] = reason
	}
}

// Writes resolves the message after the operations (replayed steps'
// skipped dependants wait again, Resolve schedules, skips and runs
// compensations), derives its status, and returns what to persist.
func (f *Family) Writes() *Writes {
	w := &Writes{MessageID: f.messageID, Completed: f.completed, Refused: f.refused}
	for _, step := range f.unskip {
		applyChanges(f.ds, Unskip(f.ds, step))
	}
	applyChanges(f.ds, Resolve(f.ds, f.now))
	replayed := map[string]bool{}
	for _, id := range f.replayed {
		replayed[id] = true
		d := f.ds[f.index(id)]
		w.Replayed = append(w.Replayed, d)
	}
	completed := map[string]bool{}
	for _, c := range f.completed {
		completed[c.DeliveryID] = true
	}
	for i, d := range f.ds {
		o := f.orig[i]
		switch {
		case completed[d.ID] || replayed[d.ID]:
			// Written whole above; a change here only if Resolve moved it on.
			if d.Status == base(f, d.ID).Status && d.LastError == base(f, d.ID).LastError {
				continue
			}
		case d.Status == o.Status && f.discarded[d.ID] == "":
			continue
		}
		w.Changes = append(w.Changes, Change{DeliveryID: d.ID, Status: d.Status, NextAttemptAt: d.NextAttemptAt, LastError: d.LastError,
			Unknown: d.OutcomeUnknown && !o.OutcomeUnknown})
		if d.Status == DeliveryScheduled && !d.NextAttemptAt.After(f.now) && o.Status != DeliveryScheduled && !replayed[d.ID] {
			w.Ready = append(w.Ready, d)
		}
	}
	w.Status = DeriveMessageStatus(f.ds)
	w.StatusChanged = w.Status != f.was
	return w
}

// base returns what a completed or replayed delivery was set to by its
// operation, before Resolve: the state its whole-row write holds.
func base(f *Family, id string) Delivery {
	for _, c := range f.completed {
		if c.DeliveryID == id {
			d := Delivery{Status: c.Status, LastError: c.LastError}
			return d
		}
	}
	for i := range f.orig {
		if f.orig[i].ID == id {
			// A replay sets scheduled and keeps the last error.
			return Delivery{Status: DeliveryScheduled, LastError: f.orig[i].LastError}
		}
	}
	return Delivery{}
}

// applyChanges applies changes to ds in place.
func applyChanges(ds []Delivery, changes []Change) {
	for _, c := range changes {
		for i := range ds {
			if ds[i].ID == c.DeliveryID {
				ds[i].Status, ds[i].NextAttemptAt, ds[i].LastError = c.Status, c.NextAttemptAt, c.LastError
				break
			}
		}
	}
}
