package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// completeOp is one DeliveryComplete call waiting in a group commit.
type completeOp struct {
	p       store.DeliveryCompleteParams
	now     time.Time
	headers []byte

	res  *store.DeliveryCompleteResult
	err  error
	done chan struct{}
}

func (op *completeOp) finish(res *store.DeliveryCompleteResult, err error) {
	op.res, op.err = res, err
	close(op.done)
}

// DeliveryComplete records an attempt and the delivery's new status, then
// resolves its message's waiting deliveries and derives the message status,
// all in one transaction shared with the other calls in flight. See
// store.Store.DeliveryComplete.
func (s *Store) DeliveryComplete(ctx context.Context, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	op, err := newCompleteOp(p)
	if err != nil {
		return nil, err
	}
	if err := s.completes.call(ctx, op, op.done); err != nil {
		return nil, fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
	}
	return op.res, op.err
}

// newCompleteOp checks p and prepares its values, in the caller's
// goroutine.
func newCompleteOp(p *store.DeliveryCompleteParams) (*completeOp, error) {
	switch p.Status {
	case record.DeliverySucceeded, record.DeliveryScheduled, record.DeliveryDead:
	default:
		return nil, fmt.Errorf("complete delivery %s: status %q, want succeeded, scheduled or dead", p.DeliveryID, p.Status)
	}
	op := &completeOp{p: *p, now: micro(store.NowOr(p.Now)), done: make(chan struct{})}
	op.p.LastError = clean(p.LastError)
	op.p.Attempt.Error = clean(p.Attempt.Error)
	op.p.Attempt.StartedAt = micro(p.Attempt.StartedAt)
	if op.p.Attempt.StartedAt.IsZero() {
		op.p.Attempt.StartedAt = op.now
	}
	op.p.NextAttemptAt = micro(p.NextAttemptAt)
	if p.Status == record.DeliveryScheduled && op.p.NextAttemptAt.IsZero() {
		op.p.NextAttemptAt = op.now
	}
	var err error
	if op.headers, err = encodeHeaders(p.ResponseHeaders); err != nil {
		return nil, fmt.Errorf("complete delivery %s: response headers: %w", p.DeliveryID, err)
	}
	return op, nil
}

// runCompletes is one group commit of DeliveryComplete calls.
func (s *Store) runCompletes(ctx context.Context, ops []*completeOp) {
	// One call per delivery in a batch; a repeat waits for the next one.
	seen := make(map[string]bool, len(ops))
	var now, later []*completeOp
	for _, op := range ops {
		if seen[op.p.DeliveryID] {
			later = append(later, op)
			continue
		}
		seen[op.p.DeliveryID] = true
		now = append(now, op)
	}
	var err error
	for try := 0; ; try++ {
		err = s.completeBatch(ctx, now)
		if err == nil || !retryable(err) || try == 3 {
			break
		}
	}
	switch {
	case err == nil:
	case unavailable(err) || len(now) == 1:
		for _, op := range now {
			op.finish(nil, wrap("complete delivery "+op.p.DeliveryID, err))
		}
	default:
		for _, op := range now {
			s.runCompletes(ctx, []*completeOp{op})
		}
	}
	if len(later) > 0 {
		s.runCompletes(ctx, later)
	}
}

// lockMessagesSQL locks the messages of the deliveries being completed, in
// id order, so that two replicas completing sibling deliveries serialise
// (each must see the other's result to resolve the steps that wait on
// both) and never deadlock.
//
// The message ids are gathered into an array first (an InitPlan), so the
// lookup is an index scan on the primary key whatever the planner thinks
// of the table's size; the same goes for siblingsSQL.
const lockMessagesSQL = `SELECT m.id, m.status FROM messages m
	WHERE m.id = ANY(ARRAY(SELECT message_id FROM deliveries WHERE id = ANY($1)))
	ORDER BY m.id FOR UPDATE`

