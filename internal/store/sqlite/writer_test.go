package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

func testMessage(id, key, body string) *store.MessageInsertParams {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	return &store.MessageInsertParams{
		Message: record.Message{ID: id, Route: "r", IdempotencyKey: key, Body: []byte(body), BodyHash: body},
		Deliveries: []record.Delivery{
			{ID: id + "-a", Step: "a", Target: "ta", Required: true, Status: record.DeliveryScheduled},
		},
		Now: &now,
	}
}

// waitUntil polls cond until it holds; it fails the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// stallWriter occupies the writer with an op that waits until the returned
// func is called, so the ops queued meanwhile form the next batch together.
func stallWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.submit(context.Background(), func(*wtx) error {
			close(entered)
			<-gate
			return nil
		})
	}()
	<-entered
	return func() { close(gate) }
}

type result struct {
	res *store.MessageInsertResult
	err error
}

// insertAsync starts MessageInsert calls and returns their results' channels.
func insertAsync(s *Store, ps ...*store.MessageInsertParams) []chan result {
	out := make([]chan result, len(ps))
	for i, p := range ps {
		out[i] = make(chan result, 1)
		go func() {
			res, err := s.MessageInsert(context.Background(), p)
			out[i] <- result{res, err}
		}()
	}
	return out
}

// TestBatchIsolation puts a failing op between good ones in one batch: the
// good ones commit, the failing ones leave no trace.
func TestBatchIsolation(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	s := openTest(t, Config{OnBatch: func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }})
	ctx := context.Background()
	if _, err := s.MessageInsert(ctx, testMessage("m0", "k", "body")); err != nil {
		t.Fatal(err)
	}

	dup := testMessage("m2", "", "x")
	dup.Deliveries = append(dup.Deliveries, record.Delivery{ID: "m0-a", Step: "b", Target: "tb"}) // id taken: fails after writing m2
	release := stallWriter(t, s)
	results := insertAsync(s,
		testMessage("m1", "", "x"),
		dup,
		testMessage("m3", "k", "other body"), // idempotency conflict: fails before writing
		testMessage("m4", "k", "body"),       // a repeat of m0
		testMessage("m5", "", "x"),
	)
	waitUntil(t, "five queued ops", func() bool { return len(s.w.ingest) == 5 })
	release()

	want := []struct {
		err      error
		existing bool
	}{{nil, false}, {errors.New("any"), false}, {store.ErrIdempotencyConflict, true}, {nil, true}, {nil, false}}
	for i, ch := range results {
		r := <-ch
		switch {
		case want[i].err == nil && r.err != nil:
			t.Errorf("op %d: %v", i+1, r.err)
		case want[i].err != nil && r.err == nil:
			t.Errorf("op %d: no error", i+1)
		case errors.Is(want[i].err, store.ErrIdempotencyConflict) && !errors.Is(r.err, store.ErrIdempotencyConflict):
			t.Errorf("op %d: got %v, want a conflict", i+1, r.err)
		}
		if r.res != nil && r.res.Existing != want[i].existing {
			t.Errorf("op %d: existing %v, want %v", i+1, r.res.Existing, want[i].existing)
		}
	}
	for _, id := range []string{"m1", "m5"} {
		if _, err := s.MessageGet(ctx, id); err != nil {
			t.Errorf("get %s: %v", id, err)
		}
	}
	for _, id := range []string{"m2", "m3", "m4"} {
		if _, err := s.MessageGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %s: got %v, want not found", id, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if batches[len(batches)-1] != 5 {
		t.Errorf("batch sizes %v: the five ops did not share a batch", batches)
	}
}

// TestCommitFailure: when the commit fails, every op of the batch fails,
// also those whose own statements went through.
func TestCommitFailure(t *testing.T) {
	s := openTest(t, Config{})
	ctx := context.Background()
	release := stallWriter(t, s)
	results := insertAsync(s, testMessage("m1", "", "x"))
	// m1 must run first: statements after the ROLLBACK would autocommit.
	waitUntil(t, "the insert queued", func() bool { return len(s.w.ingest) == 1 })
	breakErr := make(chan error, 1)
	go func() {
		// On the ingest queue, behind m1: delivery work would run first.
		breakErr <- s.submitInsert(ctx, 0, func(t *wtx) error {
			// Ends the batch's transaction under the writer's feet, so
			// its COMMIT fails.
			_, err := t.conn.ExecContext(t.ctx, "ROLLBACK")
			return err
		})
	}()
	waitUntil(t, "two queued ops", func() bool { return len(s.w.ingest) == 2 })
	release()
	if r := <-results[0]; !errors.Is(r.err, store.ErrUnavailable) {
		t.Fatalf("insert in a failed batch: got %v, want ErrUnavailable", r.err)
	}
	if err := <-breakErr; err == nil {
		t.Fatal("the op that broke the batch: no error")
	}
	if _, err := s.MessageGet(ctx, "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get m1: got %v, want not found", err)
	}
	// The writer goes on with the next batch.
	if _, err := s.MessageInsert(ctx, testMessage("m2", "", "x")); err != nil {
		t.Fatalf("insert after a failed batch: %v", err)
	}
}

func TestCanceledCaller(t *testing.T) {
	s := openTest(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.MessageInsert(ctx, testMessage("m1", "", "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("insert with a canceled context: %v", err)
	}
	if _, err := s.MessageGet(context.Background(), "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a canceled insert was written: %v", err)
	}
}

// TestAckedWritesSurviveClose races inserts against Close, then reopens the
// file: every insert that was answered without error is there.
func TestAckedWritesSurviveClose(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "tandem.db")
	s := openTest(t, Config{DSN: dsn})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []string
		n     atomic.Int64
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.MessageInsert(context.Background(), testMessage(id, "", "x")); err != nil {
					return
				}
				n.Add(1)
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	waitUntil(t, "some inserts", func() bool { return n.Load() >= 100 })
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()

	s2 := openTest(t, Config{DSN: dsn})
	for _, id := range acked {
		if _, err := s2.MessageGet(context.Background(), id); err != nil {
			t.Fatalf("acked message %s after reopen: %v", id, err)
		}
	}
}

