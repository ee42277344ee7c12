package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Reads use the read pool. In WAL mode they see the last commit and never
// wait for the writer.

// MessageGet returns a message with its deliveries and their attempts, read
// from one snapshot.
func (s *Store) MessageGet(ctx context.Context, id string) (*record.MessageDetail, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w: %w", id, store.ErrUnavailable, err)
	}
	defer tx.Rollback()

	m, err := scanMessage(tx.StmtContext(ctx, s.getMessage).QueryRowContext(ctx, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("get message %s: %w", id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	md := &record.MessageDetail{Message: m, Attempts: map[string][]record.Attempt{}}

	rows, err := tx.StmtContext(ctx, s.getDeliveries).QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get message %s: deliveries: %w", id, err)
	}
	md.Deliveries, err = collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("get message %s: deliveries: %w", id, err)
	}

	rows, err = tx.StmtContext(ctx, s.getAttempts).QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get message %s: attempts: %w", id, err)
	}
	as, err := collect(rows, scanAttempt)
	if err != nil {
		return nil, fmt.Errorf("get message %s: attempts: %w", id, err)
	}
	for _, a := range as {
		md.Attempts[a.DeliveryID] = append(md.Attempts[a.DeliveryID], a)
	}
	return md, nil
}

// MessageGet's reads, prepared on the read pool at Open.
var (
	getMessageSQL    = `SELECT ` + messageCols + ` FROM messages WHERE id = ?`
	getDeliveriesSQL = `SELECT ` + deliveryCols + ` FROM deliveries
		WHERE message_id = ? ORDER BY created_at, step, id`
	getAttemptsSQL = `SELECT a.delivery_id, a.n, a.started_at, a.duration_ns, a.http_status, a.outcome, a.error
		FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
		WHERE d.message_id = ? ORDER BY a.delivery_id, a.n`
)

// collect scans every row and closes rows.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// where builds a conjunction of conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// addStatus filters on a status. A known status goes into the SQL as a
// literal so SQLite can pick a partial index on it (a bound parameter hides
// the value from the planner); the set of known values is fixed, so this is
// not an injection.
func (w *where) addStatus(status string, known bool) {
	if known {
		w.add(`status = '` + status + `'`)
		return
	}
	w.add(`status = ?`, status)
}

