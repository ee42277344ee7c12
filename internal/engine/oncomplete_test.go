package engine_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
)

// TestOnCompleteDoesNotChangeTheOutcome: a respond: all caller is answered
// when the steps are final, without the summary (which waits on a held
// target) and without it among the answer's steps; a summary that fails
// for good is a dead letter of its own and the message keeps its status.
func TestOnCompleteDoesNotChangeTheOutcome(t *testing.T) {
	release := make(chan struct{})
	pay := newTarget(t, fixed(200, `{"id":"ch_1"}`))
	crm := newTarget(t, func(n int64, _ *http.Request) (int, http.Header, string) {
		<-release
		return 400, nil, `{"error":"no"}`
	})
	s := start(t, fmt.Sprintf(`targets:
  pay: {url: %q}
  crm: {url: %q, retry: {max_attempts: 1}}
routes:
  - name: orders
    path: /orders
    respond: all
    steps: [{name: charge, target: pay}]
    on_complete: {target: crm}
`, pay.srv.URL, crm.srv.URL), engine.Options{})
	defer close(release)
	a := ingest(t, s.eng, "orders", `{"n":1}`, "")
	if a.HTTPStatus != http.StatusOK || a.Body.Status != record.MessageSucceeded {
		t.Fatalf("answer %d %+v, want 200 succeeded while the summary waits", a.HTTPStatus, a.Body)
	}
	if _, ok := a.Body.Steps[record.OnCompleteStep(engine.OnCompleteTarget)]; ok || len(a.Body.Steps) != 1 {
		t.Errorf("the answer's steps hold the summary: %+v", a.Body.Steps)
	}
	release <- struct{}{}
	md := waitMessage(t, s.store, a.Body.ID, func(md *record.MessageDetail) bool {
		for _, d := range md.Deliveries {
			if record.IsOnComplete(d.Step) {
				return d.Status == record.DeliveryDead
			}
		}
		return false
	})
	if md.Message.Status != record.MessageSucceeded {
		t.Errorf("a dead summary changed the status to %s", md.Message.Status)
	}
}
