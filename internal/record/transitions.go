package record

// Event names what moves a delivery from one status to another.
type Event string

// Delivery events: the store's writes (accept, claim, complete, postpone,
// replay) and the changes record.Resolve and record.Unskip decide in the
// same transaction.
const (
	// EventAccept stores a delivery with its message (MessageInsert).
	EventAccept Event = "accept"
	// EventClaim leases a due delivery to a worker under a new fencing token.
	EventClaim Event = "claim"
	// EventLeaseExpiryReclaim claims a running delivery whose lease ran
	// out (its worker crashed or was too slow), under a new token.
	EventLeaseExpiryReclaim Event = "lease-expiry-reclaim"
	// EventCompleteSuccess records a successful attempt.
	EventCompleteSuccess Event = "complete-success"
	// EventCompleteRetry records a failed attempt with retry budget left.
	EventCompleteRetry Event = "complete-retry"
	// EventCompleteDead records a permanent failure or the last attempt.
	EventCompleteDead Event = "complete-dead"
	// EventPostpone gives a claim back without counting an attempt.
	EventPostpone Event = "postpone"
	// EventReplay sends a dead delivery back to work (DeliveryReplay).
	EventReplay Event = "replay"
	// EventResolveSchedule: every step a waiting forward step runs after
	// succeeded.
	EventResolveSchedule Event = "resolve-schedule"
	// EventResolveSkip: a step a waiting forward step runs after failed
	// for good.
	EventResolveSkip Event = "resolve-skip"
	// EventCompensationSchedule: a saga failed and a compensation is due
	// (every compensation downstream of its step is final).
	EventCompensationSchedule Event = "compensation-schedule"
	// EventCompensationCancel: a compensation that has nothing to undo.
	EventCompensationCancel Event = "compensation-cancel"
	// EventCompensate: a forward step's compensation is scheduled or
	// running.
	EventCompensate Event = "compensate"
	// EventCompensationSuccess: a forward step's compensation succeeded.
	EventCompensationSuccess Event = "compensation-success"
	// EventCompensationDead: a forward step's compensation is dead; the
	// step's effect stands.
	EventCompensationDead Event = "compensation-dead"
	// EventUnskip: a step a skipped delivery runs after was replayed.
	EventUnskip Event = "unskip"
	// EventReopen: a forward step was replayed, so a cancelled
	// compensation waits for the saga's outcome again.
	EventReopen Event = "reopen"
)

// DeliveryTransition is one allowed change of a delivery's status. From
// is empty for a delivery that is being stored.
type DeliveryTransition struct {
	From, To DeliveryStatus
	Event    Event
}

// DeliveryTransitions lists every change of a delivery's status that the
// stores and Resolve make, with the event that causes it. The model of
// the protocol (model/delivery.pml) marks the same set, and the tests of
// both check it against what the code does, so the three cannot drift.
var DeliveryTransitions = []DeliveryTransition{
	{"", DeliveryScheduled, EventAccept},
	{"", DeliveryWaiting, EventAccept},
	{DeliveryScheduled, DeliveryRunning, EventClaim},
	{DeliveryRunning, DeliveryRunning, EventLeaseExpiryReclaim},
	{DeliveryRunning, DeliverySucceeded, EventCompleteSuccess},
	{DeliveryRunning, DeliveryScheduled, EventCompleteRetry},
	{DeliveryRunning, DeliveryDead, EventCompleteDead},
	{DeliveryRunning, DeliveryScheduled, EventPostpone},
	{DeliveryDead, DeliveryScheduled, EventReplay},
	{DeliveryWaiting, DeliveryScheduled, EventResolveSchedule},
	{DeliveryWaiting, DeliverySkipped, EventResolveSkip},
	{DeliveryWaiting, DeliveryScheduled, EventCompensationSchedule},
	{DeliveryWaiting, DeliveryCancelled, EventCompensationCancel},
	{DeliverySucceeded, DeliveryCompensating, EventCompensate},
	{DeliveryCompensating, DeliveryCompensated, EventCompensationSuccess},
	{DeliveryCompensating, DeliverySucceeded, EventCompensationDead},
	{DeliverySkipped, DeliveryWaiting, EventUnskip},
	{DeliveryCancelled, DeliveryWaiting, EventReopen},
}

// CanMove reports whether a delivery may change from one status to the
// other (from empty: be stored with that status).
func CanMove(from, to DeliveryStatus) bool {
	for _, t := range DeliveryTransitions {
		if t.From == from && t.To == to {
			return true
		}
	}
	return false
}
