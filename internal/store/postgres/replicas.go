package postgres

import (
	"context"
	"errors"
	"sync"
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

// replicaSet remembers the owners this store has heartbeated for, so Close
// can remove their rows, and the heartbeats in flight, so Close can stop
// them first (one finishing after the delete would bring the row back).
type replicaSet struct {
	mu       sync.Mutex
	owners   map[string]bool
	inflight sync.WaitGroup
	stop     context.Context // done when Close begins to leave
	cancel   context.CancelFunc
}

func newReplicaSet() *replicaSet {
	ctx, cancel := context.WithCancel(context.Background())
	return &replicaSet{owners: map[string]bool{}, stop: ctx, cancel: cancel}
}

// Heartbeat records that replica owner is alive at now, and returns how
// many replicas (itself included) were seen within ttl of now: the divisor
// for limits shared by all replicas. Call it every ttl/3 or so. Close
// removes the rows of the owners this store heartbeated for, as Leave does.
func (s *Store) Heartbeat(ctx context.Context, owner string, now time.Time, ttl time.Duration) (live int, err error) {
	if owner == "" || ttl <= 0 {
		return 0, errors.New("heartbeat: owner and a positive ttl are required")
	}
	r := s.replicas
	r.mu.Lock()
	// Checked under the lock: Close takes it after closing, so a heartbeat
	// that passes here is counted in inflight before Close waits for them.
	if err := s.checkOpen(); err != nil {
		r.mu.Unlock()
		return 0, err
	}
	r.owners[owner] = true
	r.inflight.Add(1)
	r.mu.Unlock()
	defer r.inflight.Done()

	ctx, cancel := bounded(ctx)
	defer cancel()
	defer context.AfterFunc(r.stop, cancel)()
	now = micro(now)
	forget := max(10*ttl, time.Hour)
	if err := s.pool.QueryRow(ctx, heartbeatSQL, owner, now, now.Add(-ttl), now.Add(-forget)).Scan(&live); err != nil {
		if r.stop.Err() != nil {
			return 0, errClosed
		}
		return 0, wrap("heartbeat", err)
	}
	return live, nil
}

// Leave removes replica owner, so the others stop counting it at once
// rather than after the ttl.
func (s *Store) Leave(ctx context.Context, owner string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	s.replicas.mu.Lock()
	delete(s.replicas.owners, owner)
	s.replicas.mu.Unlock()
	return s.leave(ctx, []string{owner})
}

func (s *Store) leave(ctx context.Context, owners []string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE owner = ANY($1)`, owners); err != nil {
		return wrap("leave", err)
	}
	return nil
}

// leaveAll is Close's part: stop the heartbeats in flight, then remove the
// rows of every owner still heartbeated for. A database that cannot be
// reached just keeps the rows until their ttl passes.
func (s *Store) leaveAll() {
	r := s.replicas
	r.mu.Lock() // after close(s.closed): no heartbeat starts from here on
	owners := make([]string, 0, len(r.owners))
	for o := range r.owners {
		owners = append(owners, o)
	}
	r.mu.Unlock()
	r.cancel()
	r.inflight.Wait()
	if len(owners) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.leave(ctx, owners); err != nil {
		s.log.Warn("postgres: leave replicas at close", "error", err)
	}
}
