package postgres

import (
	"context"
	"errors"
	"time"
)

// heartbeatSQL upserts this replica and counts the others seen within the
// ttl (the statement cannot see its own upsert, hence the +1). Rows of
// replicas gone for a long time are deleted on the way.
const heartbeatSQL = `WITH up AS (
	INSERT INTO replicas (owner, started_at, seen_at) VALUES ($1, $2, $2)
	ON CONFLICT (owner) DO UPDATE SET seen_at = GREATEST(replicas.seen_at, EXCLUDED.seen_at)
), gone AS (
	DELETE FROM replicas WHERE seen_at < $4 AND owner <> $1
)
SELECT 1 + count(*) FROM replicas WHERE seen_at >= $3 AND owner <> $1`

// Heartbeat records that replica owner is alive at now, and returns how
// many replicas (itself included) were seen within ttl of now: the divisor
// for limits shared by all replicas. Call it every ttl/3 or so.
func (s *Store) Heartbeat(ctx context.Context, owner string, now time.Time, ttl time.Duration) (live int, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if owner == "" || ttl <= 0 {
		return 0, errors.New("heartbeat: owner and a positive ttl are required")
	}
	now = micro(now)
	forget := max(10*ttl, time.Hour)
	if err := s.pool.QueryRow(ctx, heartbeatSQL, owner, now, now.Add(-ttl), now.Add(-forget)).Scan(&live); err != nil {
		return 0, wrap("heartbeat", err)
	}
	return live, nil
}

// Leave removes replica owner at shutdown, so the others stop counting it
// at once rather than after the ttl.
func (s *Store) Leave(ctx context.Context, owner string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE owner = $1`, owner); err != nil {
		return wrap("leave", err)
	}
	return nil
}
