package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

const holdsDead = `EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = 'dead')`

// MessagePurge deletes one batch of finished messages whose retention has
// passed; their deliveries and attempts go with them (ON DELETE CASCADE).
// Rows another transaction holds (a replay, a completion) are skipped, and
// the statuses are checked again under the row lock, so a message that a
// replay reopened is never deleted. See store.Store.MessagePurge.
func (s *Store) MessagePurge(ctx context.Context, p *store.MessagePurgeParams) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	now := micro(store.NowOr(p.Now))
	var (
		or     []string
		args   []any
		newest time.Time
	)
	bucket := func(age time.Duration, cond string) {
		if age <= 0 {
			return
		}
		cut := now.Add(-age)
		if cut.After(newest) {
			newest = cut
		}
		args = append(args, cut)
		or = append(or, fmt.Sprintf("(%s AND m.updated_at < $%d)", cond, len(args)))
	}
	bucket(p.Succeeded, "m.status = 'succeeded' AND NOT "+holdsDead)
	bucket(p.Failed, "m.status IN ('failed', 'partially_succeeded', 'compensated') AND NOT "+holdsDead)
	bucket(p.Dead, "m.status IN ('succeeded', 'failed', 'partially_succeeded', 'compensated') AND "+holdsDead)
	if len(or) == 0 {
		return 0, nil
	}
	args = append(args, newest, store.PurgeLimit(p.Limit))
	q := fmt.Sprintf(`WITH picked AS (
		SELECT m.id FROM messages m WHERE m.created_at < $%d AND (%s)
		ORDER BY m.created_at, m.id LIMIT $%d FOR UPDATE SKIP LOCKED)
	DELETE FROM messages WHERE id IN (SELECT id FROM picked)`, len(args)-1, strings.Join(or, " OR "), len(args))
	ctx, cancel := bounded(ctx)
	defer cancel()
	for try := 0; ; try++ {
		tag, err := s.pool.Exec(ctx, q, args...)
		if err == nil {
			return int(tag.RowsAffected()), nil
		}
		if !retryable(err) || try == 3 {
			return 0, wrap("purge messages", err)
		}
	}
}

// DeliveryPurge cancels dead letters and derives their messages' status
// again, under the messages' row locks (the lock order of DeliveryComplete
// and DeliveryReplay: messages by id, then their deliveries). See
// store.Store.DeliveryPurge.
func (s *Store) DeliveryPurge(ctx context.Context, p *store.DeliveryPurgeParams) ([]record.Delivery, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	now := micro(store.NowOr(p.Now))
	for try := 0; ; try++ {
		out, err := s.purgeDead(ctx, p, now)
		if err == nil {
			return out, nil
		}
		if !retryable(err) || try == 3 {
			return nil, wrap("purge dead letters", err)
		}
	}
}

func (s *Store) purgeDead(ctx context.Context, p *store.DeliveryPurgeParams, now time.Time) ([]record.Delivery, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q, args := deadLetterQuery("id, message_id", p.IDs, false, p.Route, p.Target, p.Limit)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	var mids []string
	var id, mid string
	if _, err := pgx.ForEachRow(rows, []any{&id, &mid}, func() error {
		want[id] = true
		mids = append(mids, mid)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return nil, nil
	}
	slices.Sort(mids)
	mids = slices.Compact(mids)
	if _, err := tx.Exec(ctx, `SELECT id FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`, mids); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE message_id = ANY($1) ORDER BY message_id, created_at, step`, mids)
	if err != nil {
		return nil, err
	}
	all, err := collectDeliveries(rows)
	if err != nil {
		return nil, err
	}
	byMessage := map[string][]record.Delivery{}
	for _, d := range all {
		byMessage[d.MessageID] = append(byMessage[d.MessageID], d)
	}
	var (
		cID, cErr    []string
		mID, mStatus []string
		out          []record.Delivery
	)
	for _, mid := range mids {
		ds := byMessage[mid]
		for i := range ds {
			d := &ds[i]
			if !want[d.ID] || d.Status != record.DeliveryDead {
				continue // replayed since it was picked
			}
			d.Status, d.LastError, d.UpdatedAt = record.DeliveryCancelled, store.PurgedPrefix+d.LastError, now
			cID, cErr = append(cID, d.ID), append(cErr, clean(d.LastError))
			out = append(out, *d)
		}
		mID, mStatus = append(mID, mid), append(mStatus, string(record.DeriveMessageStatus(ds)))
	}
	if len(cID) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE deliveries d SET status = 'cancelled', last_error = c.err, lease_owner = '', updated_at = $3
		FROM unnest($1::text[], $2::text[]) AS c(id, err) WHERE d.id = c.id AND d.status = 'dead'`, cID, cErr, now)
	b.Queue(`UPDATE messages m SET status = x.status, updated_at = $3
		FROM unnest($1::text[], $2::text[]) AS x(id, status) WHERE m.id = x.id`, mID, mStatus, now)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return out, nil
}
