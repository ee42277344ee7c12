package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// claimHookStore is a real store that calls after (when set) once a claim
// has taken deliveries, before they reach the engine.
type claimHookStore struct {
	store.Store
	after func([]record.Delivery)
}

func (s *claimHookStore) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	ds, err := s.Store.DeliveryClaim(ctx, p)
	if err == nil && len(ds) > 0 && s.after != nil {
		s.after(ds)
	}
	return ds, err
}

// TestShutdownReleasesClaimInProgress: a claim that returns as shutdown
// begins gives its deliveries back at once, uncounted and due, instead of
// leaving them running until the lease ends.
func TestShutdownReleasesClaimInProgress(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, fixed(200, `{}`))
	var eng *engine.Engine
	claimed := make(chan struct{})
	var once sync.Once
	st := &claimHookStore{Store: openSQLite(t)}
	st.after = func([]record.Delivery) {
		once.Do(func() {
			close(claimed)
			// Hold the claim's answer until shutdown has begun.
			eventually(t, "shutdown to begin", func() bool {
				return errors.Is(eng.Ready(context.Background()), engine.ErrShuttingDown)
			})
		})
	}
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	eng = startOn(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`, tg.srv.URL), st, engine.Options{Now: clk.Now})
	id := ingest(t, eng, "r", `{}`, "").Body.ID
	<-claimed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := st.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d := md.Deliveries[0]; d.Status != record.DeliveryScheduled || d.Attempts != 0 || d.NextAttemptAt.After(clk.Now()) {
		t.Errorf("after shutdown: %s, %d attempts, due at %v; want scheduled, uncounted, due now (%v)", d.Status, d.Attempts, d.NextAttemptAt, clk.Now())
	}
	if n := tg.calls.Load(); n != 0 {
		t.Errorf("the target got %d requests during shutdown", n)
	}
}

// TestShutdownWhileIngesting: ingest calls race Shutdown (run it with
// -race: Shutdown's Wait must never run beside an ingest's Add). Every
// call that succeeded ended before Shutdown returned; every call after
// Shutdown began gets ErrShuttingDown.
func TestShutdownWhileIngesting(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, fixed(200, `{}`))
	eng := startOn(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: fast, path: /fast, durable: false, respond: all, steps: [{ name: s, target: t }] }
`, tg.srv.URL), openSQLite(t), engine.Options{})
	var (
		mu      sync.Mutex
		lastOK  time.Time
		refused int
	)
	started := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				a, err := eng.Ingest(context.Background(), "fast", &engine.Inbound{Body: []byte(`{}`)})
				now := time.Now()
				mu.Lock()
				switch {
				case err == nil && a.HTTPStatus == http.StatusOK:
					lastOK = now
				case errors.Is(err, engine.ErrShuttingDown):
					refused++
				default:
					t.Errorf("ingest: %v", err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				select {
				case started <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range 16 {
		<-started // ingests are under way
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	wg.Wait()
	if _, err := eng.Ingest(context.Background(), "fast", &engine.Inbound{Body: []byte(`{}`)}); !errors.Is(err, engine.ErrShuttingDown) {
		t.Errorf("ingest after shutdown: %v, want ErrShuttingDown", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lastOK.After(down) {
		t.Errorf("an ingest succeeded %v after Shutdown returned", lastOK.Sub(down))
	}
	if refused == 0 {
		t.Errorf("no ingest was refused: shutdown came after all of them")
	}
}
