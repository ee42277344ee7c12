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
	m := p.Message
	if m.ID == "" || m.Route == "" {
		return nil, errors.New("insert message: id and route are required")
	}
	m.Status, m.CreatedAt, m.UpdatedAt = record.MessageAccepted, now, now
	headers, err := encodeMap(m.Headers)
	if err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	query, err := encodeMap(m.Query)
	if err != nil {
		return nil, fmt.Errorf("insert message: %w", err)
	}
	at := now.UnixNano()
	args := make([]any, 0, deliveryInsertArgs*len(p.Deliveries))
	for i := range p.Deliveries {
		d := &p.Deliveries[i]
		d.MessageID, d.Route, d.CreatedAt, d.UpdatedAt = m.ID, m.Route, now, now
		if d.Status == "" {
			d.Status = record.DeliveryScheduled
			if len(d.After) > 0 {
				d.Status = record.DeliveryWaiting
			}
		}
		if d.Status == record.DeliveryScheduled && d.NextAttemptAt.IsZero() {
			d.NextAttemptAt = now
		}
		after, err := encodeList(d.After)
		if err != nil {
			return nil, fmt.Errorf("insert message: %w", err)
		}
		args = append(args, d.ID, m.ID, m.Route, d.Step, d.Target, after, boolInt(d.Required), string(d.Status),
			nanos(d.NextAttemptAt), at, at)
	}

	var res store.MessageInsertResult
	err = s.submit(ctx, func(t *wtx) error {
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
			m.Body, headers, query, at, at)
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

	until, at := nanos(now.Add(p.LeaseFor)), now.UnixNano()
	var out []record.Delivery
	err = s.submit(ctx, func(t *wtx) error {
		out = out[:0]
		rows, err := t.st.claimSelect.QueryContext(t.ctx, p.Target, at, p.Limit)
		if err != nil {
			return clean(fmt.Errorf("claim deliveries: %w", err))
		}
		order := map[int64]int{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return clean(fmt.Errorf("claim deliveries: %w", err))
			}
			order[id] = len(order)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return clean(fmt.Errorf("claim deliveries: %w", err))
		}
		if len(order) == 0 {
			return nil
		}
		out = make([]record.Delivery, len(order))
		rows, err = t.st.claimUpdate.QueryContext(t.ctx, p.Owner, until, at, p.Target, p.Limit)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var rowid int64
			d, err := scanDelivery(rowidScanner{rows, &rowid})
			if err != nil {
				return fmt.Errorf("claim deliveries: %w", err)
			}
			i, ok := order[rowid]
			if !ok {
				return fmt.Errorf("claim deliveries: delivery %s was not selected", d.ID)
			}
			out[i] = d
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		if n != len(order) {
			return fmt.Errorf("claim deliveries: leased %d of %d", n, len(order))
		}
		return nil
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

// attachMessages fills each claimed delivery's Message from the read pool,
// so a worker need not read the message again. Messages never change after
// insert but for their status, and the claim has committed, so a reader
// sees them.
func (s *Store) attachMessages(ctx context.Context, ds []record.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]string, 0, len(ds))
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		if !seen[d.MessageID] {
			seen[d.MessageID] = true
			ids = append(ids, d.MessageID)
		}
	}
	list, err := json.Marshal(ids)
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
		ds[i].Message = byID[ds[i].MessageID]
	}
	return nil
}