func TestMigrations(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "tandem.db")
	s := openTest(t, Config{DSN: dsn})
	ctx := context.Background()
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 || st[0].Version != 1 || st[0].Name != "init" || !st[0].Applied || st[0].AppliedAt.IsZero() {
		t.Fatalf("status: %+v", st)
	}
	for _, m := range st {
		if !m.Applied || m.Unknown {
			t.Fatalf("migration not applied: %+v", m)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing again.
	s = openTest(t, Config{DSN: dsn})
	again, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].AppliedAt.Equal(st[0].AppliedAt) {
		t.Fatalf("migration 1 applied twice: %v then %v", st[0].AppliedAt, again[0].AppliedAt)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A database a newer binary migrated is refused.
	raw := openRaw(t, dsn)
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 1)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if s, err := Open(ctx, Config{DSN: dsn}); err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Fatal("open without a dsn: no error")
	}
	dsn := "file:" + filepath.Join(t.TempDir(), "missing-dir", "x.db")
	if _, err := Open(context.Background(), Config{DSN: dsn}); err == nil {
		t.Fatal("open in a missing directory: no error")
	}
}

func TestInvalidCursor(t *testing.T) {
	s := openTest(t, Config{})
	_, err := s.MessageList(context.Background(), &store.MessageListParams{Cursor: "!!not a cursor"})
	if !errors.Is(err, store.ErrInvalidCursor) {
		t.Fatalf("message list: got %v, want ErrInvalidCursor", err)
	}
	_, err = s.DeliveryList(context.Background(), &store.DeliveryListParams{Cursor: store.EncodeCursor(time.Time{}, "x")[1:]})
	if !errors.Is(err, store.ErrInvalidCursor) {
		t.Fatalf("delivery list: got %v, want ErrInvalidCursor", err)
	}
}

// TestIngestShare: while delivery work shares a batch, inserts may make
// at most as many deliveries due as the work ops finish, plus
// ingestFloor; the rest wait for the next batch, and all commit. Without
// delivery work, inserts fill the batch.
func TestIngestShare(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	s := openTest(t, Config{OnBatch: func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }})
	ctx := context.Background()
	noop := func(*wtx) error { return nil }
	run := func(s *Store, work, inserts int) []int {
		t.Helper()
		mu.Lock()
		batches = nil
		mu.Unlock()
		// The stall is an insert, so it finishes no delivery.
		entered, gate := make(chan struct{}), make(chan struct{})
		go func() {
			_ = s.submitInsert(ctx, 0, func(*wtx) error { close(entered); <-gate; return nil })
		}()
		<-entered
		release := func() { close(gate) }
		var wg sync.WaitGroup
		errs := make(chan error, work+inserts)
		for range inserts {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- s.submitInsert(ctx, 2, noop) }()
		}
		for range work {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- s.submit(ctx, noop) }()
		}
		waitUntil(t, "ops queued", func() bool { return len(s.w.queue) == work && len(s.w.ingest) == inserts })
		release()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(batches[1:]) // the first is the stall
	}
	// 10 work ops finish 10 deliveries: 14 may become due, 7 inserts.
	got := run(s, 10, 40)
	if len(got) < 2 || got[0] != 10+(10+ingestFloor)/2 {
		t.Errorf("with delivery work: batches %v, want the first to hold 10 work ops and %d inserts", got, (10+ingestFloor)/2)
	}
	if sum(got) != 50 {
		t.Errorf("batches %v: want 50 ops committed", got)
	}
	// The batch after still holds inserts to the recent rate: a batch
	// that happens to hold no delivery op does not open the gate.
	if len(got) < 2 || got[1] >= 40-(10+ingestFloor)/2 {
		t.Errorf("after delivery work: batches %v, want the next one held to the recent rate", got)
	}
	// A store whose deliveries do not flow (dead targets) takes them all.
	fresh := openTest(t, Config{OnBatch: func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }})
	got = run(fresh, 0, 40)
	if len(got) != 1 || got[0] != 40 {
		t.Errorf("inserts alone: batches %v, want one of 40", got)
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// TestClaimAttachesRecent: a claim attaches the message from the recent
// inserts (a copy each, the body its own), and reads one the ring has
// let go.
func TestClaimAttachesRecent(t *testing.T) {
	s := openTest(t, Config{})
	s.recent = newRecent(2)
	ctx := context.Background()
	for _, id := range []string{"m1", "m2", "m3"} {
		p := testMessage(id, "", "body of "+id)
		if _, err := s.MessageInsert(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Message.Body[0] = 'X' // the caller reuses its buffer
	}
	if missing := s.recent.attach([]record.Delivery{{MessageID: "m1"}}); len(missing) != 1 {
		t.Fatalf("m1 should have left the ring of 2: missing %v", missing)
	}
	now := time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)
	ds, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "ta", Limit: 10, LeaseFor: time.Minute, Owner: "w", Now: &now})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("claimed %d, want 3", len(ds))
	}
	for _, d := range ds {
		if d.Message == nil || d.Message.ID != d.MessageID || string(d.Message.Body) != "body of "+d.MessageID {
			t.Errorf("delivery %s: message %+v", d.ID, d.Message)
		}
	}
}
