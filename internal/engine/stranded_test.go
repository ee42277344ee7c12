package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// TestRemovedTargetDeadLettered: an engine that starts on a store holding
// deliveries of a target its config no longer has dead-letters them with
// the reason, settling their messages; once the target is configured
// again, they can be replayed and are delivered.
func TestRemovedTargetDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := openSQLite(t)
	old := newTarget(t, fixed(200, `{}`))
	kept := newTarget(t, fixed(200, `{}`))
	// Deliveries written under an earlier config that had target "crm".
	ids := []string{"m-1", "m-2"}
	for _, id := range ids {
		if _, err := st.MessageInsert(ctx, insertOne(id, "r", "s", "crm", clk.Now().Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.MessageInsert(ctx, insertOne("m-kept", "k", "s", "kept", clk.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}

	// The config now calls it "crm2".
	eng := startOn(t, fmt.Sprintf(`
targets:
  crm2: { url: %q }
  kept: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: crm2 }] }
  - { name: k, path: /k, steps: [{ name: s, target: kept }] }
`, old.srv.URL, kept.srv.URL), st, engine.Options{Now: clk.Now})
	want := `target "crm" is no longer configured`
	for _, id := range ids {
		md, err := st.MessageGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d := md.Deliveries[0]; d.Status != record.DeliveryDead || d.LastError != want || d.Attempts != 0 {
			t.Errorf("%s: %s, %q, %d attempts; want dead, %q, none", id, d.Status, d.LastError, d.Attempts, want)
		}
		if md.Message.Status != record.MessageFailed {
			t.Errorf("%s: message %s, want failed", id, md.Message.Status)
		}
	}
	if md, err := st.MessageGet(ctx, "m-kept"); err != nil || md.Deliveries[0].Status != record.DeliveryScheduled {
		t.Errorf("a configured target's delivery was touched: %+v, %v", md.Deliveries[0], err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := eng.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	// The target is back under its name: its dead letters replay.
	back := startOn(t, fmt.Sprintf(`
targets:
  crm: { url: %q }
  kept: { url: %q }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: crm }] }
  - { name: k, path: /k, steps: [{ name: s, target: kept }] }
`, old.srv.URL, kept.srv.URL), st, engine.Options{Now: clk.Now})
	res, err := back.Replay(ctx, &store.DeliveryReplayParams{Target: "crm"})
	if err != nil || len(res.Replayed) != len(ids) {
		t.Fatalf("replay: %v, %d replayed, want %d", err, len(res.Replayed), len(ids))
	}
	for _, id := range ids {
		waitMessage(t, st, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	}
	if n := old.calls.Load(); n != int64(len(ids)) {
		t.Errorf("the target got %d requests, want %d", n, len(ids))
	}
}
