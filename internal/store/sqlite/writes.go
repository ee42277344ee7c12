package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Every method here encodes its rows in the caller's goroutine (JSON,
// times) and hands the writer only statement executions, so the one writer
// goroutine spends its time in SQLite.

// MessageInsert commits a message and its deliveries in the next group
// commit, or answers with the route's earlier message of the same
// idempotency key.
func (s *Store) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	now := store.NowOr(p.Now)
	m, ds, err := store.PrepareInsert(p, now)
	if err != nil {
		return nil, err
	}
	headers, err := encodeMap(m.Headers)
	if err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	query, err := encodeMap(m.Query)
	if err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	at := now.UnixNano()
	args := make([]any, 0, deliveryInsertArgs*len(ds))
	for _, d := range ds {
		after, err := encodeList(d.After)
		if err != nil {
			return nil, fmt.Errorf("insert message: %w", err)
		}
		args = append(args, d.ID, m.ID, m.Route, d.Step, d.Target, after, boolInt(d.Required), string(d.Status),
			nanos(d.NextAttemptAt), at, at, boolInt(!d.NoCompensateUnknown), d.LeaseOwner, d.LeaseToken)
	}

	due := 0
	for _, d := range ds {
		if d.Status == record.DeliveryScheduled && !d.NextAttemptAt.After(now) {
			due++
		}
	}
	var res store.MessageInsertResult
	err = s.submitInsert(ctx, due, func(t *wtx) error {
		if m.IdempotencyKey != "" {
			old, err := scanMessage(t.st.idemGet.QueryRowContext(t.ctx, m.Route, m.IdempotencyKey))
			switch {
			case err == nil:
				res = store.MessageInsertResult{Message: old, Existing: true}
				if old.BodyHash != m.BodyHash {
					return clean(store.ErrIdempotencyConflict)
				}
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return clean(fmt.Errorf("insert message: find idempotency key: %w", err))
			}
		}
		_, err := t.st.msgInsert.ExecContext(t.ctx, m.ID, m.Route, string(m.Status), m.IdempotencyKey, m.BodyHash,
			m.Body, headers, query, at, at, m.TraceParent, m.TraceState)
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		for rest := args; len(rest) > 0; {
			n := min(len(rest)/deliveryInsertArgs, maxInsertRows)
			st, err := t.deliveryInsert(n)
			if err != nil {
				return err
			}
			if _, err := st.ExecContext(t.ctx, rest[:n*deliveryInsertArgs]...); err != nil {
				return fmt.Errorf("insert deliveries: %w", err)
			}
			rest = rest[n*deliveryInsertArgs:]
		}
		res = store.MessageInsertResult{Message: m}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrIdempotencyConflict) && res.Existing {
			return &res, err
		}
		return nil, err
	}
	if !res.Existing {
		s.recent.put(res.Message)
		res.Leased = store.Leased(res.Message, ds)
	}
	return &res, nil
}

