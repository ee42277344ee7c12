package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Run with: go test -run x -bench . -benchtime 3s ./internal/store/sqlite
// The database lives in the test's temporary directory: put TMPDIR on the
// disk you want to measure (fsync on tmpfs is free).

// BenchmarkFsyncCommit is the disk's baseline: one row per transaction,
// WAL, synchronous=FULL, so one fsync per commit. Group commit is worth the
// ratio of the other benchmarks' rows per second to this one's.
func BenchmarkFsyncCommit(b *testing.B) {
	dsn := "file:" + filepath.Join(b.TempDir(), "fsync.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)`); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 200)
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		if _, err := db.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, i, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
}

// cpuTime is the process's user+system CPU time so far. The machine may be
// shared, so CPU per op is a steadier figure than ops per wall second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration, ops int) {
	b.ReportMetric(float64((cpuTime()-since).Microseconds())/float64(ops), "cpu-µs/op")
}

// batchStats collects OnBatch calls.
type batchStats struct {
	batches, ops atomic.Int64
}

func (bs *batchStats) hook(n int) {
	bs.batches.Add(1)
	bs.ops.Add(int64(n))
}

func (bs *batchStats) report(b *testing.B) {
	if n := bs.batches.Load(); n > 0 {
		b.ReportMetric(float64(bs.ops.Load())/float64(n), "ops/batch")
	}
}

func openBench(b *testing.B, bs *batchStats) *Store {
	b.Helper()
	s, err := Open(context.Background(), Config{
		DSN:     "file:" + filepath.Join(b.TempDir(), "tandem.db"),
		OnBatch: bs.hook,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

var benchBody = []byte(`{"order":"A-1001","total":129.95,"currency":"EUR","items":[{"sku":"X-1","qty":2},{"sku":"Y-7","qty":1}],"customer":{"id":"c-77","email":"a@example.com"}}`)

// benchMessage is a typical accepted request: a 160-byte JSON body, a few
// headers, an idempotency key, and two deliveries.
func benchMessage(n int64) *store.MessageInsertParams {
	id := fmt.Sprintf("01890000-0000-7000-8000-%012d", n)
	return &store.MessageInsertParams{
		Message: record.Message{
			ID: id, Route: "orders", IdempotencyKey: "key-" + id, Body: benchBody, BodyHash: "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4",
			Headers: map[string][]string{"Content-Type": {"application/json"}, "X-Request-Id": {id}},
		},
		Deliveries: []record.Delivery{
			{ID: id + "-a", Step: "charge", Target: "payments", Required: true, Status: record.DeliveryScheduled},
			{ID: id + "-b", Step: "reserve", Target: "inventory", Required: true, Status: record.DeliveryScheduled},
		},
	}
}

// BenchmarkMessageInsertParallel measures accepted messages per second
// with many concurrent callers sharing group commits.
func BenchmarkMessageInsertParallel(b *testing.B) {
	var bs batchStats
	s := openBench(b, &bs)
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(128) // callers per CPU: a busy gateway has many requests in flight
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.MessageInsert(ctx, benchMessage(seq.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	reportCPU(b, cpu, b.N)
	bs.report(b)
}

// BenchmarkDeliveryCycle measures delivery throughput: b.N messages with
// two deliveries each are inserted first (not timed), then per target a
// claim loop leases up to 64 due deliveries at a time and completes each
// from its own goroutine, as the engine's workers do. One op is one
// message delivered to both targets.
func BenchmarkDeliveryCycle(b *testing.B) {
	var bs batchStats
	s := openBench(b, &bs)
	ctx := context.Background()
	now := time.Now()

	var seq atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for {
				n := seq.Add(1)
				if n > int64(b.N) {
					return
				}
				p := benchMessage(n)
				p.Now = &now
				if _, err := s.MessageInsert(ctx, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	bs = batchStats{}

	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	var done atomic.Int64
	for _, target := range []string{"payments", "inventory"} {
		for w := range 2 {
			wg.Go(func() {
				owner := fmt.Sprintf("%s-%d", target, w)
				slots := make(chan struct{}, 128) // attempts in flight per loop
				var inflight sync.WaitGroup
				defer inflight.Wait()
				for {
					at := time.Now()
					ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{
						Target: target, Limit: 64, LeaseFor: time.Minute, Owner: owner, Now: &at,
					})
					if err != nil {
						b.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					for _, d := range ds {
						slots <- struct{}{}
						inflight.Go(func() {
							defer func() { <-slots }()
							t := time.Now()
							_, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
								DeliveryID: d.ID, Owner: owner, LeaseToken: d.LeaseToken, Status: record.DeliverySucceeded,
								Attempt: record.Attempt{
									DeliveryID: d.ID, N: d.Attempts + 1, StartedAt: t, Duration: time.Millisecond,
									HTTPStatus: 200, Outcome: record.OutcomeSuccess,
								},
								ResponseStatus: 200, ResponseBody: []byte(`{"ok":true,"id":"r-1"}`),
								ResponseHeaders: map[string][]string{"Content-Type": {"application/json"}},
								Now:             &t,
							})
							if err != nil {
								b.Error(err)
								return
							}
							done.Add(1)
						})
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if got := done.Load(); got != 2*int64(b.N) {
		b.Fatalf("completed %d deliveries, want %d", got, 2*b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed, "msgs/s")
	b.ReportMetric(float64(2*b.N)/elapsed, "deliveries/s")
	reportCPU(b, cpu, b.N)
	bs.report(b)
}
