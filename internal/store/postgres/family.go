package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// The drivers' half of the write core (record.Family): lock the messages,
// read their deliveries, let the Family decide, write what it returns.

// lockMessagesSQL locks the messages of the given deliveries, in id order,
// so that two replicas writing sibling deliveries serialise (each must see
// the other's result to resolve the steps that wait on both) and never
// deadlock. The ids are gathered into an array first (an InitPlan), so the
// lookup is an index scan on the primary key whatever the planner thinks
// of the table's size; the same goes for familySQL.
const lockMessagesSQL = `SELECT m.id, m.status FROM messages m
	WHERE m.id = ANY(ARRAY(SELECT message_id FROM deliveries WHERE id = ANY($1)))
	ORDER BY m.id FOR UPDATE`

// familySQL reads, and locks, every delivery of the locked messages. It
// runs as its own statement after the lock, so (read committed) it sees
// every write committed before the lock was granted. The row locks keep
// claims (which skip locked rows) and postpones (which wait) off the rows
// between this read and the write that follows, so what the Family
// decided from this read is still true when it is written.
const familySQL = `SELECT ` + deliveryCols + ` FROM deliveries
	WHERE message_id = ANY(ARRAY(SELECT DISTINCT message_id FROM deliveries WHERE id = ANY($1)))
	ORDER BY message_id, created_at, step FOR UPDATE`

// queueFamilies queues the lock and the read of the families of ids.
func queueFamilies(b *pgx.Batch, ids []string) {
	b.Queue(lockMessagesSQL, ids)
	b.Queue(familySQL, ids)
}

// readFamilies reads the results of queueFamilies into one Family per
// message, in message id order.
func readFamilies(br pgx.BatchResults, now time.Time) ([]*record.Family, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	was := map[string]record.MessageStatus{}
	var order []string
	var id, st string
	if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		was[id] = record.MessageStatus(st)
		order = append(order, id)
		return nil
	}); err != nil {
		return nil, err
	}
	rows, err = br.Query()
	if err != nil {
		return nil, err
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, err
	}
	by := map[string][]record.Delivery{}
	for _, d := range ds {
		by[d.MessageID] = append(by[d.MessageID], d)
	}
	out := make([]*record.Family, 0, len(order))
	for _, mid := range order {
		out = append(out, record.NewFamily(mid, was[mid], by[mid], now))
	}
	return out, nil
}

// familyOf returns the family that holds delivery id, or nil.
func familyOf(fs []*record.Family, id string) *record.Family {
	for _, f := range fs {
		if f.Has(id) {
			return f
		}
	}
	return nil
}

// persistSQL are the statements that write a batch of record.Writes, in
// the order record.Writes requires: attempts and completed deliveries,
// replayed ones, then the changes (which win), then message statuses.
const (
	attemptsSQL = `INSERT INTO attempts (delivery_id, n, started_at, duration_ns, http_status, outcome, error)
	SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::bigint[], $5::int[], $6::text[], $7::text[])
	ON CONFLICT DO NOTHING`
	completedSQL = `UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, next_attempt_at = u.next_at,
		lease_owner = '', last_error = u.last_error, response_status = u.rs, response_body = u.rb,
		response_headers = u.rh, outcome_unknown = u.unknown, updated_at = $10
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::bytea[], $7::bytea[], $8::bool[], $9::bigint[])
		AS u(id, status, next_at, last_error, rs, rb, rh, unknown, token)
	WHERE d.id = u.id AND d.status = 'running' AND d.lease_token = u.token`
	replayedSQL = `UPDATE deliveries d SET status = 'scheduled', next_attempt_at = $4, lease_owner = '',
		replays = c.replays, attempts_at_replay = c.at_replay, replayed_at = $4, updated_at = $4
	FROM unnest($1::text[], $2::int[], $3::int[]) AS c(id, replays, at_replay)
	WHERE d.id = c.id`
	changesSQL = `UPDATE deliveries d SET status = c.status, next_attempt_at = c.next_at, last_error = c.err,
		lease_owner = '', updated_at = $5, outcome_unknown = d.outcome_unknown OR c.unknown
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $6::bool[]) AS c(id, status, next_at, err, unknown)
	WHERE d.id = c.id`
	messagesSQL = `UPDATE messages m SET status = x.status, updated_at = $3
	FROM unnest($1::text[], $2::text[]) AS x(id, status) WHERE m.id = x.id`
)

