package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Purges run as writer ops like every other write, so they share its
// commits and never race a completion or a replay. Each call is small: a
// message purge deletes at most store.PurgeLimit messages, and the caller
// loops, so other writes queued behind it wait for one small batch only.

const holdsDead = `EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id AND d.status = 'dead')`

// purgeQuery selects the messages whose retention has passed. The scan runs
// on messages_created (created_at <= updated_at, so the latest cut-off
// bounds it); "" when every kind is kept for ever.
func purgeQuery(p *store.MessagePurgeParams, now time.Time) (string, []any) {
	var (
		or     []string
		args   []any
		newest int64
	)
	bucket := func(age time.Duration, cond string) {
		if age <= 0 {
			return
		}
		cut := nanos(now.Add(-age))
		newest = max(newest, cut)
		or = append(or, "("+cond+" AND m.updated_at < ?)")
		args = append(args, cut)
	}
	bucket(p.Succeeded, "m.status = 'succeeded' AND NOT "+holdsDead)
	bucket(p.Failed, "m.status IN ('failed', 'partially_succeeded', 'compensated') AND NOT "+holdsDead)
	bucket(p.Dead, "m.status IN ('succeeded', 'failed', 'partially_succeeded', 'compensated') AND "+holdsDead)
	if len(or) == 0 {
		return "", nil
	}
	q := `SELECT m.id FROM messages m WHERE m.created_at < ? AND (` + strings.Join(or, " OR ") +
		`) ORDER BY m.created_at, m.id LIMIT ?`
	return q, append(append([]any{newest}, args...), store.PurgeLimit(p.Limit))
}

// MessagePurge deletes one batch of finished messages whose retention has
// passed; their deliveries and attempts go with them (ON DELETE CASCADE).
// See store.Store.MessagePurge.
func (s *Store) MessagePurge(ctx context.Context, p *store.MessagePurgeParams) (int, error) {
	q, args := purgeQuery(p, store.NowOr(p.Now))
	if q == "" {
		return 0, nil
	}
	var n int
	err := s.submit(ctx, func(t *wtx) error {
		n = 0
		ids, err := queryStrings(t, q, args...)
		if err != nil {
			return clean(err)
		}
		if len(ids) == 0 {
			return nil
		}
		js, err := json.Marshal(ids)
		if err != nil {
			return clean(err)
		}
		res, err := t.conn.ExecContext(t.ctx, `DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))`, string(js))
		if err != nil {
			return err
		}
		k, err := res.RowsAffected()
		n = int(k)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge messages: %w", err)
	}
	return n, nil
}

// DeliveryPurge cancels dead letters and derives their messages' status
// again, in one writer op. See store.Store.DeliveryPurge.
func (s *Store) DeliveryPurge(ctx context.Context, p *store.DeliveryPurgeParams) ([]record.Delivery, error) {
	now := store.NowOr(p.Now)
	var out []record.Delivery
	err := s.submit(ctx, func(t *wtx) error {
		out = nil
		// Every read comes first, so a failed read leaves nothing to undo.
		picked, err := pickDead(t, p)
		if err != nil {
			return clean(err)
		}
		if len(picked) == 0 {
			return nil
		}
		var mids []string
		want := map[string]bool{}
		for _, d := range picked {
			if !want[d.MessageID] {
				mids = append(mids, d.MessageID)
			}
			want[d.MessageID], want[d.ID] = true, true
		}
		type change struct {
			ds  []record.Delivery
			was record.MessageStatus
		}
		msgs := make([]change, 0, len(mids))
		for _, mid := range mids {
			rows, err := t.conn.QueryContext(t.ctx, `SELECT `+deliveryCols+` FROM deliveries
				WHERE message_id = ? ORDER BY created_at, step, id`, mid)
			if err != nil {
				return clean(err)
			}
			ds, err := collect(rows, scanDelivery)
			if err != nil {
				return clean(err)
			}
			var was record.MessageStatus
			if err := t.conn.QueryRowContext(t.ctx, `SELECT status FROM messages WHERE id = ?`, mid).Scan(&was); err != nil {
				return clean(err)
			}
			msgs = append(msgs, change{ds: ds, was: was})
		}
		at := nanos(now)
		for _, c := range msgs {
			for i := range c.ds {
				d := &c.ds[i]
				if !want[d.ID] || d.Status != record.DeliveryDead {
					continue
				}
				d.Status, d.LastError, d.UpdatedAt = record.DeliveryCancelled, store.PurgedPrefix+d.LastError, now
				if _, err := t.conn.ExecContext(t.ctx, `UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?
					WHERE id = ? AND status = 'dead'`, string(d.Status), d.LastError, at, d.ID); err != nil {
					return err
				}
				out = append(out, *d)
			}
			st := record.DeriveMessageStatus(c.ds)
			if _, err := t.conn.ExecContext(t.ctx, `UPDATE messages SET status = ?, updated_at = ? WHERE id = ?`,
				string(st), at, c.ds[0].MessageID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("purge dead letters: %w", err)
	}
	return out, nil
}

// pickDead selects the dead letters a purge names: by ids, or the oldest
// matching the filter.
func pickDead(t *wtx, p *store.DeliveryPurgeParams) ([]record.Delivery, error) {
	var (
		q    string
		args []any
	)
	if len(p.IDs) > 0 {
		js, err := json.Marshal(p.IDs)
		if err != nil {
			return nil, err
		}
		q, args = `SELECT id, message_id FROM deliveries WHERE id IN (SELECT value FROM json_each(?)) AND status = 'dead'`, []any{string(js)}
	} else {
		where := []string{"status = 'dead'"}
		if p.Route != "" {
			where, args = append(where, "route = ?"), append(args, p.Route)
		}
		if p.Target != "" {
			where, args = append(where, "target = ?"), append(args, p.Target)
		}
		limit := p.Limit
		if limit <= 0 {
			limit = 1000
		}
		q = `SELECT id, message_id FROM deliveries WHERE ` + strings.Join(where, " AND ") + ` ORDER BY created_at, id LIMIT ?`
		args = append(args, limit)
	}
	rows, err := t.conn.QueryContext(t.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []record.Delivery
	for rows.Next() {
		var d record.Delivery
		if err := rows.Scan(&d.ID, &d.MessageID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// queryStrings runs q on the writer connection and returns its one column.
func queryStrings(t *wtx, q string, args ...any) ([]string, error) {
	rows, err := t.conn.QueryContext(t.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc scanner) (string, error) {
		var s string
		err := sc.Scan(&s)
		return s, err
	})
}
