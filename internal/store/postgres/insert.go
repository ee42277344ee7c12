package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// insertOp is one MessageInsert call waiting in a group commit.
type insertOp struct {
	msg  record.Message
	ds   []record.Delivery
	keep []byte // encoded headers
	qry  []byte // encoded query

	res   *store.MessageInsertResult
	err   error
	tries int
	done  chan struct{}
}

func (op *insertOp) finish(res *store.MessageInsertResult, err error) {
	op.res, op.err = res, err
	close(op.done)
}

// MessageInsert commits a message and its deliveries in a group commit with
// the other calls in flight, and returns after the COMMIT. See
// store.Store.MessageInsert.
func (s *Store) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	op, err := newInsertOp(p)
	if err != nil {
		return nil, err
	}
	if err := s.inserts.call(ctx, op, op.done); err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	return op.res, op.err
}

// newInsertOp checks p and prepares its rows, in the caller's goroutine.
func newInsertOp(p *store.MessageInsertParams) (*insertOp, error) {
	m, ds, err := store.PrepareInsert(p, micro(store.NowOr(p.Now)))
	if err != nil {
		return nil, err
	}
	for i := range ds {
		ds[i].NextAttemptAt, ds[i].ReplayedAt = micro(ds[i].NextAttemptAt), micro(ds[i].ReplayedAt)
	}
	op := &insertOp{msg: m, ds: ds, done: make(chan struct{})}
	if op.keep, err = encodeHeaders(m.Headers); err != nil {
		return nil, fmt.Errorf("insert message: headers: %w", err)
	}
	if op.qry, err = encodeHeaders(m.Query); err != nil {
		return nil, fmt.Errorf("insert message: query: %w", err)
	}
	return op, nil
}

// insertSQL inserts a batch of messages and the deliveries of the ones that
// were new. ON CONFLICT DO NOTHING makes a repeated idempotency key (from
// this batch, or from another replica's commit, which it waits for) skip
// quietly instead of failing the batch; the skipped messages' deliveries
// are left out by the join on m.
const insertSQL = `WITH m AS (
	INSERT INTO messages (id, route, status, idempotency_key, body_hash, body, headers, query, created_at, updated_at, traceparent, tracestate)
	SELECT x.id, x.route, 'accepted', x.key, x.hash, x.body, x.headers, x.query, x.at, x.at, x.tp, x.ts
	FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[], $8::timestamptz[], $23::text[], $24::text[])
		AS x(id, route, key, hash, body, headers, query, at, tp, ts)
	ON CONFLICT DO NOTHING
	RETURNING id
), d AS (
	INSERT INTO deliveries (id, message_id, route, step, target, after_steps, required, status,
		next_attempt_at, created_at, updated_at, replays, attempts_at_replay, replayed_at, compensate_unknown,
		lease_owner, lease_token)
	SELECT y.id, y.message_id, y.route, y.step, y.target, y.after::jsonb, y.required, y.status,
		y.next_at, y.at, y.at, y.replays, y.at_replay, y.replayed_at, y.comp_unknown, y.owner, y.token
	FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[], $16::text[],
		$17::timestamptz[], $18::timestamptz[], $19::int[], $20::int[], $21::timestamptz[], $22::bool[], $25::text[], $26::bigint[])
		AS y(id, message_id, route, step, target, after, required, status, next_at, at, replays, at_replay, replayed_at, comp_unknown, owner, token)
	WHERE y.message_id IN (SELECT id FROM m)
)
SELECT id FROM m`

// winnersSQL reads the messages that hold the given (route, key) pairs;
// the non-empty key term lets it use the partial unique index.
const winnersSQL = `SELECT ` + messageCols + ` FROM messages
	WHERE (route, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::bytea[])) AND idempotency_key <> ''`

const notifySQL = `SELECT pg_notify($1, t) FROM unnest($2::text[]) AS t`

// runInserts is one group commit: it runs a batch of MessageInsert calls
// as one pipelined implicit transaction (one round trip, one fsync), then
// answers each caller.
func (s *Store) runInserts(ctx context.Context, ops []*insertOp) {
	// One call per message id in a batch (the answer is by id); a repeat
	// goes in a batch of its own after this one, and finds the id taken.
	seen := make(map[string]bool, len(ops))
	var now, later []*insertOp
	for _, op := range ops {
		if seen[op.msg.ID] {
			later = append(later, op)
			continue
		}
		seen[op.msg.ID] = true
		now = append(now, op)
	}
	ops = now
	defer func() {
		for _, op := range later {
			s.runInserts(ctx, []*insertOp{op})
		}
	}()
	// One lock order for every batch: two batches inserting the same keys
	// in opposite orders would deadlock on the unique index.
	slices.SortStableFunc(ops, func(a, b *insertOp) int {
		return cmp.Or(cmp.Compare(a.msg.Route, b.msg.Route), cmp.Compare(a.msg.IdempotencyKey, b.msg.IdempotencyKey))
	})
	var err error
	for try := 0; ; try++ {
		err = s.insertBatch(ctx, ops)
		if err == nil || !retryable(err) || try == 3 {
			break
		}
	}
	switch {
	case err == nil:
		if s.cfg.OnBatch != nil {
			s.cfg.OnBatch(len(ops))
		}
	case unavailable(err) || len(ops) == 1:
		for _, op := range ops {
			op.finish(nil, wrap("insert message", err))
		}
	default:
		// One op's bad value must not fail the others: run each alone.
		for _, op := range ops {
			s.runInserts(ctx, []*insertOp{op})
		}
	}
}