// queueWrites queues the writes of ws (one per message of fs) at now. It
// returns the targets that have work due now (resolved dependants,
// replays, retries due at once), to wake after the commit.
func queueWrites(b *pgx.Batch, ws []*record.Writes, fs []*record.Family, now time.Time) (targets []string, err error) {
	var (
		aID, aOutcome, aErr []string
		aN, aHS             []int32
		aStart              []time.Time
		aDur                []int64
		uID, uStatus, uErr  []string
		uNext               []pgtype.Timestamptz
		uRS                 []int32
		uRB, uRH            [][]byte
		uUnknown            []bool
		uToken              []int64
		rID                 []string
		rReplays, rAtReplay []int32
		cID, cStatus, cErr  []string
		cNext               []pgtype.Timestamptz
		cUnknown            []bool
		mID, mStatus        []string
		seen                = map[string]bool{}
	)
	wake := func(target string) {
		if !seen[target] {
			seen[target] = true
			targets = append(targets, target)
		}
	}
	for _, w := range ws {
		for _, c := range w.Completed {
			a := c.Attempt
			started := micro(a.StartedAt)
			if started.IsZero() {
				started = now
			}
			aID, aN, aStart, aDur = append(aID, c.DeliveryID), append(aN, int32(a.N)), append(aStart, started), append(aDur, int64(a.Duration))
			aHS, aOutcome, aErr = append(aHS, int32(a.HTTPStatus)), append(aOutcome, string(a.Outcome)), append(aErr, clean(a.Error))
			h, err := encodeHeaders(c.ResponseHeaders)
			if err != nil {
				return nil, fmt.Errorf("complete delivery %s: response headers: %w", c.DeliveryID, err)
			}
			next := micro(c.NextAttemptAt)
			if c.Status == record.DeliveryScheduled && next.IsZero() {
				next = now
			}
			uID, uStatus, uNext, uErr = append(uID, c.DeliveryID), append(uStatus, string(c.Status)), append(uNext, ts(next)), append(uErr, clean(c.LastError))
			uRS, uRB, uRH = append(uRS, int32(c.ResponseStatus)), append(uRB, c.ResponseBody), append(uRH, h)
			uUnknown, uToken = append(uUnknown, c.Unknown), append(uToken, c.LeaseToken)
			if c.Status == record.DeliveryScheduled && !next.After(now) {
				if f := familyOf(fs, c.DeliveryID); f != nil {
					for _, d := range f.Deliveries() {
						if d.ID == c.DeliveryID {
							wake(d.Target)
						}
					}
				}
			}
		}
		for _, d := range w.Replayed {
			rID, rReplays, rAtReplay = append(rID, d.ID), append(rReplays, int32(d.Replays)), append(rAtReplay, int32(d.AttemptsAtReplay))
			wake(d.Target)
		}
		for _, c := range w.Changes {
			cID, cStatus, cNext, cErr = append(cID, c.DeliveryID), append(cStatus, string(c.Status)), append(cNext, ts(micro(c.NextAttemptAt))), append(cErr, clean(c.LastError))
			cUnknown = append(cUnknown, c.Unknown)
		}
		for _, d := range w.Ready {
			wake(d.Target)
		}
		if w.StatusChanged {
			mID, mStatus = append(mID, w.MessageID), append(mStatus, string(w.Status))
		}
	}
	if len(aID) > 0 {
		b.Queue(attemptsSQL, aID, aN, aStart, aDur, aHS, aOutcome, aErr)
		b.Queue(completedSQL, uID, uStatus, uNext, uErr, uRS, uRB, uRH, uUnknown, uToken, now)
	}
	if len(rID) > 0 {
		b.Queue(replayedSQL, rID, rReplays, rAtReplay, now)
	}
	if len(cID) > 0 {
		b.Queue(changesSQL, cID, cStatus, cNext, cErr, now, cUnknown)
	}
	if len(mID) > 0 {
		b.Queue(messagesSQL, mID, mStatus, now)
	}
	return targets, nil
}

// execAll reads the results of n queued statements that return no rows.
func execAll(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// familyTx runs fn on the families of ids in one transaction: lock, read,
// decide (fn returns the writes), write, commit. It returns the targets to
// wake. Used by replay and discard; DeliveryComplete has its own batch.
func (s *Store) familyTx(ctx context.Context, ids []string, now time.Time, fn func(fs []*record.Family) []*record.Writes) ([]string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	queueFamilies(b, ids)
	br := tx.SendBatch(ctx, b)
	fs, err := readFamilies(br, now)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	ws := fn(fs)
	b = &pgx.Batch{}
	targets, err := queueWrites(b, ws, fs, now)
	if err != nil {
		return nil, err
	}
	if b.Len() > 0 {
		br = tx.SendBatch(ctx, b)
		err = execAll(br, b.Len())
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return targets, nil
}

// DeliveryDiscard dead-letters the open deliveries of a target that is no
// longer configured. See store.Store.DeliveryDiscard.
func (s *Store) DeliveryDiscard(ctx context.Context, p *store.DeliveryDiscardParams) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	now := micro(store.NowOr(p.Now))
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var ids []string
	rows, err := s.pool.Query(ctx, `SELECT id FROM deliveries
		WHERE target = $1 AND (status IN ('waiting', 'scheduled') OR status = 'running' AND next_attempt_at <= $2)
		ORDER BY created_at, id LIMIT $3`, p.Target, now, limit)
	if err != nil {
		return 0, wrap("discard deliveries", err)
	}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { ids = append(ids, id); return nil }); err != nil {
		return 0, wrap("discard deliveries", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n := 0
	for try := 0; ; try++ {
		n = 0
		_, err = s.familyTx(ctx, ids, now, func(fs []*record.Family) []*record.Writes {
			var ws []*record.Writes
			for _, f := range fs {
				var mine []string
				for _, id := range ids {
					if f.Has(id) {
						mine = append(mine, id)
					}
				}
				f.Discard(mine, p.Reason)
				w := f.Writes()
				for _, c := range w.Changes {
					for _, id := range mine {
						if c.DeliveryID == id && c.Status == record.DeliveryDead {
							n++
						}
					}
				}
				ws = append(ws, w)
			}
			return ws
		})
		if err == nil || !retryable(err) || try == 3 {
			break
		}
	}
	if err != nil {
		return 0, wrap("discard deliveries", err)
	}
	return n, nil
}
