package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/postgres"
)

// BenchmarkInsert measures what following the store costs a durable
// accept: parallel MessageInsert calls on the store itself (raw), through
// the hub's wrapper with nobody listening (idle), and with a subscriber
// that reads every event (listening). Compare the ns/op of the three in
// one run; on PostgreSQL (TANDEM_TEST_POSTGRES) the wrapper also sends
// the change notices to other replicas.
func BenchmarkInsert(b *testing.B) {
	stores := map[string]func(b *testing.B) store.Store{"sqlite": func(b *testing.B) store.Store { return openSQLiteB(b) }}
	if dsn := os.Getenv("TANDEM_TEST_POSTGRES"); dsn != "" {
		stores["postgres"] = func(b *testing.B) store.Store {
			schema := fmt.Sprintf("eventsbench_%d", time.Now().UnixNano())
			s, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, Schema: schema, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				_, _ = s.Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				_ = s.Close()
			})
			return s
		}
	}
	for _, name := range []string{"sqlite", "postgres"} {
		open, ok := stores[name]
		if !ok {
			continue
		}
		for _, mode := range []string{"raw", "idle", "listening"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				st := open(b)
				var target store.Store = st
				if mode != "raw" {
					h := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					go h.Run(ctx)
					target = h.Wrap(st)
					if mode == "listening" {
						sub := h.Subscribe(Filter{}, "")
						defer sub.Close()
						go func() {
							for range sub.C {
							}
						}()
					}
				}
				var n atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := fmt.Sprintf("%s-%s-%d", name, mode, n.Add(1))
						now := time.Now()
						_, err := target.MessageInsert(context.Background(), &store.MessageInsertParams{
							Message:    record.Message{ID: id, Route: "r", Body: []byte(`{}`), BodyHash: id},
							Deliveries: []record.Delivery{{ID: id + ".a", Step: "a", Target: "ta", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now}},
							Now:        &now,
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

func openSQLiteB(b *testing.B) store.Store {
	b.Helper()
	return openSQLiteAt(b, b.TempDir())
}