// completeSQL records the attempts and new states of the deliveries still
// leased to their callers with the expected attempt number; the others are
// left alone and sorted out from the sibling read that follows.
const completeSQL = `WITH u AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[], $6::text[],
		$7::int[], $8::bytea[], $9::bytea[], $10::timestamptz[])
		AS u(id, owner, n, status, next_at, last_error, rs, rb, rh, now)
), d AS (
	UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, next_attempt_at = u.next_at,
		lease_owner = '', last_error = u.last_error, response_status = u.rs, response_body = u.rb,
		response_headers = u.rh, updated_at = u.now
	FROM u
	WHERE d.id = ANY($1) AND d.id = u.id AND d.status = 'running' AND d.lease_owner = u.owner AND d.attempts + 1 = u.n
	RETURNING d.id
), a AS (
	INSERT INTO attempts (delivery_id, n, started_at, duration_ns, http_status, outcome, error)
	SELECT x.id, x.n, x.started, x.dur, x.hs, x.outcome, x.err
	FROM unnest($1::text[], $3::int[], $11::timestamptz[], $12::bigint[], $13::int[], $14::text[], $15::text[])
		AS x(id, n, started, dur, hs, outcome, err)
	WHERE x.id IN (SELECT id FROM d)
	ON CONFLICT DO NOTHING
)
SELECT id FROM d`

// siblingsSQL reads every delivery of the locked messages. It runs as its
// own statement after the lock, so (read committed) it sees every sibling
// completed before the lock was granted, and this batch's own updates.
const siblingsSQL = `SELECT ` + deliveryCols + ` FROM deliveries
	WHERE message_id = ANY(ARRAY(SELECT DISTINCT message_id FROM deliveries WHERE id = ANY($1)))
	ORDER BY message_id, created_at, step`

// applySQL writes what Resolve decided and the derived message statuses.
var applySQL = `WITH c AS (
	UPDATE deliveries d SET status = c.status, next_attempt_at = c.next_at, last_error = c.err, updated_at = c.now
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[]) AS c(id, status, next_at, err, now)
	WHERE d.id = c.id
	RETURNING ` + deliveryColsOf("d") + `
), m AS (
	UPDATE messages m SET status = x.status, updated_at = x.now
	FROM unnest($6::text[], $7::text[], $8::timestamptz[]) AS x(id, status, now)
	WHERE m.id = x.id
)
SELECT * FROM c`

