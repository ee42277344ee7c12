package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// TestAnalyzeAsTheTableGrows: a table that grows from empty is analyzed
// by the store itself once the deliveries it inserted reach the table's
// size at the last analyze, long before autovacuum would look (a minute);
// after that the planner sees the real row count, and the completes'
// family read is an index scan, not a sequential scan of the backlog.
func TestAnalyzeAsTheTableGrows(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	reltuples := func() float64 {
		var n float64
		if err := s.pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := reltuples(); n > 0 {
		t.Fatalf("a new table: reltuples %v, want none yet", n)
	}
	// analyzeMin deliveries, in parallel so they group-commit.
	msgs := analyzeMin/2 + 1
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				id := fmt.Sprintf("m%06d", i)
				_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
					Message: record.Message{ID: id, Route: "r", BodyHash: "h", Body: []byte("{}")},
					Deliveries: []record.Delivery{
						{ID: id + "-a", Step: "a", Target: "ta", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: time.Now()},
						{ID: id + "-b", Step: "b", Target: "tb", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: time.Now()},
					},
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range msgs {
		work <- i
	}
	close(work)
	wg.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for reltuples() < float64(2*msgs)*0.9 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d deliveries: reltuples %v; the store did not analyze", 2*msgs, reltuples())
		}
		time.Sleep(50 * time.Millisecond)
	}
	plan := explain(t, s.pool, `EXPLAIN (FORMAT TEXT) `+familySQL, []string{"m000001-a", "m000002-b"})
	if !strings.Contains(plan, "Index") {
		t.Errorf("family read after the analyze: %s; want an index scan", plan)
	}
}

// TestCustomPlans: every connection plans each statement with its
// values, unless the DSN says otherwise.
func TestCustomPlans(t *testing.T) {
	s := openStore(t, newSchema(t))
	var mode string
	if err := s.pool.QueryRow(context.Background(), `SHOW plan_cache_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" {
		t.Errorf("plan_cache_mode %q, want force_custom_plan", mode)
	}
}