// insertBatch commits ops and answers them; on error it answers none.
func (s *Store) insertBatch(ctx context.Context, ops []*insertOp) error {
	var (
		mID, mRoute, mHash                        []string
		mTraceParent, mTraceState                 []string
		mKey, mBody, mHeaders, mQuery             [][]byte
		mAt                                       []time.Time
		dID, dMsg, dRoute, dStep, dTarget, dAfter []string
		dStatus                                   []string
		dRequired, dCompUnknown                   []bool
		dNext, dAt, dReplayedAt                   []pgtype.Timestamptz
		dReplays, dAtReplay                       []int32
		dOwner                                    []string
		dToken                                    []int64
		targets                                   []string
		seenTarget                                = map[string]bool{}
	)
	for _, op := range ops {
		m := op.msg
		mID = append(mID, m.ID)
		mRoute = append(mRoute, m.Route)
		mKey = append(mKey, []byte(m.IdempotencyKey))
		mHash = append(mHash, m.BodyHash)
		mBody = append(mBody, m.Body)
		mHeaders = append(mHeaders, op.keep)
		mQuery = append(mQuery, op.qry)
		mAt = append(mAt, m.CreatedAt)
		mTraceParent = append(mTraceParent, m.TraceParent)
		mTraceState = append(mTraceState, m.TraceState)
		for _, d := range op.ds {
			dID = append(dID, d.ID)
			dMsg = append(dMsg, d.MessageID)
			dRoute = append(dRoute, d.Route)
			dStep = append(dStep, d.Step)
			dTarget = append(dTarget, d.Target)
			dAfter = append(dAfter, encodeAfter(d.After))
			dRequired = append(dRequired, d.Required)
			dStatus = append(dStatus, string(d.Status))
			dNext = append(dNext, ts(d.NextAttemptAt))
			dAt = append(dAt, ts(d.CreatedAt))
			dReplays = append(dReplays, int32(d.Replays))
			dAtReplay = append(dAtReplay, int32(d.AttemptsAtReplay))
			dReplayedAt = append(dReplayedAt, ts(d.ReplayedAt))
			dCompUnknown = append(dCompUnknown, !d.NoCompensateUnknown)
			dOwner, dToken = append(dOwner, d.LeaseOwner), append(dToken, d.LeaseToken)
			// A wake-up for a repeated key's deliveries, which are not
			// inserted, costs one spurious claim; checking would cost a
			// round trip.
			if d.Status == record.DeliveryScheduled && !d.NextAttemptAt.After(d.CreatedAt) && !seenTarget[d.Target] {
				seenTarget[d.Target] = true
				targets = append(targets, d.Target)
			}
		}
	}
	// Without BEGIN, a pipelined batch is one implicit transaction that
	// commits at its Sync: one round trip and one WAL flush for every op.
	b := &pgx.Batch{}
	b.Queue(insertSQL, mID, mRoute, mKey, mHash, mBody, mHeaders, mQuery, mAt,
		dID, dMsg, dRoute, dStep, dTarget, dAfter, dRequired, dStatus, dNext, dAt, dReplays, dAtReplay, dReplayedAt, dCompUnknown,
		mTraceParent, mTraceState, dOwner, dToken)
	br := s.pool.SendBatch(ctx, b)
	inserted := map[string]bool{}
	rows, err := br.Query()
	if err == nil {
		var id string
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			inserted[id] = true
			return nil
		})
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	s.notes.add(targets)
	s.analyze.inserted(len(dID))

	// Committed. Ops whose message was not inserted lost to an earlier
	// message with their key, now committed: read it.
	var lostRoute []string
	var lostKey [][]byte
	for _, op := range ops {
		if !inserted[op.msg.ID] && op.msg.IdempotencyKey != "" {
			lostRoute = append(lostRoute, op.msg.Route)
			lostKey = append(lostKey, []byte(op.msg.IdempotencyKey))
		}
	}
	winners := map[[2]string]record.Message{}
	if len(lostRoute) > 0 {
		rows, err := s.pool.Query(ctx, winnersSQL, lostRoute, lostKey)
		if err == nil {
			for rows.Next() {
				m, serr := scanMessage(rows)
				if serr != nil {
					err = serr
					break
				}
				winners[[2]string{m.Route, m.IdempotencyKey}] = m
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			// The batch is committed: answer the new ones, fail only the
			// repeats, whose callers may retry with the same key.
			for _, op := range ops {
				if inserted[op.msg.ID] {
					op.finish(&store.MessageInsertResult{Message: op.msg, Leased: store.Leased(op.msg, op.ds)}, nil)
				} else {
					op.finish(nil, wrap("insert message: read earlier message", err))
				}
			}
			return nil
		}
	}
	for _, op := range ops {
		switch {
		case inserted[op.msg.ID]:
			op.finish(&store.MessageInsertResult{Message: op.msg, Leased: store.Leased(op.msg, op.ds)}, nil)
		case op.msg.IdempotencyKey == "":
			op.finish(nil, fmt.Errorf("insert message %s: id already used", op.msg.ID))
		default:
			w, ok := winners[[2]string{op.msg.Route, op.msg.IdempotencyKey}]
			switch {
			case !ok && op.tries < 2:
				// The earlier message went away (purged) between our
				// insert and the read: try again.
				op.tries++
				s.runInserts(ctx, []*insertOp{op})
			case !ok:
				op.finish(nil, fmt.Errorf("insert message %s: message with the same idempotency key vanished", op.msg.ID))
			case w.BodyHash != op.msg.BodyHash:
				op.finish(&store.MessageInsertResult{Message: w, Existing: true}, store.ErrIdempotencyConflict)
			default:
				op.finish(&store.MessageInsertResult{Message: w, Existing: true}, nil)
			}
		}
	}
	return nil
}