// DeliveryComplete records an attempt and its result, then resolves the
// message's waiting deliveries and its status, all in one transaction.
func (s *Store) DeliveryComplete(ctx context.Context, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	now := store.NowOr(p.Now)
	var next int64
	switch p.Status {
	case record.DeliveryScheduled:
		next = nanos(p.NextAttemptAt)
		if next == 0 {
			next = now.UnixNano()
		}
	case record.DeliverySucceeded, record.DeliveryDead:
	default:
		return nil, fmt.Errorf("complete delivery %s: status %q is not succeeded, scheduled or dead", p.DeliveryID, p.Status)
	}
	respHeaders, err := encodeMap(p.ResponseHeaders)
	if err != nil {
		return nil, fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
	}
	a := &p.Attempt

	var res store.DeliveryCompleteResult
	err = s.submit(ctx, func(t *wtx) error {
		f, err := t.loadFamily(p.DeliveryID)
		if err != nil {
			return clean(fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err))
		}
		i := f.index(p.DeliveryID)
		d := &f.ds[i]
		switch {
		case d.Status != record.DeliveryRunning || d.LeaseOwner != p.Owner:
			return clean(fmt.Errorf("complete delivery %s: %w", p.DeliveryID, store.ErrLeaseLost))
		case a.N != d.Attempts+1:
			return clean(fmt.Errorf("complete delivery %s: attempt %d given, %d due", p.DeliveryID, a.N, d.Attempts+1))
		}
		if _, err := t.st.attemptInsert.ExecContext(t.ctx, p.DeliveryID, a.N, nanos(a.StartedAt), int64(a.Duration),
			a.HTTPStatus, string(a.Outcome), a.Error); err != nil {
			return fmt.Errorf("complete delivery %s: insert attempt: %w", p.DeliveryID, err)
		}
		if _, err := t.st.completeUpdate.ExecContext(t.ctx, string(p.Status), next, p.LastError, p.ResponseStatus,
			p.ResponseBody, respHeaders, now.UnixNano(), f.rowids[i]); err != nil {
			return fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
		}
		d.Status, d.Attempts, d.LeaseOwner = p.Status, d.Attempts+1, ""
		st, ready, err := t.settle(f, now, nil)
		if err != nil {
			return fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
		}
		msgID := f.msgID
		res = store.DeliveryCompleteResult{MessageID: msgID, MessageStatus: st, Ready: ready}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// DeliveryPostpone gives a leased delivery back without counting an attempt.
func (s *Store) DeliveryPostpone(ctx context.Context, p *store.DeliveryPostponeParams) error {
	now := store.NowOr(p.Now)
	next := nanos(p.NextAttemptAt)
	if next == 0 {
		next = now.UnixNano()
	}
	return s.submit(ctx, func(t *wtx) error {
		r, err := t.st.postpone.ExecContext(t.ctx, next, p.Reason, now.UnixNano(), p.DeliveryID, p.Owner)
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
func (s *Store) DeliveryReplay(ctx context.Context, p *store.DeliveryReplayParams) ([]record.Delivery, error) {
	now := store.NowOr(p.Now)
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var out []record.Delivery
	err := s.submit(ctx, func(t *wtx) error {
		out = out[:0]
		ids := dedupe(p.IDs)
		if len(ids) == 0 {
			var err error
			if ids, err = t.replayCandidates(p.Route, p.Target, limit); err != nil {
				return clean(err)
			}
		}
		var order []string             // one replayed delivery id per message
		steps := map[string][]string{} // message id → replayed steps
		for _, id := range ids {
			d, err := scanDelivery(t.st.replayUpdate.QueryRowContext(t.ctx, now.UnixNano(), id))
			if errors.Is(err, sql.ErrNoRows) {
				continue // unknown, or not dead: left alone
			}
			if err != nil {
				return fmt.Errorf("replay delivery %s: %w", id, err)
			}
			out = append(out, d)
			if steps[d.MessageID] == nil {
				order = append(order, d.ID)
			}
			steps[d.MessageID] = append(steps[d.MessageID], d.Step)
		}
		for _, id := range order {
			f, err := t.loadFamily(id)
			if err != nil {
				return fmt.Errorf("replay delivery %s: %w", id, err)
			}
			if _, _, err := t.settle(f, now, steps[f.msgID]); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *wtx) replayCandidates(route, target string, limit int) ([]string, error) {
	rows, err := t.st.replaySelect.QueryContext(t.ctx, route, target, limit)
	if err != nil {
		return nil, fmt.Errorf("replay: select: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("replay: select: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replay: select: %w", err)
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

// settle brings a message up to date after one of its deliveries changed:
// the dependants of unskip go back to waiting (a replay), record.Resolve
// schedules or skips waiting deliveries, and record.DeriveMessageStatus
// gives the message status, written when it changed. It returns that
// status and the deliveries Resolve made scheduled.
func (t *wtx) settle(f *family, now time.Time, unskip []string) (record.MessageStatus, []record.Delivery, error) {
	ds := f.ds
	was := make(map[string]record.DeliveryStatus, len(ds))
	for _, d := range ds {
		was[d.ID] = d.Status
	}
	var changes []record.Change
	for _, step := range unskip {
		cs := record.Unskip(ds, step)
		applyChanges(ds, cs)
		changes = append(changes, cs...)
	}
	cs := record.Resolve(ds, now)
	applyChanges(ds, cs)
	changes = append(changes, cs...)

	var ready []record.Delivery
	at := now.UnixNano()
	written := map[string]bool{}
	// Walk backwards so each delivery is written once, with its last change.
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if written[c.DeliveryID] {
			continue
		}
		written[c.DeliveryID] = true
		if was[c.DeliveryID] == c.Status {
			continue // unskipped, then skipped again: nothing changed
		}
		if _, err := t.st.changeUpdate.ExecContext(t.ctx, string(c.Status), nanos(c.NextAttemptAt), c.LastError, at, c.DeliveryID); err != nil {
			return "", nil, fmt.Errorf("update delivery %s: %w", c.DeliveryID, err)
		}
		if c.Status == record.DeliveryScheduled {
			d, err := scanDelivery(t.st.deliveryGet.QueryRowContext(t.ctx, c.DeliveryID))
			if err != nil {
				return "", nil, fmt.Errorf("load delivery %s: %w", c.DeliveryID, err)
			}
			ready = append(ready, d)
		}
	}
	slices.Reverse(ready)
	status := record.DeriveMessageStatus(ds)
	if status != f.msgStatus {
		if _, err := t.st.msgStatus.ExecContext(t.ctx, string(status), at, f.msgID); err != nil {
			return "", nil, fmt.Errorf("update message %s: %w", f.msgID, err)
		}
	}
	return status, ready, nil
}

// family is a message's deliveries as the writer sees them: what the lease
// check, record.Resolve and record.DeriveMessageStatus need.
type family struct {
	msgID     string
	msgStatus record.MessageStatus
	ds        []record.Delivery // ID, Step, After, Required, Status, Attempts, LeaseOwner
	rowids    []int64
}

func (f *family) index(id string) int {
	for i := range f.ds {
		if f.ds[i].ID == id {
			return i
		}
	}
	return -1
}

// loadFamily loads the family of the delivery id; store.ErrNotFound when
// there is no such delivery.
func (t *wtx) loadFamily(id string) (*family, error) {
	rows, err := t.st.family.QueryContext(t.ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	defer rows.Close()
	f := &family{}
	for rows.Next() {
		var (
			d        record.Delivery
			rowid    int64
			after    sql.NullString
			required int
		)
		if err := rows.Scan(&rowid, &d.ID, &d.Step, &after, &required, &d.Status, &d.Attempts, &d.LeaseOwner,
			&f.msgID, &f.msgStatus); err != nil {
			return nil, fmt.Errorf("load deliveries: %w", err)
		}
		if d.After, err = decodeList(after); err != nil {
			return nil, err
		}
		d.Required = required != 0
		f.ds = append(f.ds, d)
		f.rowids = append(f.rowids, rowid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load deliveries: %w", err)
	}
	if f.index(id) < 0 {
		return nil, store.ErrNotFound
	}
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

func applyChanges(ds []record.Delivery, cs []record.Change) {
	for _, c := range cs {
		for i := range ds {
			if ds[i].ID == c.DeliveryID {
				ds[i].Status, ds[i].NextAttemptAt, ds[i].LastError = c.Status, c.NextAttemptAt, c.LastError
				break
			}
		}
	}
}