// DeliveryClaim leases the target's oldest due deliveries.
func (s *Store) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	now := store.NowOr(p.Now)
	// Idle workers poll often; asking a reader first keeps their empty
	// claims out of the writer's queue. A delivery that becomes due just
	// after this look is found by the next poll.
	var one int
	err := s.dueCheck.QueryRowContext(ctx, p.Target, now.UnixNano()).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("claim deliveries: %w: %w", store.ErrUnavailable, err)
	}

	var out []record.Delivery
	err = s.submit(ctx, func(t *wtx) error {
		var err error
		out, err = t.claim(p, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.attachMessages(ctx, out); err != nil {
		// The claim stands; the worker reads the message itself.
		s.log.Warn("claim deliveries: read their messages", "err", err)
	}
	return out, nil
}

// claim leases up to p.Limit of p.Target's due deliveries at now, inside
// the batch transaction: DeliveryClaim's op, and ClaimNext's inside a
// complete. A failed read is clean; a failed write is not.
func (t *wtx) claim(p *store.DeliveryClaimParams, now time.Time) ([]record.Delivery, error) {
	until, at := nanos(now.Add(p.LeaseFor)), now.UnixNano()
	if p.Limit == 1 {
		// One row has no order to keep: the update alone (a chained claim,
		// one per result, takes this way).
		return t.claimOne(p, until, at)
	}
	rows, err := t.st.claimSelect.QueryContext(t.ctx, p.Target, at, p.Limit)
	if err != nil {
		return nil, clean(fmt.Errorf("claim deliveries: %w", err))
	}
	order := map[int64]int{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, clean(fmt.Errorf("claim deliveries: %w", err))
		}
		order[id] = len(order)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, clean(fmt.Errorf("claim deliveries: %w", err))
	}
	if len(order) == 0 {
		return nil, nil
	}
	out := make([]record.Delivery, len(order))
	rows, err = t.st.claimUpdate.QueryContext(t.ctx, p.Owner, until, at, p.Target, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var rowid int64
		d, err := scanDelivery(rowidScanner{rows, &rowid})
		if err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		i, ok := order[rowid]
		if !ok {
			return nil, fmt.Errorf("claim deliveries: delivery %s was not selected", d.ID)
		}
		out[i] = d
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	if n != len(order) {
		return nil, fmt.Errorf("claim deliveries: leased %d of %d", n, len(order))
	}
	return out, nil
}

// claimOne leases the target's oldest due delivery, if any.
func (t *wtx) claimOne(p *store.DeliveryClaimParams, until, at int64) ([]record.Delivery, error) {
	rows, err := t.st.claimUpdate.QueryContext(t.ctx, p.Owner, until, at, p.Target, 1)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	var out []record.Delivery
	for rows.Next() {
		var rowid int64
		d, err := scanDelivery(rowidScanner{rows, &rowid})
		if err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}

// attachMessages fills each claimed delivery's Message from the read pool,
// so a worker need not read the message again. Messages never change after
// insert but for their status, and the claim has committed, so a reader
// sees them.
func (s *Store) attachMessages(ctx context.Context, ds []record.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	missing := s.recent.attach(ds)
	if len(missing) == 0 {
		return nil
	}
	list, err := json.Marshal(missing)
	if err != nil {
		return err
	}
	rows, err := s.claimedMessages.QueryContext(ctx, string(list))
	if err != nil {
		return err
	}
	ms, err := collect(rows, scanMessage)
	if err != nil {
		return err
	}
	byID := make(map[string]*record.Message, len(ms))
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	for i := range ds {
		if ds[i].Message == nil {
			ds[i].Message = byID[ds[i].MessageID]
		}
	}
	return nil
}

// DeliveryComplete records an attempt and its result, then resolves the
// message, all in one transaction: record.Family decides, this writes.
func (s *Store) DeliveryComplete(ctx context.Context, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	now := store.NowOr(p.Now)
	c := p.Completion()
	c.Attempt.StartedAt = c.Attempt.StartedAt.UTC()
	respHeaders, err := encodeMap(p.ResponseHeaders)
	if err != nil {
		return nil, fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
	}
	var res store.DeliveryCompleteResult
	err = s.submit(ctx, func(t *wtx) error {
		f, err := t.loadFamily(p.DeliveryID, now)
		if err != nil {
			return clean(fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err))
		}
		if err := f.Complete(c); err != nil {
			return clean(err)
		}
		w := f.Writes()
		if err := t.persist(f, w, now, map[string]any{c.DeliveryID: respHeaders}); err != nil {
			return fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
		}
		res = store.DeliveryCompleteResult{MessageID: w.MessageID, MessageStatus: w.Status}
		for _, d := range w.Ready {
			full, err := scanDelivery(t.st.deliveryGet.QueryRowContext(t.ctx, d.ID))
			if err != nil {
				return fmt.Errorf("complete delivery %s: load delivery %s: %w", p.DeliveryID, d.ID, err)
			}
			res.Ready = append(res.Ready, full)
		}
		if p.ClaimNext != nil && p.ClaimNext.Limit > 0 {
			// The slot this attempt held goes on to the next due delivery:
			// its lease commits with this result, before any request.
			if res.Claimed, err = t.claim(p.ClaimNext, now); err != nil {
				var ce cleanError
				if errors.As(err, &ce) {
					err = ce.err // the complete wrote: nothing is clean now
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.attachMessages(ctx, res.Claimed); err != nil {
		// The claim stands; the worker reads the message itself.
		s.log.Warn("claim deliveries: read their messages", "err", err)
	}
	return &res, nil
}

// DeliveryPostpone gives a leased delivery back without counting an attempt.
func (s *Store) DeliveryPostpone(ctx context.Context, p *store.DeliveryPostponeParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	now := store.NowOr(p.Now)
	next := nanos(p.NextAttemptAt)
	if next == 0 {
		next = now.UnixNano()
	}
	return s.submit(ctx, func(t *wtx) error {
		r, err := t.st.postpone.ExecContext(t.ctx, next, p.Reason, now.UnixNano(), p.DeliveryID, p.Owner, p.LeaseToken)
		if err != nil {
			return fmt.Errorf("postpone delivery %s: %w", p.DeliveryID, err)
		}
		if n, err := r.RowsAffected(); err == nil && n == 1 {
			return nil
		}
		return clean(t.leaseError("postpone", p.DeliveryID))
	})
}

// leaseError tells a lost lease from a delivery that does not exist.
func (t *wtx) leaseError(verb, id string) error {
	var one int
	err := t.st.deliveryExists.QueryRowContext(t.ctx, id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s delivery %s: %w", verb, id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s delivery %s: %w", verb, id, err)
	}
	return fmt.Errorf("%s delivery %s: %w", verb, id, store.ErrLeaseLost)
}

// DeliveryReplay sends dead deliveries back to work with a fresh budget.
func (s *Store) DeliveryReplay(ctx context.Context, p *store.DeliveryReplayParams) (*store.DeliveryReplayResult, error) {
	now := store.NowOr(p.Now)
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var out store.DeliveryReplayResult
	err := s.submit(ctx, func(t *wtx) error {
		out = store.DeliveryReplayResult{}
		ids := dedupe(p.IDs)
		if len(ids) == 0 {
			var err error
			if ids, err = t.selectIDs(t.st.replaySelect, p.Route, p.Target, limit); err != nil {
				return clean(fmt.Errorf("replay: %w", err))
			}
		}
		return t.eachFamily(ids, now, func(f *family, mine []string) error {
			f.Replay(mine)
			w := f.Writes()
			if err := t.persist(f, w, now, nil); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			for _, d := range w.Replayed {
				full, err := scanDelivery(t.st.deliveryGet.QueryRowContext(t.ctx, d.ID))
				if err != nil {
					return fmt.Errorf("replay: load delivery %s: %w", d.ID, err)
				}
				out.Replayed = append(out.Replayed, full)
			}
			out.Refused = append(out.Refused, w.Refused...)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortAs(out.Replayed, p.IDs)
	return &out, nil
}

// DeliveryDiscard dead-letters the open deliveries of a target nothing
// will claim.
func (s *Store) DeliveryDiscard(ctx context.Context, p *store.DeliveryDiscardParams) (int, error) {
	now := store.NowOr(p.Now)
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	n := 0
	err := s.submit(ctx, func(t *wtx) error {
		n = 0
		ids, err := t.selectIDs(t.st.discardSelect, p.Target, now.UnixNano(), limit)
		if err != nil {
			return clean(fmt.Errorf("discard: %w", err))
		}
		return t.eachFamily(ids, now, func(f *family, mine []string) error {
			f.Discard(mine, p.Reason)
			w := f.Writes()
			for _, c := range w.Changes {
				if slices.Contains(mine, c.DeliveryID) && c.Status == record.DeliveryDead {
					n++
				}
			}
			if err := t.persist(f, w, now, nil); err != nil {
				return fmt.Errorf("discard: %w", err)
			}
			return nil
		})
	})
	return n, err
}

// eachFamily loads the family of each delivery in ids once (deliveries of
// one message share it) and calls fn with it and the ids it holds, in the
// order of ids. Unknown ids are skipped.
func (t *wtx) eachFamily(ids []string, now time.Time, fn func(f *family, mine []string) error) error {
	done := map[string]bool{}
	for i, id := range ids {
		if done[id] {
			continue
		}
		f, err := t.loadFamily(id, now)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var mine []string
		for _, other := range ids[i:] {
			if !done[other] && f.Has(other) {
				done[other] = true
				mine = append(mine, other)
			}
		}
		if err := fn(f, mine); err != nil {
			return err
		}
	}
	return nil
}

// selectIDs runs a statement that selects delivery ids.
func (t *wtx) selectIDs(st *sql.Stmt, args ...any) ([]string, error) {
	rows, err := st.QueryContext(t.ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("select: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return ids, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// sortAs orders ds as the ids in order (when given); ds not named keep
// their place after them.
func sortAs(ds []record.Delivery, order []string) {
	if len(order) == 0 {
		return
	}
	pos := make(map[string]int, len(order))
	for i, id := range order {
		if _, ok := pos[id]; !ok {
			pos[id] = i
		}
	}
	slices.SortStableFunc(ds, func(a, b record.Delivery) int { return pos[a.ID] - pos[b.ID] })
}

// persist writes what the write core decided for one message, in the
// order record.Writes gives. headers holds the encoded response headers
// of the completed deliveries.
func (t *wtx) persist(f *family, w *record.Writes, now time.Time, headers map[string]any) error {
	at := now.UnixNano()
	for _, c := range w.Completed {
		a := &c.Attempt
		if _, err := t.st.attemptInsert.ExecContext(t.ctx, c.DeliveryID, a.N, nanos(a.StartedAt), int64(a.Duration),
			a.HTTPStatus, string(a.Outcome), a.Error); err != nil {
			return fmt.Errorf("insert attempt: %w", err)
		}
		next := nanos(c.NextAttemptAt)
		if c.Status == record.DeliveryScheduled && next == 0 {
			next = at
		}
		if c.Status != record.DeliveryScheduled {
			next = 0
		}
		if _, err := t.st.completeUpdate.ExecContext(t.ctx, string(c.Status), next, c.LastError, c.ResponseStatus,
			c.ResponseBody, headers[c.DeliveryID], boolInt(c.Unknown), at, f.rowid(c.DeliveryID)); err != nil {
			return fmt.Errorf("update delivery %s: %w", c.DeliveryID, err)
		}
	}
	for _, d := range w.Replayed {
		if _, err := t.st.replayWrite.ExecContext(t.ctx, at, d.AttemptsAtReplay, d.Replays, f.rowid(d.ID)); err != nil {
			return fmt.Errorf("replay delivery %s: %w", d.ID, err)
		}
	}
	for _, c := range w.Changes {
		if _, err := t.st.changeUpdate.ExecContext(t.ctx, string(c.Status), nanos(c.NextAttemptAt), c.LastError, at, f.rowid(c.DeliveryID), boolInt(c.Unknown)); err != nil {
			return fmt.Errorf("update delivery %s: %w", c.DeliveryID, err)
		}
	}
	if w.StatusChanged {
		if _, err := t.st.msgStatus.ExecContext(t.ctx, string(w.Status), at, w.MessageID); err != nil {
			return fmt.Errorf("update message %s: %w", w.MessageID, err)
		}
	}
	return nil
}

// family is the write core's Family of one message, with the rowids of
// its deliveries.
type family struct {
	*record.Family
	rowids map[string]int64
}

func (f *family) rowid(id string) int64 { return f.rowids[id] }

// loadFamily loads the family of the delivery id; store.ErrNotFound when
// there is no such delivery.
func (t *wtx) loadFamily(id string, now time.Time) (*family, error) {
	rows, err := t.st.family.QueryContext(t.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	defer rows.Close()
	f := &family{rowids: map[string]int64{}}
	var (
		ds        []record.Delivery
		msgID     string
		msgStatus record.MessageStatus
	)
	for rows.Next() {
		var (
			d                             record.Delivery
			rowid, next                   int64
			after                         sql.NullString
			required, unknown, compUnkown int
		)
		if err := rows.Scan(&rowid, &d.ID, &d.Step, &d.Target, &after, &required, &d.Status, &d.Attempts, &next,
			&d.LeaseOwner, &d.LeaseToken, &d.LastError, &unknown, &compUnkown, &d.AttemptsAtReplay, &d.Replays,
			&msgID, &msgStatus); err != nil {
			return nil, fmt.Errorf("load deliveries: %w", err)
		}
		if d.After, err = decodeList(after); err != nil {
			return nil, err
		}
		d.MessageID = msgID
		d.NextAttemptAt = fromNanos(next)
		d.Required, d.OutcomeUnknown, d.NoCompensateUnknown = required != 0, unknown != 0, compUnkown == 0
		ds = append(ds, d)
		f.rowids[d.ID] = rowid
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	if _, ok := f.rowids[id]; !ok {
		return nil, store.ErrNotFound
	}
	f.Family = record.NewFamily(msgID, msgStatus, ds, now)
	return f, nil
}

// rowidScanner scans a leading rowid column, then hands the rest to the
// wrapped scan.
type rowidScanner struct {
	rows  *sql.Rows
	rowid *int64
}

func (r rowidScanner) Scan(dest ...any) error {
	return r.rows.Scan(append([]any{r.rowid}, dest...)...)
}
