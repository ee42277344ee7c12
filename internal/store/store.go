// Package store defines the one interface that keeps tandem's messages,
// deliveries and attempts. Implementations live in sqlite/ and postgres/ and
// must pass the conformance suite in storetest/.
//
// Methods are named noun first (MessageInsert, DeliveryClaim) and take one
// params struct each. Every params struct has Now: nil means time.Now(); tests
// set it, so the clock reaches the SQL.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store/migration"
)

// Errors a Store returns; check them with errors.Is.
var (
	// ErrNotFound: no message or delivery with that id.
	ErrNotFound = errors.New("not found")
	// ErrIdempotencyConflict: the route already has a message with this
	// idempotency key and another body.
	ErrIdempotencyConflict = errors.New("idempotency key already used with a different body")
	// ErrLeaseLost: the delivery is no longer leased under the caller's
	// fencing token (its lease ran out and another worker claimed it, it was
	// given back, or it was replayed). It is record.ErrLeaseLost.
	ErrLeaseLost = record.ErrLeaseLost
	// ErrUnavailable: the database cannot be reached; the caller should try
	// again later. Wrapped with the cause.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalidCursor: a list call's Cursor was not one the store handed
	// out; the caller's input is wrong (400, not 500).
	ErrInvalidCursor = errors.New("invalid cursor")
)

// Store keeps messages and their deliveries durably.
type Store interface {
	// MessageInsert durably commits a message and its deliveries, and returns
	// only once the commit is durable (fsync). Concurrent calls share one
	// transaction (group commit).
	//
	// When the route already has a message with the same non-empty
	// IdempotencyKey, nothing is inserted: the result holds the existing
	// message with Existing set, and the error is ErrIdempotencyConflict if
	// its BodyHash differs.
	MessageInsert(ctx context.Context, p *MessageInsertParams) (*MessageInsertResult, error)
	// MessageGet returns a message with its deliveries (ordered by creation,
	// then step) and their attempts. ErrNotFound if there is none.
	MessageGet(ctx context.Context, id string) (*record.MessageDetail, error)
	// MessageList lists messages newest first, filtered and paginated.
	MessageList(ctx context.Context, p *MessageListParams) (*MessageListResult, error)

	// DeliveryClaim leases up to Limit deliveries of Target that are due:
	// scheduled with NextAttemptAt <= Now, or running with a lease that ended
	// at or before Now (a crashed worker's). Oldest due first. Each comes back
	// running, with LeaseOwner = Owner and NextAttemptAt = Now + LeaseFor.
	DeliveryClaim(ctx context.Context, p *DeliveryClaimParams) ([]record.Delivery, error)
	// DeliveryComplete records one attempt and the delivery's new status
	// (succeeded, scheduled for a retry, or dead), then, in the same
	// transaction, resolves the message (record.Family decides; the driver
	// writes what it returns). ErrLeaseLost if the claim named by Owner and
	// LeaseToken no longer holds; a *record.AttemptError if the attempt is
	// not the one due. Concurrent calls may share a transaction.
	DeliveryComplete(ctx context.Context, p *DeliveryCompleteParams) (*DeliveryCompleteResult, error)
	// DeliveryPostpone gives a leased delivery back as scheduled at
	// NextAttemptAt without counting an attempt (breaker open, rate limit,
	// shutdown). ErrLeaseLost if the claim named by Owner and LeaseToken no
	// longer holds.
	DeliveryPostpone(ctx context.Context, p *DeliveryPostponeParams) error
	// DeliveryList lists deliveries newest first, filtered and paginated.
	// Dead letters are the deliveries with Status dead.
	DeliveryList(ctx context.Context, p *DeliveryListParams) (*DeliveryListResult, error)
	// DeliveryReplay sends dead deliveries back to work: scheduled now, with
	// a fresh retry budget (AttemptsAtReplay = Attempts, ReplayedAt = Now,
	// Replays+1); their skipped dependants go back to waiting
	// (record.Unskip); the message status is derived again. It selects by
	// IDs, or, when IDs is empty, by the Route/Target filter (all dead
	// deliveries when both are empty, up to Limit). Deliveries that are not
	// dead are left alone, and so are the forward steps of a saga whose
	// compensation has begun (record.Family.Replay); those asked for by id
	// are listed in Refused with the reason.
	DeliveryReplay(ctx context.Context, p *DeliveryReplayParams) (*DeliveryReplayResult, error)
	// DeliveryDiscard dead-letters the open deliveries of Target (waiting,
	// scheduled, and running ones whose lease ended) with Reason, and
	// settles their messages: for a target that is no longer configured,
	// whose deliveries nothing would ever claim. It returns how many.
	DeliveryDiscard(ctx context.Context, p *DeliveryDiscardParams) (int, error)
	// DeliveryStats counts deliveries per target for the queue-depth gauges.
	DeliveryStats(ctx context.Context, now *time.Time) ([]TargetStats, error)

	// MessagePurge deletes up to Limit finished messages, with their
	// deliveries and attempts, whose retention has passed (see
	// MessagePurgeParams), oldest first, and returns how many it deleted.
	// One call is one small write; callers loop until it deletes fewer than
	// Limit, so a purge never holds the writer long.
	MessagePurge(ctx context.Context, p *MessagePurgeParams) (int, error)
	// DeliveryPurge takes dead letters out of the dead-letter queue for
	// good: each becomes cancelled, its LastError prefixed with "purged: ",
	// and its message status is derived again. It selects like
	// DeliveryReplay (IDs, or the Route/Target filter up to Limit, oldest
	// first); deliveries that are not dead are left alone and not returned.
	DeliveryPurge(ctx context.Context, p *DeliveryPurgeParams) ([]record.Delivery, error)

	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close waits for writes in progress and releases the database.
	Close() error
}