// completeBatch runs ops in one transaction of two round trips: (BEGIN,
// lock, update, read) then (apply, COMMIT). It answers the ops
// only after the COMMIT; on error it answers none.
func (s *Store) completeBatch(ctx context.Context, ops []*completeOp) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed && !conn.Conn().IsClosed() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		conn.Release()
	}()

	n := len(ops)
	var (
		ids, owners, statuses, lastErrs, outcomes, attErrs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		nums, rs, hs                                       = make([]int32, n), make([]int32, n), make([]int32, n)
		nexts, nows, started                               = make([]pgtype.Timestamptz, n), make([]time.Time, n), make([]time.Time, n)
		bodies, headers                                    = make([][]byte, n), make([][]byte, n)
		durs                                               = make([]int64, n)
	)
	for i, op := range ops {
		p := &op.p
		ids[i], owners[i], nums[i], statuses[i] = p.DeliveryID, p.Owner, int32(p.Attempt.N), string(p.Status)
		nexts[i], lastErrs[i], rs[i], bodies[i], headers[i], nows[i] = ts(p.NextAttemptAt), p.LastError, int32(p.ResponseStatus), p.ResponseBody, op.headers, op.now
		started[i], durs[i], hs[i], outcomes[i], attErrs[i] = p.Attempt.StartedAt, int64(p.Attempt.Duration), int32(p.Attempt.HTTPStatus), string(p.Attempt.Outcome), p.Attempt.Error
	}

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockMessagesSQL, ids)
	b.Queue(completeSQL, ids, owners, nums, statuses, nexts, lastErrs, rs, bodies, headers, nows,
		started, durs, hs, outcomes, attErrs)
	b.Queue(siblingsSQL, ids)
	br := conn.SendBatch(ctx, b)
	updated := map[string]bool{}
	was := map[string]record.MessageStatus{} // locked messages' status
	var siblings []record.Delivery
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var id, st string
		if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error {
			was[id] = record.MessageStatus(st)
			return nil
		}); err != nil {
			return err
		}
		if rows, err = br.Query(); err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { updated[id] = true; return nil }); err != nil {
			return err
		}
		rows, err = br.Query()
		if err != nil {
			return err
		}
		siblings, err = collectDeliveries(rows)
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// Sort out each op, and resolve each message that had an update.
	byID := map[string]record.Delivery{}
	byMessage := map[string][]record.Delivery{}
	var messageOrder []string
	for _, d := range siblings {
		byID[d.ID] = d
		if _, ok := byMessage[d.MessageID]; !ok {
			messageOrder = append(messageOrder, d.MessageID)
		}
		byMessage[d.MessageID] = append(byMessage[d.MessageID], d)
	}
	results := make([]*store.DeliveryCompleteResult, n)
	errs := make([]error, n)
	msgNow := map[string]time.Time{}
	for i, op := range ops {
		d, ok := byID[op.p.DeliveryID]
		switch {
		case !ok:
			errs[i] = fmt.Errorf("complete delivery %s: %w", op.p.DeliveryID, store.ErrNotFound)
		case !updated[d.ID] && (d.Status != record.DeliveryRunning || d.LeaseOwner != op.p.Owner):
			errs[i] = fmt.Errorf("complete delivery %s: %w", d.ID, store.ErrLeaseLost)
		case !updated[d.ID]:
			errs[i] = fmt.Errorf("complete delivery %s: attempt %d, want %d", d.ID, op.p.Attempt.N, d.Attempts+1)
		default:
			results[i] = &store.DeliveryCompleteResult{MessageID: d.MessageID}
			if op.now.After(msgNow[d.MessageID]) {
				msgNow[d.MessageID] = op.now
			}
		}
	}
	var (
		cID, cStatus, cErr []string
		cNext              []pgtype.Timestamptz
		cNow               []time.Time
		mID, mStatus       []string
		mNow               []time.Time
		targets            []string
		seenTarget         = map[string]bool{}
	)
	status := map[string]record.MessageStatus{}
	for _, mid := range messageOrder {
		now, ok := msgNow[mid]
		if !ok {
			continue
		}
		ds := byMessage[mid]
		changes := record.Resolve(ds, now)
		for _, c := range changes {
			cID, cStatus, cErr = append(cID, c.DeliveryID), append(cStatus, string(c.Status)), append(cErr, clean(c.LastError))
			cNext, cNow = append(cNext, ts(micro(c.NextAttemptAt))), append(cNow, now)
		}
		applyChanges(ds, changes)
		st := record.DeriveMessageStatus(ds)
		status[mid] = st
		if st != was[mid] {
			mID, mStatus, mNow = append(mID, mid), append(mStatus, string(st)), append(mNow, now)
		}
		// Wake the targets of what just became due: resolved dependants,
		// and retries due at once.
		for _, d := range ds {
			due := d.Status == record.DeliveryScheduled && !d.NextAttemptAt.After(now)
			if due && !seenTarget[d.Target] && (updated[d.ID] || changedBy(changes, d.ID)) {
				seenTarget[d.Target] = true
				targets = append(targets, d.Target)
			}
		}
	}

	b = &pgx.Batch{}
	b.Queue(applySQL, cID, cStatus, cNext, cErr, cNow, mID, mStatus, mNow)
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	var ready []record.Delivery
	rows, err := br.Query()
	if err == nil {
		ready, err = collectDeliveries(rows)
	}
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = errors.New("transaction rolled back")
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	committed = true
	s.notes.add(targets)

	slices.SortFunc(ready, func(a, b record.Delivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Step, b.Step))
	})
	readyBy := map[string][]record.Delivery{}
	for _, d := range ready {
		if d.Status == record.DeliveryScheduled {
			readyBy[d.MessageID] = append(readyBy[d.MessageID], d)
		}
	}
	for i, op := range ops {
		if errs[i] != nil {
			op.finish(nil, errs[i])
			continue
		}
		r := results[i]
		r.MessageStatus = status[r.MessageID]
		// Several calls of one message in a batch: the first gets the
		// ready deliveries, so each is woken once.
		r.Ready = readyBy[r.MessageID]
		delete(readyBy, r.MessageID)
		op.finish(r, nil)
	}
	return nil
}

func changedBy(changes []record.Change, id string) bool {
	for _, c := range changes {
		if c.DeliveryID == id {
			return true
		}
	}
	return false
}

// applyChanges applies Resolve's changes to ds in place, so the message
// status is derived from the deliveries as they will be committed.
func applyChanges(ds []record.Delivery, changes []record.Change) {
	for _, c := range changes {
		for i := range ds {
			if ds[i].ID == c.DeliveryID {
				ds[i].Status = c.Status
				ds[i].NextAttemptAt = c.NextAttemptAt
				ds[i].LastError = c.LastError
			}
		}
	}
}
