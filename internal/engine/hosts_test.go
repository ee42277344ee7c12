package engine_test

import (
	"fmt"
	"testing"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	tgt "github.com/tandem-run/tandem/internal/target"
)

// TestHostsDurable: a durable route's deliveries spread over a target's
// three hosts; one host that always answers 503 is ejected after three
// failures, each delivery that met it is retried on another host, and
// every message succeeds.
func TestHostsDurable(t *testing.T) {
	t.Parallel()
	ok1, ok2 := newKeyTarget(t, 0, fixed(200, `{}`)), newKeyTarget(t, 0, fixed(200, `{}`))
	bad := newKeyTarget(t, 0, fixed(503, `{}`))
	yaml := fmt.Sprintf(`
targets:
  api:
    urls: ["%s/x", "%s/x", "%s/x"]
    eject: { failures: 3, cool_off: 1h }
    breaker: { disabled: true }
    retry: { max_attempts: 5, initial: 5ms, max: 10ms }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: api }] }
`, ok1.srv.URL, bad.srv.URL, ok2.srv.URL)
	s := start(t, yaml, engine.Options{})
	var ids []string
	for range 30 {
		ids = append(ids, ingest(t, s.eng, "r", `{}`, "").Body.ID)
	}
	for _, id := range ids {
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
		key := id + ".s"
		if n := ok1.counts()[key] + ok2.counts()[key]; n != 1 {
			t.Errorf("message %s reached the good hosts %d times", id, n)
		}
		if n := bad.counts()[key]; n > 1 {
			t.Errorf("message %s was retried on the failing host (%d times)", id, n)
		}
	}
	// Attempts already in flight when the third failure came may have
	// reached it too; once ejected, it gets none for the cool-off.
	before := bad.calls.Load()
	if before < 3 || before > 13 {
		t.Errorf("the failing host got %d attempts, want 3 and those in flight", before)
	}
	for range 30 {
		id := ingest(t, s.eng, "r", `{}`, "").Body.ID
		waitMessage(t, s.store, id, func(md *record.MessageDetail) bool { return md.Message.Status == record.MessageSucceeded })
	}
	if n := bad.calls.Load(); n != before {
		t.Errorf("the ejected host got %d more attempts during its cool-off", n-before)
	}
	if ok1.calls.Load() == 0 || ok2.calls.Load() == 0 {
		t.Errorf("good hosts got %d and %d attempts: not spread", ok1.calls.Load(), ok2.calls.Load())
	}
	for _, h := range s.eng.TargetHealth() {
		if h.Name == "api" && (len(h.Hosts) != 3 || h.Hosts[1].State != tgt.HostEjected) {
			t.Errorf("hosts %+v", h.Hosts)
		}
	}
}