// MessageInsertParams is the input of MessageInsert.
type MessageInsertParams struct {
	// Message to insert; ID, Route, Body, BodyHash set by the caller.
	// Status is set to accepted, CreatedAt and UpdatedAt to Now.
	// TraceParent, when set, is a W3C traceparent (version 00, 55
	// characters) and TraceState at most MaxTraceState bytes.
	Message record.Message
	// Deliveries of the message, one per step; MessageID, Route, CreatedAt
	// and UpdatedAt are filled in. Status is waiting or scheduled.
	Deliveries []record.Delivery
	Now        *time.Time
	// Lease, when set, inserts the deliveries it names that are scheduled
	// and due at Now already claimed, as a DeliveryClaim right after the
	// commit would leave them: running, leased to Owner until Now +
	// LeaseFor, fencing token 1. The lease commits with the message, so a
	// worker with a free slot starts them without a claim of its own.
	// Nothing is leased for an idempotent repeat. Default nil.
	Lease *InsertLease
}

// InsertLease names the deliveries MessageInsert inserts already claimed.
type InsertLease struct {
	Owner    string
	LeaseFor time.Duration
	IDs      []string
}

// MessageInsertResult is the output of MessageInsert.
type MessageInsertResult struct {
	Message  record.Message
	Existing bool // an earlier message with the same idempotency key
	// Leased holds the deliveries inserted already claimed (Lease), as
	// stored, with the message attached; empty for a repeat.
	Leased []record.Delivery
}

// MessageListParams filters MessageList. Zero values do not filter.
type MessageListParams struct {
	Status record.MessageStatus
	Route  string
	// IdempotencyKey: only messages accepted with this inbound key (on
	// any route).
	IdempotencyKey string
	// CreatedFrom and CreatedBefore: only messages created at or after
	// CreatedFrom and before CreatedBefore.
	CreatedFrom   time.Time
	CreatedBefore time.Time
	Limit         int    // default 50, at most 1000
	Cursor        string // from the previous page's NextCursor
}

// MessageListResult is one page of messages.
type MessageListResult struct {
	Messages   []record.Message // Body, Headers and Query may be left empty
	NextCursor string           // empty on the last page
}

// DeliveryClaimParams is the input of DeliveryClaim.
type DeliveryClaimParams struct {
	Target   string
	Limit    int
	LeaseFor time.Duration
	Owner    string
	Now      *time.Time
}

// DeliveryCompleteParams is the input of DeliveryComplete.
//
// Build it with CompleteSucceeded, CompleteRetry or CompleteDead, which
// give only valid combinations; Validate checks one built by hand.
type DeliveryCompleteParams struct {
	DeliveryID string
	Owner      string
	// LeaseToken is the fencing token of the claim the attempt was made
	// under (record.Delivery.LeaseToken); a stale token is ErrLeaseLost.
	LeaseToken int64
	// Attempt made; its N must be the delivery's Attempts+1.
	Attempt record.Attempt
	// Status is succeeded, scheduled (a retry at NextAttemptAt) or dead.
	Status          record.DeliveryStatus
	NextAttemptAt   time.Time
	LastError       string
	ResponseStatus  int
	ResponseBody    []byte
	ResponseHeaders map[string][]string
	// Unknown: the attempt may have reached the target without an answer
	// (see record.Completion).
	Unknown bool
	Now     *time.Time
	// ClaimNext, when set, asks the store to claim due deliveries in the
	// same transaction as the complete, as DeliveryClaim would (a fencing
	// token raised, a reclaimed running delivery marked outcome unknown,
	// the lease written before the answer): a worker that has just freed
	// its slot goes on with the next delivery without a claim of its own.
	// A store may claim fewer, or none; the claims come back in
	// DeliveryCompleteResult.Claimed, with their messages attached. Its
	// Now is ignored: the complete's is used. Default nil.
	ClaimNext *DeliveryClaimParams
}

// DeliveryCompleteResult is the output of DeliveryComplete.
type DeliveryCompleteResult struct {
	MessageID     string
	MessageStatus record.MessageStatus
	// Ready holds deliveries of the message that Resolve made scheduled, so
	// the engine can wake their targets' workers.
	Ready []record.Delivery
	// Claimed holds the deliveries claimed for ClaimNext, leased to its
	// Owner; empty when none was due or the store does not claim with a
	// complete.
	Claimed []record.Delivery
}

