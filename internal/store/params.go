package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// Lease names one claim of a delivery: the delivery, the worker that holds
// it and the claim's fencing token. Every write that ends or moves a claim
// carries it.
type Lease struct {
	DeliveryID string
	Owner      string
	Token      int64
}

// LeaseOf returns the lease of a delivery as DeliveryClaim returned it.
func LeaseOf(d *record.Delivery) Lease {
	return Lease{DeliveryID: d.ID, Owner: d.LeaseOwner, Token: d.LeaseToken}
}

// Response is what a target answered to an attempt, kept with the
// delivery for answers and for later steps' templates.
type Response struct {
	Status  int
	Body    []byte
	Headers map[string][]string
}

// CompleteSucceeded records attempt a as the delivery's success.
func CompleteSucceeded(l Lease, a record.Attempt, r Response) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliverySucceeded, time.Time{}, "")
}

// CompleteRetry records attempt a as a failure to try again at next;
// lastError says why it failed.
func CompleteRetry(l Lease, a record.Attempt, r Response, next time.Time, lastError string) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliveryScheduled, next, lastError)
}

// CompleteDead records attempt a as the delivery's end: a dead letter,
// with reason kept as its last error.
func CompleteDead(l Lease, a record.Attempt, r Response, reason string) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliveryDead, time.Time{}, reason)
}

func complete(l Lease, a record.Attempt, r Response, st record.DeliveryStatus, next time.Time, lastError string) *DeliveryCompleteParams {
	a.DeliveryID = l.DeliveryID
	return &DeliveryCompleteParams{
		DeliveryID: l.DeliveryID, Owner: l.Owner, LeaseToken: l.Token,
		Attempt: a, Status: st, NextAttemptAt: next, LastError: lastError,
		ResponseStatus: r.Status, ResponseBody: r.Body, ResponseHeaders: r.Headers,
	}
}

// Postpone gives the claim l back, due at at, without counting an attempt
// (breaker open, rate limit, pause, shutdown, too little lease left).
// reason, when not empty, becomes the delivery's last error.
func Postpone(l Lease, at time.Time, reason string) *DeliveryPostponeParams {
	return &DeliveryPostponeParams{DeliveryID: l.DeliveryID, Owner: l.Owner, LeaseToken: l.Token, NextAttemptAt: at, Reason: reason}
}

// errInvalid marks a params struct that no caller should build; drivers
// return it wrapped, before touching the database.
var errInvalid = errors.New("invalid params")

// Validate reports whether p is one of the combinations the constructors
// build. Both drivers call it first, so they refuse the same input.
func (p *DeliveryCompleteParams) Validate() error {
	switch {
	case p.DeliveryID == "":
		return fmt.Errorf("complete delivery: %w: no delivery id", errInvalid)
	case p.Owner == "" || p.LeaseToken <= 0:
		return fmt.Errorf("complete delivery %s: %w: no lease (owner and fencing token are required)", p.DeliveryID, errInvalid)
	case p.Attempt.N <= 0:
		return fmt.Errorf("complete delivery %s: %w: attempt number %d", p.DeliveryID, errInvalid, p.Attempt.N)
	}
	switch p.Status {
	case record.DeliverySucceeded, record.DeliveryDead:
		if !p.NextAttemptAt.IsZero() {
			return fmt.Errorf("complete delivery %s: %w: a %s delivery has no next attempt", p.DeliveryID, errInvalid, p.Status)
		}
	case record.DeliveryScheduled:
	default:
		return fmt.Errorf("complete delivery %s: %w: status %q, want succeeded, scheduled or dead", p.DeliveryID, errInvalid, p.Status)
	}
	return nil
}

// Validate reports whether p names a claim.
func (p *DeliveryPostponeParams) Validate() error {
	switch {
	case p.DeliveryID == "":
		return fmt.Errorf("postpone delivery: %w: no delivery id", errInvalid)
	case p.Owner == "" || p.LeaseToken <= 0:
		return fmt.Errorf("postpone delivery %s: %w: no lease (owner and fencing token are required)", p.DeliveryID, errInvalid)
	}
	return nil
}
