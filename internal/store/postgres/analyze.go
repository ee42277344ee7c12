package postgres

import (
	"context"
	"sync"
	"time"
)

// The planner's row counts for the hot tables come from the last ANALYZE.
// Autovacuum runs one only after a table changed by a share of its rows
// it had then, and looks at most once per autovacuum_naptime (a minute by
// default). A table that grows from empty to a backlog of many thousands
// in seconds (a new deployment's first burst, a target that came back)
// is planned all that while as if it were still tiny: measured, the
// completes' family read became a sequential scan of the deliveries
// (58 ms for 144 rows out of 29,000) and one replica drained 570
// messages/s instead of 1,200.
//
// So the store analyzes the hot tables itself each time the deliveries it
// inserted since the last analyze reach the table's size then (so at most
// a handful of times on the way from empty to a million rows, and never
// while the table holds steady), at most once per analyzeEvery, in the
// background. ANALYZE (SKIP_LOCKED) passes over a table autovacuum or
// another replica is analyzing at that moment instead of waiting for it.

const (
	// analyzeMin is the fewest inserted deliveries worth an analyze.
	analyzeMin = 5000
	// analyzeEvery spaces the store's analyzes out.
	analyzeEvery = 5 * time.Second
)

type analyzer struct {
	s *Store

	mu      sync.Mutex
	grown   int64     // deliveries inserted since the last analyze
	size    int64     // the deliveries' row count the last analyze found
	last    time.Time // when the last analyze started
	running bool
	wg      sync.WaitGroup
}

func newAnalyzer(ctx context.Context, s *Store) *analyzer {
	a := &analyzer{s: s}
	// The table's size as the planner sees it (reltuples is -1 for a
	// table never analyzed).
	var rows float64
	if err := s.pool.QueryRow(ctx, `SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'deliveries'::regclass`).Scan(&rows); err == nil {
		a.size = int64(rows)
	}
	return a
}

// inserted counts n new deliveries and starts an analyze when they are due one.
func (a *analyzer) inserted(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.grown += int64(n)
	if a.running || a.grown < max(analyzeMin, a.size) || time.Since(a.last) < analyzeEvery {
		return
	}
	select {
	case <-a.s.closed:
		return
	default:
	}
	a.running, a.last = true, time.Now()
	a.wg.Add(1)
	go a.run()
}

func (a *analyzer) run() {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		select {
		case <-a.s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var rows float64
	_, err := a.s.pool.Exec(ctx, `ANALYZE (SKIP_LOCKED) deliveries, messages, attempts`)
	if err == nil {
		err = a.s.pool.QueryRow(ctx, `SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'deliveries'::regclass`).Scan(&rows)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running = false
	if err != nil {
		// Autovacuum still gets there; try again after analyzeEvery.
		a.s.log.Debug("analyze the delivery tables", "error", err)
		return
	}
	a.grown, a.size = 0, int64(rows)
}

// wait returns once an analyze in progress has ended. Close calls it after
// the inserts' writers have stopped, so no analyze can start after it.
func (a *analyzer) wait() { a.wg.Wait() }
