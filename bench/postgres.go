package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// The PostgreSQL bench (-only pg) measures, for SQLite, PostgreSQL with one
// replica and PostgreSQL with three replicas (three engines and gateways in
// this process on one schema, the load spread evenly across them):
//
//   - accepted/s: respond: accepted with the delivery workers off, so
//     only ingest and commit are measured;
//   - delivered to both/s: then the workers start and drain that backlog
//     to both targets, for at most the run's duration.
//
// The database is TANDEM_BENCH_POSTGRES, else TANDEM_TEST_POSTGRES; the
// bench makes its own schema and drops it at the end.

// gateway is one running replica: its HTTP address, engine and store.
type gateway struct {
	url   string
	eng   *engine.Engine
	st    store.Store
	stop  func()
	start func() error // starts the delivery workers (and, on PostgreSQL, the wake-ups)
}

// countingStore counts claims and the deliveries they return.
type countingStore struct {
	store.Store
}

var claims, claimed atomic.Int64

func (c countingStore) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	ds, err := c.Store.DeliveryClaim(ctx, p)
	if len(ds) > 0 {
		claims.Add(1)
		claimed.Add(int64(len(ds)))
	}
	return ds, err
}

// pgCommits counts the PostgreSQL stores' group commits of inserts.
var pgCommits, pgCommitOps atomic.Int64

func pgCommitStats() string { return perCommit(&pgCommits, &pgCommitOps) }

// sqliteCommitStats reads the SQLite store's counters (see batchStats).
func sqliteCommitStats() string { return perCommit(&batches, &batchOps) }

func perCommit(commits, ops *atomic.Int64) string {
	c, o := commits.Swap(0), ops.Swap(0)
	if c == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(o)/float64(c))
}

func pgGateway(a, b *sink, dsn, schema string) (*gateway, error) {
	cfg, err := ordersConfig("postgres", dsn, a, b)
	if err != nil {
		return nil, err
	}
	reg := telemetry.NewRegistry()
	m := telemetry.NewMetrics(reg)
	st, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn, Schema: schema, OnBatch: func(n int) {
		m.ObserveBatch(n)
		pgCommits.Add(1)
		pgCommitOps.Add(int64(n))
	}})
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: countingStore{st}, Metrics: m})
	if err != nil {
		st.Close()
		return nil, err
	}
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Registry: reg})
	if err != nil {
		st.Close()
		return nil, err
	}
	u, stopHTTP, err := serveHandler(h)
	if err != nil {
		st.Close()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	g := &gateway{url: u, eng: eng, st: st}
	g.start = func() error {
		if err := eng.Start(bg); err != nil {
			return err
		}
		// What `tandem serve` does on PostgreSQL: wake a target when
		// another replica committed work for it, every target on "".
		go func() {
			for t := range st.Listen(bg) {
				if t != "" {
					eng.Wake(t)
					continue
				}
				for name := range cfg.Targets {
					eng.Wake(name)
				}
			}
		}()
		return nil
	}
	g.stop = func() {
		stopHTTP()
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = eng.Shutdown(ctx)
		cancel()
		_ = st.Close()
	}
	return g, nil
}

func sqliteGateway(a, b *sink, dir string) (*gateway, error) {
	u, eng, st, stop, err := durableGateway(a, b, dir, false)
	if err != nil {
		return nil, err
	}
	return &gateway{url: u, eng: eng, st: st, stop: stop, start: func() error { return eng.Start(context.Background()) }}, nil
}

// loadSpread sends load to every gateway at once, conns split evenly, and
// merges the results.
func loadSpread(gs []*gateway, body []byte, conns int, dur time.Duration) result {
	per := max(1, conns/len(gs))
	rs := make([]result, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() { rs[i] = load(g.url+"/orders", body, per, dur, 1<<40, 202, nil) })
	}
	wg.Wait()
	var all result
	for _, r := range rs {
		all.n += r.n
		all.errs += r.errs
		all.lat = append(all.lat, r.lat...)
		all.elapsed = max(all.elapsed, r.elapsed)
	}
	return all
}

// pgRow is one line of the table.
type pgRow struct {
	name               string
	accepted           result
	delivered          float64
	drained            bool
	drainTime          time.Duration
	backlog, perCommit string
	perClaim           string // deliveries per claim while draining (PostgreSQL only)
}