// DeliveryPostponeParams is the input of DeliveryPostpone.
// Build it with Postpone.
type DeliveryPostponeParams struct {
	DeliveryID    string
	Owner         string
	LeaseToken    int64 // the claim's fencing token; a stale one is ErrLeaseLost
	NextAttemptAt time.Time
	Reason        string // kept in LastError when not empty
	Now           *time.Time
}

// DeliveryListParams filters DeliveryList. Zero values do not filter.
type DeliveryListParams struct {
	// ID, when set, selects only the delivery with that id (the admin API
	// uses it to tell an unknown delivery from one that is not dead).
	ID        string
	Status    record.DeliveryStatus
	Route     string
	Target    string
	MessageID string
	Limit     int    // default 50, at most 1000
	Cursor    string // from the previous page's NextCursor
}

// DeliveryListResult is one page of deliveries.
type DeliveryListResult struct {
	Deliveries []record.Delivery
	NextCursor string
}

// DeliveryReplayParams selects dead deliveries to replay.
type DeliveryReplayParams struct {
	IDs    []string
	Route  string
	Target string
	Limit  int // with a filter; default 1000
	Now    *time.Time
}

// DeliveryReplayResult is the output of DeliveryReplay.
type DeliveryReplayResult struct {
	// Replayed are the deliveries sent back to work, in the order asked
	// (by id) or oldest first (by filter).
	Replayed []record.Delivery
	// Refused are deliveries asked for by id, or matched by the filter,
	// that were left alone, with the reason.
	Refused []record.Refusal
}

// DeliveryDiscardParams is the input of DeliveryDiscard.
type DeliveryDiscardParams struct {
	Target string
	Reason string
	Limit  int // per call; default 1000 (call again while it returns Limit)
	Now    *time.Time
}

// MessagePurgeParams say how long finished messages are kept. A message's
// age is the time since it last changed (UpdatedAt). Zero keeps that kind
// for ever.
type MessagePurgeParams struct {
	// Succeeded: messages that succeeded and hold no dead letter.
	Succeeded time.Duration
	// Failed: messages that failed, partially succeeded or were
	// compensated, and hold no dead letter.
	Failed time.Duration
	// Dead: finished messages that still hold a dead letter (one waiting
	// for a replay or a purge), whatever their status.
	Dead  time.Duration
	Limit int // default 100, at most 1000
	Now   *time.Time
}

// DeliveryPurgeParams selects dead letters to purge.
type DeliveryPurgeParams struct {
	IDs    []string
	Route  string
	Target string
	Limit  int // with a filter; default 1000
	Now    *time.Time
}

// PurgedPrefix starts the LastError of a purged dead letter.
const PurgedPrefix = "purged: "

// PurgeLimit returns the batch size of a MessagePurge call: n, or 100
// when n <= 0, at most 1000.
func PurgeLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// TargetStats counts one target's deliveries.
type TargetStats struct {
	Target    string
	Due       int // scheduled and due now
	Scheduled int // scheduled for later
	Waiting   int
	Running   int
	Dead      int
	// OldestDue is when the longest-waiting due delivery became due (its
	// next attempt time); zero when none is due.
	OldestDue time.Time
}

// NowOr returns *now, or time.Now() when now is nil, in UTC.
func NowOr(now *time.Time) time.Time {
	if now != nil {
		return now.UTC()
	}
	return time.Now().UTC()
}

// Optional features: a store shared by several replicas has them; the
// conformance suite tests each one a store has.

// Listener is a store that hears of new work committed by other replicas.
// Listen returns target names with work due; "" means notices may have
// been missed (sent on every (re)connect, the first included), so the
// receiver should look at every target. The channel closes when ctx ends
// or the store closes.
type Listener interface {
	Listen(ctx context.Context) <-chan string
}

// Heartbeater is a store shared by several replicas that counts the live
// ones: Heartbeat records owner alive at now and returns how many owners
// (itself included) were seen within ttl of now; Leave removes owner at
// once.
type Heartbeater interface {
	Heartbeat(ctx context.Context, owner string, now time.Time, ttl time.Duration) (int, error)
	Leave(ctx context.Context, owner string) error
}

// Migrator is a store with versioned schema migrations.
type Migrator interface {
	MigrationStatus(ctx context.Context) ([]migration.State, error)
}

// ChangeFeed is a store shared by several replicas that passes notices of
// changed messages between them, so each replica's live event stream
// (GET /v1/events) shows the work the others do. ChangeNotify queues the
// ids of messages the caller changed, under origin (the caller's name,
// so it can skip its own notices); it never blocks and may merge or,
// when the database cannot be reached, lose notices. ChangeListen returns
// the notices of every replica; a Change with no MessageIDs means
// "notices may have been missed" (sent on every (re)connect, the first
// included). The channel closes when ctx ends or the store closes.
type ChangeFeed interface {
	ChangeNotify(origin string, messageIDs []string)
	ChangeListen(ctx context.Context) <-chan Change
}

// Change is one notice of a ChangeFeed: messages that Origin changed.
type Change struct {
	Origin     string
	MessageIDs []string
}
