package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// DeliveryReplay sends dead deliveries back to work with a fresh retry
// budget, puts their skipped dependants back to waiting and derives the
// message statuses again, under the messages' row locks. With a filter, the
// oldest dead letters go first. See store.Store.DeliveryReplay.
func (s *Store) DeliveryReplay(ctx context.Context, p *store.DeliveryReplayParams) (*store.DeliveryReplayResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	now := micro(store.NowOr(p.Now))
	for try := 0; ; try++ {
		out, err := s.replay(ctx, p, now)
		if err == nil {
			return out, nil
		}
		if !retryable(err) || try == 3 {
			return nil, wrap("replay deliveries", err)
		}
	}
}

func (s *Store) replay(ctx context.Context, p *store.DeliveryReplayParams, now time.Time) (*store.DeliveryReplayResult, error) {
	// Pick the dead letters; the write core checks them again under the
	// lock.
	// By id, any status: the write core says why it leaves one alone.
	q, args := deadLetterQuery("id", p.IDs, true, p.Route, p.Target, p.Limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var picked []string
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		picked = append(picked, id)
		return nil
	}); err != nil {
		return nil, err
	}
	out := &store.DeliveryReplayResult{}
	if len(picked) == 0 {
		return out, nil
	}
	order := picked
	if len(p.IDs) > 0 {
		order = slices.Compact(slices.Clone(p.IDs)) // the caller's order
	}
	targets, err := s.familyTx(ctx, picked, now, func(fs []*record.Family) []*record.Writes {
		var ws []*record.Writes
		byID := map[string]record.Delivery{}
		for _, f := range fs {
			var mine []string
			for _, id := range order {
				if f.Has(id) {
					mine = append(mine, id)
				}
			}
			f.Replay(mine)
			w := f.Writes()
			for _, d := range w.Replayed {
				d.UpdatedAt = now
				byID[d.ID] = d
			}
			out.Refused = append(out.Refused, w.Refused...)
			ws = append(ws, w)
		}
		for _, id := range order {
			if d, ok := byID[id]; ok {
				out.Replayed = append(out.Replayed, d)
				delete(byID, id) // once, even if asked twice
			}
		}
		return ws
	})
	if err != nil {
		return nil, err
	}
	s.notes.add(targets)
	return out, nil
}