// measureStore accepts for dur with the workers off, then starts them and
// counts what both targets receive until the backlog is delivered or dur
// passes.
func measureStore(name string, gs []*gateway, a, b *sink, dur time.Duration, conns int, commits func() string) (pgRow, error) {
	body := []byte(payload)
	loadSpread(gs, body, conns, dur/8) // warm up
	commits()
	r := loadSpread(gs, body, conns, dur)
	row := pgRow{name: name, accepted: r, perCommit: commits()}
	// Everything accepted so far, the warm-up included, is the backlog.
	backlog, err := pendingMessages(gs[0].st)
	if err != nil {
		return row, err
	}
	row.backlog = fmt.Sprint(backlog)
	a0, b0 := a.count.Load(), b.count.Load()
	perCommit(&claims, &claimed)
	start := time.Now()
	for _, g := range gs {
		if err := g.start(); err != nil {
			return row, err
		}
	}
	for time.Since(start) < dur {
		if a.count.Load()-a0 >= int64(backlog) && b.count.Load()-b0 >= int64(backlog) {
			row.drained = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	row.drainTime = time.Since(start)
	row.delivered = float64(min(a.count.Load()-a0, b.count.Load()-b0)) / row.drainTime.Seconds()
	row.perClaim = perCommit(&claims, &claimed)

	return row, nil
}

// pendingMessages is how many messages still have deliveries to make (each
// has one per target here).
func pendingMessages(st store.Store) (int, error) {
	stats, err := st.DeliveryStats(context.Background(), nil)
	if err != nil {
		return 0, err
	}
	most := 0
	for _, s := range stats {
		most = max(most, s.Due+s.Running+s.Scheduled+s.Waiting)
	}
	return most, nil
}

func benchPostgres(a, b *sink, dur time.Duration, conns int) error {
	dsn := os.Getenv("TANDEM_BENCH_POSTGRES")
	if dsn == "" {
		dsn = os.Getenv("TANDEM_TEST_POSTGRES")
	}
	if dsn == "" {
		return errors.New("-only pg needs a database: set TANDEM_BENCH_POSTGRES (or TANDEM_TEST_POSTGRES), e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	var rows []pgRow
	loadBefore := loadAverage()

	dir, err := os.MkdirTemp("", "tandem-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g, err := sqliteGateway(a, b, dir)
	if err != nil {
		return err
	}
	row, err := measureStore("SQLite, 1 process", []*gateway{g}, a, b, dur, conns, sqliteCommitStats)
	g.stop()
	if err != nil {
		return err
	}
	rows = append(rows, row)

	for _, n := range []int{1, 3} {
		schema, drop, err := benchSchema(dsn)
		if err != nil {
			return err
		}
		var gs []*gateway
		for range n {
			g, err := pgGateway(a, b, dsn, schema)
			if err != nil {
				drop()
				return err
			}
			gs = append(gs, g)
		}
		name := "PostgreSQL, 1 replica"
		if n > 1 {
			name = fmt.Sprintf("PostgreSQL, %d replicas in one process", n)
		}
		row, err := measureStore(name, gs, a, b, dur, conns, pgCommitStats)
		for _, g := range gs {
			g.stop()
		}
		drop()
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}

	fmt.Println("## PostgreSQL and replicas (respond: accepted, two targets)")
	fmt.Println()
	fmt.Printf("Accept: %s of load over %d connections with the workers off. Deliver: the workers start and drain that backlog to both targets, for at most %s.\n\n", dur, conns, dur)
	fmt.Println("| store | accepted/s | accept p50 | accept p99 | errors | accepts per commit | backlog | delivered to both/s | drained in | deliveries per claim |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		drain := r.drainTime.Round(10 * time.Millisecond).String()
		if !r.drained {
			drain = "not in " + dur.String()
		}
		fmt.Printf("| %s | %.0f | %s | %s | %d | %s | %s | %.0f | %s | %s |\n", r.name, r.accepted.rps(),
			r.accepted.pct(0.50).Round(time.Microsecond), r.accepted.pct(0.99).Round(time.Microsecond),
			r.accepted.errs, r.perCommit, r.backlog, r.delivered, drain, r.perClaim)
	}
	fmt.Println()
	fmt.Printf("(the load generator, every replica, both targets and PostgreSQL share this machine's %d CPUs; 1-minute load average %s before, %s after)\n",
		runtime.NumCPU(), loadBefore, loadAverage())
	fmt.Println()
	return nil
}

// benchSchema creates a fresh schema and returns it with a func that
// drops it.
func benchSchema(dsn string) (string, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "bench_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	return schema, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: drop schema:", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintln(os.Stderr, "bench: drop schema:", err)
		}
	}, nil
}

// loadAverage is the machine's 1-minute load average, or "?" off Linux.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
