package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// claimSQL leases the oldest due deliveries of one target. FOR UPDATE SKIP
// LOCKED lets replicas claim side by side: a row another transaction is
// claiming (or completing) is passed over, never waited for, so two
// claimers never get the same delivery and never block each other. The
// subquery runs on the partial index deliveries_due. A running delivery
// whose lease ended (next_attempt_at <= now) is a crashed worker's and is
// claimed again. Every claim raises the fencing token, so the expired
// claim's late writes are refused. Ordering by next_attempt_at alone (no tie-breaker) keeps
// the claim an index range scan that stops after LIMIT rows, however long
// the backlog.
const claimSQL = `WITH c AS (
	SELECT id, next_attempt_at AS due FROM deliveries
	WHERE target = $1 AND status IN ('scheduled', 'running') AND next_attempt_at <= $2
	ORDER BY next_attempt_at
	LIMIT $3
	FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d SET status = 'running', lease_owner = $4, lease_token = d.lease_token + 1,
	outcome_unknown = d.outcome_unknown OR d.status = 'running',
	next_attempt_at = $5, updated_at = $2
FROM c WHERE d.id = c.id
RETURNING c.due, ` + "%s"

var claimQuery = fmt.Sprintf(claimSQL, deliveryColsOf("d"))

// DeliveryClaim leases up to p.Limit due deliveries of p.Target, oldest due
// first. See store.Store.DeliveryClaim.
func (s *Store) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if p.Limit <= 0 {
		return nil, nil
	}
	if p.Owner == "" {
		return nil, errors.New("claim deliveries: owner is required")
	}
	now := micro(store.NowOr(p.Now))
	rows, err := s.pool.Query(ctx, claimQuery, p.Target, now, p.Limit, p.Owner, now.Add(p.LeaseFor))
	if err != nil {
		return nil, wrap("claim deliveries", err)
	}
	ds, err := scanClaimed(rows)
	if err != nil {
		return nil, wrap("claim deliveries", err)
	}
	if err := s.attachMessages(ctx, ds); err != nil {
		// The claim stands; the worker reads each message itself.
		s.log.Warn("claim deliveries: read their messages", "error", err)
	}
	return ds, nil
}

// scanClaimed reads the rows of claimQuery, oldest due first, and closes
// them.
func scanClaimed(rows pgx.Rows) ([]record.Delivery, error) {
	defer rows.Close()
	type claimed struct {
		due time.Time
		d   record.Delivery
	}
	var out []claimed
	for rows.Next() {
		var c claimed
		d, err := scanDelivery(prefixRow{row: rows, first: &c.due})
		if err != nil {
			return nil, err
		}
		c.d = d
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// UPDATE ... RETURNING has no order of its own.
	slices.SortFunc(out, func(a, b claimed) int { return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.d.ID, b.d.ID)) })
	ds := make([]record.Delivery, len(out))
	for i, c := range out {
		ds[i] = c.d
	}
	return ds, nil
}

// attachMessages fills each claimed delivery's Message with one query, so
// a worker need not read its message again (a MessageGet is three
// queries). Messages change after insert only in their status, which a
// worker does not use.
func (s *Store) attachMessages(ctx context.Context, ds []record.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ANY($1)`, store.MessageIDs(ds))
	if err != nil {
		return err
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (record.Message, error) { return scanMessage(r) })
	if err != nil {
		return err
	}
	store.AttachMessages(ds, ms)
	return nil
}

// prefixRow scans one extra leading column into first, then hands the rest
// to the delivery scanner.
type prefixRow struct {
	row   pgx.Row
	first any
}

func (r prefixRow) Scan(dest ...any) error {
	return r.row.Scan(append([]any{r.first}, dest...)...)
}

// DeliveryPostpone gives a leased delivery back as scheduled without
// counting an attempt. See store.Store.DeliveryPostpone.
func (s *Store) DeliveryPostpone(ctx context.Context, p *store.DeliveryPostponeParams) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	now := micro(store.NowOr(p.Now))
	next := micro(p.NextAttemptAt)
	if next.IsZero() {
		next = now
	}
	var target string
	err := s.pool.QueryRow(ctx, `UPDATE deliveries SET status = 'scheduled', next_attempt_at = $3, lease_owner = '',
			last_error = CASE WHEN $4 <> '' THEN $4 ELSE last_error END, updated_at = $5
		WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND lease_token = $6
		RETURNING target`, p.DeliveryID, p.Owner, next, clean(p.Reason), now, p.LeaseToken).Scan(&target)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s.whyNot(ctx, "postpone delivery", p.DeliveryID)
	case err != nil:
		return wrap("postpone delivery", err)
	}
	if !next.After(now) {
		// Given back for now (shutdown): another replica may take it.
		s.notes.add([]string{target})
	}
	return nil
}

// whyNot tells a delivery that does not exist from one that is not leased
// to the caller.
func (s *Store) whyNot(ctx context.Context, what, id string) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM deliveries WHERE id = $1`, id).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
	case err != nil:
		return wrap(what, err)
	}
	return fmt.Errorf("%s %s: %w", what, id, store.ErrLeaseLost)
}

// DeliveryList lists deliveries newest first (by CreatedAt, then ID).
func (s *Store) DeliveryList(ctx context.Context, p *store.DeliveryListParams) (*store.DeliveryListResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	cur, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	limit := store.PageLimit(p.Limit)
	var f filter
	f.eq("status", string(p.Status))
	f.eq("route", p.Route)
	f.eq("target", p.Target)
	f.eq("id", p.ID)
	f.eq("message_id", p.MessageID)
	q := f.page(`SELECT `+deliveryCols+` FROM deliveries`, cur, limit)
	rows, err := s.pool.Query(ctx, q, f.args...)
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	ds, err := collectDeliveries(rows)
	if err != nil {
		return nil, wrap("list deliveries", err)
	}
	res := &store.DeliveryListResult{}
	res.Deliveries, res.NextCursor = store.Page(ds, limit, store.DeliveryPos)
	return res, nil
}

// DeliveryStats counts the open and dead deliveries of each target that
// has any. Running deliveries count as running until they are claimed
// again, even once their lease ended.
func (s *Store) DeliveryStats(ctx context.Context, now *time.Time) ([]store.TargetStats, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	at := micro(store.NowOr(now))
	rows, err := s.pool.Query(ctx, `SELECT target,
			count(*) FILTER (WHERE status = 'scheduled' AND next_attempt_at <= $1),
			count(*) FILTER (WHERE status = 'scheduled' AND (next_attempt_at > $1 OR next_attempt_at IS NULL)),
			count(*) FILTER (WHERE status = 'waiting'),
			count(*) FILTER (WHERE status = 'running'),
			count(*) FILTER (WHERE status = 'dead'),
			min(next_attempt_at) FILTER (WHERE status = 'scheduled' AND next_attempt_at <= $1)
		FROM deliveries
		WHERE status IN ('waiting', 'scheduled', 'running', 'dead')
		GROUP BY target ORDER BY target`, at)
	if err != nil {
		return nil, wrap("delivery stats", err)
	}
	defer rows.Close()
	var out []store.TargetStats
	for rows.Next() {
		var st store.TargetStats
		var oldest pgtype.Timestamptz
		if err := rows.Scan(&st.Target, &st.Due, &st.Scheduled, &st.Waiting, &st.Running, &st.Dead, &oldest); err != nil {
			return nil, wrap("delivery stats", err)
		}
		if oldest.Valid {
			st.OldestDue = oldest.Time.UTC()
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("delivery stats", err)
	}
	return out, nil
}
