package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// BenchmarkMessageInsert measures accepted messages per second: many
// callers at once, each message with two deliveries, group-committed.
func BenchmarkMessageInsert(b *testing.B) {
	for _, callers := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			var batches, ops atomic.Int64
			s := openStore(b, newSchema(b), func(c *Config) {
				c.MaxConns = 16
				c.OnBatch = func(n int) { batches.Add(1); ops.Add(int64(n)) }
			})
			ctx := context.Background()
			body := []byte(`{"order":42,"items":[1,2,3]}`)
			var seq atomic.Int64
			work := make(chan struct{})
			var wg sync.WaitGroup
			b.ResetTimer()
			for range callers {
				wg.Go(func() {
					for range work {
						id := fmt.Sprintf("m%09d", seq.Add(1))
						_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
							Message: record.Message{ID: id, Route: "orders", Body: body, BodyHash: "h",
								Headers: map[string][]string{"Content-Type": {"application/json"}}},
							Deliveries: []record.Delivery{
								{ID: id + "-a", Step: "charge", Target: "payments", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: time.Now()},
								{ID: id + "-b", Step: "reserve", Target: "inventory", Required: true, After: []string{"charge"}, Status: record.DeliveryWaiting},
							},
						})
						if err != nil {
							b.Error(err)
						}
					}
				})
			}
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "accepted/s")
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(ops.Load())/float64(n), "ops/batch")
			}
		})
	}
}

// BenchmarkClaimComplete measures deliveries per second through a claim
// and a complete each, with workers claiming up to 16 at a time and
// completing them concurrently, as the engine does.
func BenchmarkClaimComplete(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := openStore(b, newSchema(b), func(c *Config) { c.MaxConns = 16 })
			ctx := context.Background()
			now := time.Now().UTC()
			// Seed b.N deliveries, 10 per message.
			var wg sync.WaitGroup
			sem := make(chan struct{}, 64)
			for i := 0; i < b.N; i += 10 {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					var ds []record.Delivery
					for j := i; j < min(i+10, b.N); j++ {
						ds = append(ds, record.Delivery{ID: fmt.Sprintf("d%09d", j), Step: fmt.Sprintf("s%d", j-i), Target: "t",
							Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now})
					}
					if _, err := s.MessageInsert(ctx, &store.MessageInsertParams{
						Message: record.Message{ID: fmt.Sprintf("m%09d", i), Route: "r"}, Deliveries: ds, Now: &now,
					}); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			// Fresh tables have no statistics yet; autovacuum would have
			// gathered them within a minute in a running system.
			if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var done atomic.Int64
			for w := range workers {
				owner := fmt.Sprintf("w%d", w)
				wg.Go(func() {
					for done.Load() < int64(b.N) {
						ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 16, LeaseFor: time.Minute, Owner: owner, Now: &now})
						if err != nil {
							b.Error(err)
							return
						}
						if len(ds) == 0 {
							return
						}
						var cw sync.WaitGroup
						for _, d := range ds {
							cw.Go(func() {
								_, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
									DeliveryID: d.ID, Owner: owner, LeaseToken: d.LeaseToken, Status: record.DeliverySucceeded,
									Attempt:        record.Attempt{N: 1, StartedAt: now, Duration: time.Millisecond, HTTPStatus: 200, Outcome: record.OutcomeSuccess},
									ResponseStatus: 200, ResponseBody: []byte(`{"ok":true}`), Now: &now,
								})
								if err != nil {
									b.Error(err)
								}
								done.Add(1)
							})
						}
						cw.Wait()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
