package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// writeStateSQL writes the new state of deliveries changed by a replay.
var writeStateSQL = `UPDATE deliveries d SET status = c.status, next_attempt_at = c.next_at, last_error = c.err,
		lease_owner = '', replays = c.replays, attempts_at_replay = c.at_replay, replayed_at = c.replayed_at,
		updated_at = c.now
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::int[], $7::timestamptz[], $8::timestamptz[])
		AS c(id, status, next_at, err, replays, at_replay, replayed_at, now)
	WHERE d.id = c.id
	RETURNING ` + deliveryColsOf("d")

// DeliveryReplay sends dead deliveries back to work with a fresh retry
// budget, puts their skipped dependants back to waiting and derives the
// message statuses again, under the messages' row locks. With a filter, the
// oldest dead letters go first. See store.Store.DeliveryReplay.
func (s *Store) DeliveryReplay(ctx context.Context, p *store.DeliveryReplayParams) ([]record.Delivery, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	now := micro(store.NowOr(p.Now))
	var out []record.Delivery
	for try := 0; ; try++ {
		var err error
		out, err = s.replay(ctx, p, now)
		if err == nil {
			return out, nil
		}
		if !retryable(err) || try == 3 {
			return nil, wrap("replay deliveries", err)
		}
	}
}

func (s *Store) replay(ctx context.Context, p *store.DeliveryReplayParams, now time.Time) ([]record.Delivery, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// Pick the dead letters; they are checked again under the lock.
	var (
		q    string
		args []any
	)
	if len(p.IDs) > 0 {
		q, args = `SELECT id, message_id FROM deliveries WHERE id = ANY($1) AND status = 'dead'`, []any{p.IDs}
	} else {
		where := []string{"status = 'dead'"}
		if p.Route != "" {
			args = append(args, p.Route)
			where = append(where, fmt.Sprintf("route = $%d", len(args)))
		}
		if p.Target != "" {
			args = append(args, p.Target)
			where = append(where, fmt.Sprintf("target = $%d", len(args)))
		}
		limit := p.Limit
		if limit <= 0 {
			limit = 1000
		}
		args = append(args, limit)
		q = `SELECT id, message_id FROM deliveries WHERE ` + strings.Join(where, " AND ") +
			fmt.Sprintf(` ORDER BY created_at, id LIMIT $%d`, len(args))
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var picked, mids []string
	var id, mid string
	if _, err := pgx.ForEachRow(rows, []any{&id, &mid}, func() error {
		picked = append(picked, id)
		mids = append(mids, mid)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(picked) == 0 {
		return nil, nil
	}
	slices.Sort(mids)
	mids = slices.Compact(mids)

	// Same lock order as DeliveryComplete: messages by id, then their
	// deliveries read fresh.
	b := &pgx.Batch{}
	b.Queue(`SELECT id, status FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`, mids)
	b.Queue(`SELECT `+deliveryCols+` FROM deliveries WHERE message_id = ANY($1) ORDER BY message_id, created_at, step`, mids)
	br := tx.SendBatch(ctx, b)
	was := map[string]record.MessageStatus{}
	var siblings []record.Delivery
	rows, err = br.Query()
	if err == nil {
		var st string
		_, err = pgx.ForEachRow(rows, []any{&mid, &st}, func() error {
			was[mid] = record.MessageStatus(st)
			return nil
		})
	}
	if err == nil {
		rows, err = br.Query()
		if err == nil {
			siblings, err = collectDeliveries(rows)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	want := make(map[string]bool, len(picked))
	for _, id := range picked {
		want[id] = true
	}
	byMessage := map[string][]record.Delivery{}
	for _, d := range siblings {
		byMessage[d.MessageID] = append(byMessage[d.MessageID], d)
	}
	var (
		cID, cStatus, cErr  []string
		cNext, cReplayedAt  []pgtype.Timestamptz
		cReplays, cAtReplay []int32
		cNow                []time.Time
		mID, mStatus        []string
		targets             []string
		seenTarget          = map[string]bool{}
		replayed            = map[string]bool{}
	)
	for _, mid := range mids {
		ds := byMessage[mid]
		before := make(map[string]record.DeliveryStatus, len(ds))
		for _, d := range ds {
			before[d.ID] = d.Status
		}
		changed := map[string]bool{}
		for i := range ds {
			d := &ds[i]
			if !want[d.ID] || d.Status != record.DeliveryDead {
				continue
			}
			d.Status, d.NextAttemptAt, d.LeaseOwner = record.DeliveryScheduled, now, ""
			d.AttemptsAtReplay, d.ReplayedAt, d.Replays = d.Attempts, now, d.Replays+1
			changed[d.ID], replayed[d.ID] = true, true
		}
		if len(changed) == 0 {
			continue
		}
		for i := range ds {
			if replayed[ds[i].ID] {
				cs := record.Unskip(ds, ds[i].Step)
				applyChanges(ds, cs)
				for _, c := range cs {
					changed[c.DeliveryID] = true
				}
			}
		}
		// A dependant that still waits on another dead step is skipped
		// again.
		cs := record.Resolve(ds, now)
		applyChanges(ds, cs)
		for _, c := range cs {
			changed[c.DeliveryID] = true
		}
		for _, d := range ds {
			// Unskipped, then skipped again by Resolve: nothing to write.
			if !changed[d.ID] || !replayed[d.ID] && d.Status == before[d.ID] {
				continue
			}
			cID, cStatus, cErr = append(cID, d.ID), append(cStatus, string(d.Status)), append(cErr, clean(d.LastError))
			cNext, cReplayedAt = append(cNext, ts(micro(d.NextAttemptAt))), append(cReplayedAt, ts(d.ReplayedAt))
			cReplays, cAtReplay = append(cReplays, int32(d.Replays)), append(cAtReplay, int32(d.AttemptsAtReplay))
			cNow = append(cNow, now)
			if d.Status == record.DeliveryScheduled && !seenTarget[d.Target] {
				seenTarget[d.Target] = true
				targets = append(targets, d.Target)
			}
		}
		if st := record.DeriveMessageStatus(ds); st != was[mid] {
			mID, mStatus = append(mID, mid), append(mStatus, string(st))
		}
	}
	if len(cID) == 0 {
		return nil, nil
	}

	b = &pgx.Batch{}
	b.Queue(writeStateSQL, cID, cStatus, cNext, cErr, cReplays, cAtReplay, cReplayedAt, cNow)
	b.Queue(`UPDATE messages m SET status = x.status, updated_at = $3
		FROM unnest($1::text[], $2::text[]) AS x(id, status) WHERE m.id = x.id`, mID, mStatus, now)
	br = tx.SendBatch(ctx, b)
	var written []record.Delivery
	rows, err = br.Query()
	if err == nil {
		written, err = collectDeliveries(rows)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.notes.add(targets)
	byID := make(map[string]record.Delivery, len(written))
	for _, d := range written {
		byID[d.ID] = d
	}
	order := picked
	if len(p.IDs) > 0 {
		order = p.IDs // the caller's order
	}
	var out []record.Delivery
	for _, id := range order {
		if d, ok := byID[id]; ok && replayed[id] {
			out = append(out, d)
			delete(replayed, id) // once, even if asked twice
		}
	}
	return out, nil
}
