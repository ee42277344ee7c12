package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// claimCounter counts the claims that took deliveries, and the deliveries
// inserted already claimed.
type claimCounter struct {
	store.Store
	leased  atomic.Int64
	mu      sync.Mutex
	claimed map[string]int // by step, claims of the loop
}

func (c *claimCounter) DeliveryClaim(ctx context.Context, p *store.DeliveryClaimParams) ([]record.Delivery, error) {
	ds, err := c.Store.DeliveryClaim(ctx, p)
	c.mu.Lock()
	for _, d := range ds {
		c.claimed[d.Step]++
	}
	c.mu.Unlock()
	return ds, err
}

func (c *claimCounter) claims(step string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claimed[step]
}

func (c *claimCounter) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	res, err := c.Store.MessageInsert(ctx, p)
	if err == nil {
		c.leased.Add(int64(len(res.Leased)))
	}
	return res, err
}

// TestInsertLease: with the targets idle, a durable message's first steps
// are inserted already claimed and sent from the ingest: no claim takes
// them, and they are delivered and recorded like any other. A step that
// waits goes the usual way (made ready by the complete, claimed with it).
// An idempotent repeat leases nothing and sends nothing again.
func TestInsertLease(t *testing.T) {
	t.Parallel()
	a := newTarget(t, fixed(200, `{}`))
	b := newTarget(t, fixed(200, `{}`))
	counted := &claimCounter{claimed: map[string]int{}}
	su := startWrapped(t, fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    deadline: 30s
    steps: [{ name: one, target: a }, { name: two, target: b }, { name: three, target: b, after: [one] }]
`, a.srv.URL, b.srv.URL), engine.Options{PollInterval: 20 * time.Millisecond}, func(st store.Store) store.Store {
		counted.Store = st
		return counted
	})
	eng, st, ctx := su.eng, su.store, context.Background()
	// Let each loop's first claim find nothing: the targets are idle.
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		ans := ingest(t, eng, "r", `{"warm":1}`, "warm")
		if ans.HTTPStatus == http.StatusOK && counted.leased.Load() >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery inserted claimed: leased %d", counted.leased.Load())
		}
	}
	leased0, one0, two0 := counted.leased.Load(), counted.claims("one"), counted.claims("two")
	ans := ingest(t, eng, "r", `{"x":1}`, "k1")
	if ans.HTTPStatus != http.StatusOK || ans.Body.Steps["one"].HTTPStatus != 200 || ans.Body.Steps["two"].HTTPStatus != 200 || ans.Body.Steps["three"].HTTPStatus != 200 {
		t.Fatalf("answer %d %+v", ans.HTTPStatus, ans.Body)
	}
	if got := counted.leased.Load() - leased0; got != 2 {
		t.Errorf("steps inserted claimed: %d, want 2 (one and two; three waits)", got)
	}
	if one, two := counted.claims("one")-one0, counted.claims("two")-two0; one != 0 || two != 0 {
		t.Errorf("steps one and two taken by a claim of the loop: %d and %d, want none", one, two)
	}
	md, err := st.MessageGet(ctx, ans.Body.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range md.Deliveries {
		if d.Status != record.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("%s: status %s after %d attempts, want succeeded after 1", d.Step, d.Status, d.Attempts)
		}
	}
	a0, b0 := a.calls.Load(), b.calls.Load()
	if rep := ingest(t, eng, "r", `{"x":1}`, "k1"); !rep.Repeat {
		t.Fatalf("repeat: %+v", rep)
	}
	if counted.leased.Load() != leased0+2 || a.calls.Load() != a0 || b.calls.Load() != b0 {
		t.Errorf("the repeat leased or sent: leased %d, a +%d, b +%d", counted.leased.Load()-leased0-2, a.calls.Load()-a0, b.calls.Load()-b0)
	}
}
