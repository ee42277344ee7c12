package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// readHookStore is a real store whose claims come back without their
// message attached, so the worker must read it, and whose MessageGet
// first calls before (when set): a test makes the read slow or holds it.
// The test itself reads through the inner Store.
type readHookStore struct {
	store.Store
	before func(ctx context.Context, id string, call int64) error
	calls  atomic.Int64
}

func (s *readHookStore) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	ds, err := s.Store.DeliveryClaim(ctx, p)
	for i := range ds {
		ds[i].Message = nil
	}
	return ds, err
}

func (s *readHookStore) MessageGet(ctx context.Context, id string) (*record.MessageDetail, error) {
	n := s.calls.Add(1)
	if s.before != nil {
		if err := s.before(ctx, id, n); err != nil {
			return nil, err
		}
	}
	return s.Store.MessageGet(ctx, id)
}

// startOn starts an engine for yaml on st (closed by the test's cleanup).
func startOn(t *testing.T, yaml string, st store.Store, opts engine.Options) *engine.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Config, opts.Store = cfg, st
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
	})
	return eng
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// inFlightTarget counts the requests of each Idempotency-Key that are in
// flight at once; each request takes hold.
type inFlightTarget struct {
	*target
	mu       sync.Mutex
	now      map[string]int
	most     int
	requests int
}

func newInFlightTarget(t *testing.T, hold time.Duration) *inFlightTarget {
	it := &inFlightTarget{now: map[string]int{}}
	it.target = newTarget(t, func(_ int64, r *http.Request) (int, http.Header, string) {
		key := r.Header.Get("Idempotency-Key")
		it.mu.Lock()
		it.now[key]++
		it.requests++
		it.most = max(it.most, it.now[key])
		it.mu.Unlock()
		time.Sleep(hold) // the request is in flight at the target
		it.mu.Lock()
		it.now[key]--
		it.mu.Unlock()
		return 200, nil, `{}`
	})
	return it
}

func (it *inFlightTarget) stats() (most, requests int) {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.most, it.requests
}

// TestSlowReadNeverSendsTwice: the worker reads the message before the
// request; when that read is slow, the lease may end meanwhile and the
// same engine claim the delivery again. A request is sent only while the
// lease still covers the target's whole timeout, and the reads before it
// are bounded by what the lease has to spare: a read past that gives the
// claim back uncounted. The target must never see two requests of one
// delivery in flight at once.
func TestSlowReadNeverSendsTwice(t *testing.T) {
	t.Parallel()
	// lease = total 1s + margin 300ms: 300ms to spare for the reads.
	tg := newInFlightTarget(t, 400*time.Millisecond)
	st := &readHookStore{Store: openSQLite(t)}
	st.before = func(ctx context.Context, _ string, call int64) error {
		if call > 1 {
			return nil
		}
		// The first read takes 1.5s, past the lease's end, unless the
		// caller gives up sooner.
		t := time.NewTimer(1500 * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	eng := startOn(t, fmt.Sprintf(`
targets:
  t: { url: %q, timeout: { total: 1s } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), st, engine.Options{LeaseMargin: 300 * time.Millisecond})
	id := ingest(t, eng, "r", `{}`, "").Body.ID
	md := waitMessage(t, st.Store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	// The slow first read would have ended at 1.5s; let that moment
	// pass, so a request it would have sent is seen.
	eventually(t, "the slow read's end", func() bool { return time.Since(md.Message.CreatedAt) > 2*time.Second })
	most, requests := tg.stats()
	if most != 1 {
		t.Errorf("the target had %d requests of one delivery in flight at once", most)
	}
	if requests != 1 || md.Deliveries[0].Attempts != 1 {
		t.Errorf("the target got %d requests, the delivery counts %d attempts; want 1 and 1", requests, md.Deliveries[0].Attempts)
	}
}

// TestTooLittleLeaseLeftGivesBack: a claim whose lease no longer covers
// the target's total timeout (here: the engine's clock moved on while the
// claim waited to read its message) is given back, uncounted, and sent
// under a fresh claim.
func TestTooLittleLeaseLeftGivesBack(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tg := newInFlightTarget(t, 0)
	held := make(chan struct{})
	goOn := make(chan struct{})
	st := &readHookStore{Store: openSQLite(t)}
	st.before = func(_ context.Context, _ string, call int64) error {
		if call == 1 {
			close(held)
			<-goOn
		}
		return nil
	}
	eng := startOn(t, fmt.Sprintf(`
targets:
  t: { url: %q, timeout: { total: 10s, lease_margin: 5s } }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), st, engine.Options{Now: clk.Now})
	id := ingest(t, eng, "r", `{}`, "").Body.ID
	<-held
	// 6s of the 15s lease pass during the read: 9s left, less than the
	// 10s an attempt may take.
	clk.Advance(6 * time.Second)
	close(goOn)
	md := waitMessage(t, st.Store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	if _, requests := tg.stats(); requests != 1 || md.Deliveries[0].Attempts != 1 {
		t.Errorf("the target got %d requests, the delivery counts %d attempts; want 1 and 1", requests, md.Deliveries[0].Attempts)
	}
	if n := st.calls.Load(); n < 2 {
		t.Errorf("the message was read %d times; want a second read under a fresh claim", n)
	}
}