// addCursor starts the page strictly after the cursor, newest first.
func (w *where) addCursor(cursor string) error {
	if cursor == "" {
		return nil
	}
	c, err := store.DecodeCursor(cursor)
	if err != nil {
		return err
	}
	w.add(`(created_at, id) < (?, ?)`, nanos(c.At), c.ID)
	return nil
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// MessageList lists messages newest first. Body, Headers and Query are
// left empty.
func (s *Store) MessageList(ctx context.Context, p *store.MessageListParams) (*store.MessageListResult, error) {
	if p == nil {
		p = &store.MessageListParams{}
	}
	if s.isClosed() {
		return nil, errClosed
	}
	limit := store.PageLimit(p.Limit)
	var w where
	if p.Route != "" {
		w.add(`route = ?`, p.Route)
	}
	if p.Status != "" {
		w.addStatus(string(p.Status), p.Status.Valid())
	}
	if p.IdempotencyKey != "" {
		w.add(`idempotency_key = ? AND idempotency_key <> ''`, p.IdempotencyKey)
	}
	if !p.CreatedFrom.IsZero() {
		w.add(`created_at >= ?`, nanos(p.CreatedFrom))
	}
	if !p.CreatedBefore.IsZero() {
		w.add(`created_at < ?`, nanos(p.CreatedBefore))
	}
	if err := w.addCursor(p.Cursor); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	// One row more than the page tells whether there is a next page, so the
	// last page has no cursor.
	q := `SELECT id, route, status, idempotency_key, body_hash, NULL, NULL, NULL, created_at, updated_at, traceparent, tracestate
		FROM messages` + w.String() + ` ORDER BY created_at DESC, id DESC LIMIT ?`
	rows, err := s.rdb.QueryContext(ctx, q, append(w.args, limit+1)...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w: %w", store.ErrUnavailable, err)
	}
	ms, err := collect(rows, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	res := &store.MessageListResult{}
	res.Messages, res.NextCursor = store.Page(ms, limit, store.MessagePos)
	return res, nil
}

// DeliveryList lists deliveries newest first (then by id, descending).
func (s *Store) DeliveryList(ctx context.Context, p *store.DeliveryListParams) (*store.DeliveryListResult, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	limit := store.PageLimit(p.Limit)
	var w where
	if p.ID != "" {
		w.add(`id = ?`, p.ID)
	}
	if p.MessageID != "" {
		w.add(`message_id = ?`, p.MessageID)
	}
	if p.Route != "" {
		w.add(`route = ?`, p.Route)
	}
	if p.Target != "" {
		w.add(`target = ?`, p.Target)
	}
	if p.Status != "" {
		w.addStatus(string(p.Status), p.Status.Valid())
	}
	if err := w.addCursor(p.Cursor); err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	q := `SELECT ` + deliveryCols + ` FROM deliveries` + w.String() + ` ORDER BY created_at DESC, id DESC LIMIT ?`
	rows, err := s.rdb.QueryContext(ctx, q, append(w.args, limit+1)...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w: %w", store.ErrUnavailable, err)
	}
	ds, err := collect(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	res := &store.DeliveryListResult{}
	res.Deliveries, res.NextCursor = store.Page(ds, limit, store.DeliveryPos)
	return res, nil
}

// DeliveryStats counts each target's live and dead deliveries. Every query
// names its status literally so it reads a partial index, not the table.
func (s *Store) DeliveryStats(ctx context.Context, now *time.Time) ([]store.TargetStats, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	at := store.NowOr(now).UnixNano()
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("delivery stats: %w: %w", store.ErrUnavailable, err)
	}
	defer tx.Rollback()

	by := map[string]*store.TargetStats{}
	get := func(target string) *store.TargetStats {
		st := by[target]
		if st == nil {
			st = &store.TargetStats{Target: target}
			by[target] = st
		}
		return st
	}
	rows, err := tx.QueryContext(ctx, `SELECT target, status, next_attempt_at <= ?, count(*), min(next_attempt_at) FROM deliveries
		WHERE status IN ('scheduled', 'running') GROUP BY 1, 2, 3`, at)
	if err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	for rows.Next() {
		var (
			target, status string
			due            bool
			n              int
			oldest         int64
		)
		if err := rows.Scan(&target, &status, &due, &n, &oldest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("delivery stats: %w", err)
		}
		st := get(target)
		switch {
		case status == string(record.DeliveryRunning):
			st.Running += n
		case due:
			st.Due += n
			st.OldestDue = fromNanos(oldest)
		default:
			st.Scheduled += n
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("delivery stats: %w", err)
	}
	for _, c := range []struct {
		status string
		field  func(*store.TargetStats) *int
	}{
		{"waiting", func(st *store.TargetStats) *int { return &st.Waiting }},
		{"dead", func(st *store.TargetStats) *int { return &st.Dead }},
	} {
		rows, err := tx.QueryContext(ctx, `SELECT target, count(*) FROM deliveries WHERE status = '`+c.status+`' GROUP BY target`)
		if err != nil {
			return nil, fmt.Errorf("delivery stats: %w", err)
		}
		for rows.Next() {
			var (
				target string
				n      int
			)
			if err := rows.Scan(&target, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("delivery stats: %w", err)
			}
			*c.field(get(target)) += n
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("delivery stats: %w", err)
		}
	}
	out := make([]store.TargetStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b store.TargetStats) int { return strings.Compare(a.Target, b.Target) })
	return out, nil
}
