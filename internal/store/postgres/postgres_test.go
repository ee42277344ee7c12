package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/storetest"
)

// testDSN is the database the tests use. Without TANDEM_TEST_POSTGRES the
// tests skip, except in CI, where a missing database is a failure.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("TANDEM_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TANDEM_TEST_POSTGRES is unset, and CI must run the PostgreSQL tests")
		}
		t.Skip("TANDEM_TEST_POSTGRES is unset; set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return dsn
}

// newSchema creates an empty schema for one test and drops it afterwards.
func newSchema(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

// openStore opens a store on schema and closes it when the test ends.
func openStore(t testing.TB, schema string, edit ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{DSN: testDSN(t), Schema: schema, MaxConns: 8, Logger: slog.New(slog.DiscardHandler)}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, newSchema(t))
	})
}

func TestMigrate(t *testing.T) {
	schema := newSchema(t)
	ctx := context.Background()

	s := openStore(t, schema, func(c *Config) { c.SkipMigrate = true })
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("status before: %v", err)
	}
	if len(st) < 2 {
		t.Fatalf("want at least 2 migrations, got %+v", st)
	}
	for _, m := range st {
		if m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("migration %d applied before Migrate", m.Version)
		}
	}

	// Replicas starting together: every Open migrates, one does the work.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, Config{DSN: testDSN(t), Schema: schema, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	st, err = s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("status after: %v", err)
	}
	// Versions rise; gaps are allowed (each branch of work has its own).
	for i, m := range st {
		if !m.Applied || m.AppliedAt.IsZero() || m.Unknown || m.Name == "" || (i > 0 && m.Version <= st[i-1].Version) || (i == 0 && m.Version != 1) {
			t.Fatalf("after migrate: %+v", st)
		}
	}
	// Re-open and migrate again: nothing to do, data kept.
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	s2 := openStore(t, schema)
	if _, err := s2.MessageInsert(ctx, &store.MessageInsertParams{Message: record.Message{ID: "m1", Route: "r"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	s3 := openStore(t, schema)
	if _, err := s3.MessageGet(ctx, "m1"); err != nil {
		t.Fatalf("get after re-open: %v", err)
	}
	st2, err := s3.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for i := range st {
		if !st2[i].AppliedAt.Equal(st[i].AppliedAt) {
			t.Fatalf("re-open applied migration %d again", st[i].Version)
		}
	}

	// A newer tandem migrated the database: this one still opens, and
	// lists the version it does not know.
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	s4 := openStore(t, schema)
	st4, err := s4.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := st4[len(st4)-1]
	if last.Version != 9999 || !last.Unknown || !last.Applied || len(st4) != len(st)+1 {
		t.Fatalf("with a future migration: %+v", st4)
	}
}

func TestOpenErrors(t *testing.T) {
	testDSN(t)
	ctx := context.Background()
	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"refused", "postgres://postgres@127.0.0.1:1/test?sslmode=disable", "connect postgres 127.0.0.1:1/test: "},
		{"no database", "postgres://postgres@127.0.0.1:5432/tandem_no_such_db?sslmode=disable", `connect postgres 127.0.0.1:5432/tandem_no_such_db: database "tandem_no_such_db" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(ctx, Config{DSN: tt.dsn})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("error %q does not wrap ErrUnavailable", err)
			}
			msg := err.Error()
			t.Log(msg)
			if len(msg) < len(tt.want) || msg[:len(tt.want)] != tt.want {
				t.Fatalf("error: got %q, want it to start with %q", msg, tt.want)
			}
			for _, c := range msg {
				if c == '\n' {
					t.Fatalf("error spans lines: %q", msg)
				}
			}
		})
	}
}

// Two replicas on one database racing 50 inserts with one key create one
// message.
func TestIdempotencyAcrossStores(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ctx := context.Background()
	const n = 50
	var wg sync.WaitGroup
	res := make([]*store.MessageInsertResult, n)
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			res[i], errs[i] = s.MessageInsert(ctx, &store.MessageInsertParams{
				Message: record.Message{ID: fmt.Sprintf("m%02d", i), Route: "r", IdempotencyKey: "k", BodyHash: "h"},
				Deliveries: []record.Delivery{{
					ID: fmt.Sprintf("d%02d", i), Step: "s", Target: "t", Status: record.DeliveryScheduled,
				}},
			})
		})
	}
	wg.Wait()
	created := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("insert %d: %v", i, errs[i])
		}
		created[res[i].Message.ID] = true
	}
	if len(created) != 1 {
		t.Fatalf("answers name %d messages, want 1: %v", len(created), created)
	}
	var count int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Fatalf("%d messages stored, want 1", count)
	}
}

// Two replicas claiming the same target never get the same delivery.
func TestClaimAcrossStores(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 200
	for i := range n / 10 {
		var ds []record.Delivery
		for j := range 10 {
			ds = append(ds, record.Delivery{
				ID: fmt.Sprintf("d%03d", i*10+j), Step: fmt.Sprintf("s%d", j), Target: "t",
				Status: record.DeliveryScheduled, NextAttemptAt: now,
			})
		}
		if _, err := a.MessageInsert(ctx, &store.MessageInsertParams{
			Message: record.Message{ID: fmt.Sprintf("m%02d", i), Route: "r"}, Deliveries: ds, Now: &now,
		}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu  sync.Mutex
		got = map[string]string{}
		wg  sync.WaitGroup
	)
	for w := range 6 {
		s := []*Store{a, b}[w%2]
		owner := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 4, LeaseFor: time.Minute, Owner: owner, Now: &now})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, dup := got[d.ID]; dup {
						t.Errorf("%s claimed by %s and %s", d.ID, prev, owner)
					}
					got[d.ID] = owner
				}
				mu.Unlock()
				// Complete half, so claims and completes interleave.
				for _, d := range ds[:len(ds)/2] {
					_, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
						DeliveryID: d.ID, Owner: owner, LeaseToken: d.LeaseToken, Status: record.DeliverySucceeded,
						Attempt: record.Attempt{N: 1, StartedAt: now, Outcome: record.OutcomeSuccess}, Now: &now,
					})
					if err != nil {
						t.Errorf("complete %s: %v", d.ID, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("claimed %d deliveries, want %d", len(got), n)
	}
}

// Concurrent completes of sibling deliveries on two replicas resolve the
// step that waits on all of them exactly once.
func TestSiblingCompletesAcrossStores(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const msgs, fan = 20, 6
	for i := range msgs {
		var ds []record.Delivery
		var after []string
		for j := range fan {
			step := fmt.Sprintf("s%d", j)
			after = append(after, step)
			ds = append(ds, record.Delivery{
				ID: fmt.Sprintf("m%02d-%s", i, step), Step: step, Target: "fan", Required: true,
				Status: record.DeliveryScheduled, NextAttemptAt: now,
			})
		}
		ds = append(ds, record.Delivery{ID: fmt.Sprintf("m%02d-join", i), Step: "join", Target: "join", After: after, Required: true, Status: record.DeliveryWaiting})
		if _, err := a.MessageInsert(ctx, &store.MessageInsertParams{Message: record.Message{ID: fmt.Sprintf("m%02d", i), Route: "r"}, Deliveries: ds, Now: &now}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ready = map[string]int{}
	)
	for w := range 8 {
		s := []*Store{a, b}[w%2]
		owner := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "fan", Limit: 3, LeaseFor: time.Minute, Owner: owner, Now: &now})
				if err != nil || len(ds) == 0 {
					if err != nil {
						t.Errorf("claim: %v", err)
					}
					return
				}
				var cw sync.WaitGroup
				for _, d := range ds {
					cw.Go(func() {
						res, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
							DeliveryID: d.ID, Owner: owner, LeaseToken: d.LeaseToken, Status: record.DeliverySucceeded,
							Attempt: record.Attempt{N: 1, StartedAt: now, Outcome: record.OutcomeSuccess}, Now: &now,
						})
						if err != nil {
							t.Errorf("complete %s: %v", d.ID, err)
							return
						}
						mu.Lock()
						for _, r := range res.Ready {
							ready[r.ID]++
						}
						mu.Unlock()
					})
				}
				cw.Wait()
			}
		})
	}
	wg.Wait()
	if len(ready) != msgs {
		t.Fatalf("%d joins made ready, want %d", len(ready), msgs)
	}
	for id, n := range ready {
		if n != 1 {
			t.Fatalf("%s made ready %d times", id, n)
		}
	}
}

func TestListen(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := a.Listen(ctx)
	wait := func(want string) {
		t.Helper()
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		for {
			select {
			case got, ok := <-ch:
				if !ok {
					t.Fatal("listen channel closed")
				}
				if got == want {
					return
				}
			case <-timer.C:
				t.Fatalf("no notification %q within 10s", want)
			}
		}
	}
	wait("") // listening
	now := time.Now()
	// An insert on the other replica wakes this one.
	_, err := b.MessageInsert(ctx, &store.MessageInsertParams{
		Message: record.Message{ID: "m1", Route: "r"},
		Deliveries: []record.Delivery{
			{ID: "d1", Step: "a", Target: "ta", Status: record.DeliveryScheduled, NextAttemptAt: now},
			{ID: "d2", Step: "b", Target: "tb", After: []string{"a"}, Status: record.DeliveryWaiting},
		},
		Now: &now,
	})
	if err != nil {
		t.Fatal(err)
	}
	wait("ta")
	// A completion that makes a dependant ready wakes its target.
	ds, err := b.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "ta", Limit: 1, LeaseFor: time.Minute, Owner: "w", Now: &now})
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim: %v %v", ds, err)
	}
	if _, err := b.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
		DeliveryID: "d1", Owner: "w", LeaseToken: 1, Status: record.DeliverySucceeded, Attempt: record.Attempt{N: 1}, Now: &now,
	}); err != nil {
		t.Fatal(err)
	}
	wait("tb")

	// Cancelling closes the channel.
	cancel()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("channel not closed after cancel")
		}
	}
}

// Listening on another schema's store hears nothing of this one.
func TestListenSchemasApart(t *testing.T) {
	a := openStore(t, newSchema(t))
	b := openStore(t, newSchema(t))
	if a.channel == b.channel {
		t.Fatalf("two schemas share channel %q", a.channel)
	}
}

func TestHeartbeat(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := 15 * time.Second
	steps := []struct {
		name  string
		s     *Store
		owner string
		at    time.Duration
		want  int
	}{
		{"first alone", a, "r1", 0, 1},
		{"second sees first", b, "r2", time.Second, 2},
		{"first sees second", a, "r1", 5 * time.Second, 2},
		{"again", a, "r1", 10 * time.Second, 2},
		{"second expired", a, "r1", 17 * time.Second, 1},
		{"third joins", b, "r3", 18 * time.Second, 2},
		{"second back", b, "r2", 19 * time.Second, 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := st.s.Heartbeat(ctx, st.owner, t0.Add(st.at), ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got != st.want {
				t.Fatalf("live: got %d, want %d", got, st.want)
			}
		})
	}
	if err := b.Leave(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Heartbeat(ctx, "r1", t0.Add(20*time.Second), ttl); err != nil || got != 2 {
		t.Fatalf("after leave: %d %v, want 2", got, err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	_, err := Open(context.Background(), Config{DSN: "postgres://u:s3cret@host:notaport/db"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad dsn: %v", err)
	}
}

// A role or database default of synchronous_commit=off, or an "options"
// parameter in the DSN, cannot make tandem acknowledge before the WAL is
// flushed: its sessions run synchronous_commit=on, or Open refuses with
// the reason; store.unsafe_async_commit leaves the setting alone.
func TestSynchronousCommitEnforced(t *testing.T) {
	schema := newSchema(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: the role's cleanup below runs first (a
	// defer would close the connection before it, and leave the role).
	t.Cleanup(func() { admin.Close(context.Background()) })
	role := "async_" + schema
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"ALTER ROLE " + role + " SET synchronous_commit = off",
		"GRANT ALL ON SCHEMA " + schema + " TO " + role,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = admin.Exec(context.Background(), "DROP ROLE "+role)
	})
	u, err := url.Parse(testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	show := func(s *Store) string {
		t.Helper()
		var v string
		if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	s := openStore(t, schema, func(c *Config) { c.DSN = u.String() })
	if v := show(s); v != "on" {
		t.Errorf("role default off: the session runs synchronous_commit=%s, want on", v)
	}
	s.Close()

	unsafe := openStore(t, schema, func(c *Config) { c.DSN = u.String(); c.UnsafeAsyncCommit = true })
	if v := show(unsafe); v != "off" {
		t.Errorf("with unsafe_async_commit: synchronous_commit=%s, want the role's off", v)
	}
	unsafe.Close()

	// Encoded by hand: pgx reads a "+" in the query literally.
	u.RawQuery += "&options=-c%20synchronous_commit%3Doff"
	opts, err := Open(ctx, Config{DSN: u.String(), Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	switch {
	case err != nil:
		if !strings.Contains(err.Error(), "unsafe_async_commit") {
			t.Errorf("options off: refused with %v, want the reason", err)
		}
	default:
		if v := show(opts); v != "on" {
			t.Errorf("options off: the session runs synchronous_commit=%s, want on or a refusal", v)
		}
		opts.Close()
	}
}
