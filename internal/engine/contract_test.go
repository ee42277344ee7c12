package engine_test

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
)

// contractYAML calls the real sample payments API, whose own OpenAPI
// document (examples/sampleapi/openapi.yaml) is the target's contract.
// lying is a target that breaks the contract in its answers: it answers
// 200 (not declared) with an id of the wrong shape.
const contractYAML = `
targets:
  payments:
    url: "%s/charges"
    retry: { max_attempts: 2, initial: 10ms, max: 10ms }
    contract: { openapi: %q, operation: createCharge }
  lying:
    url: "%s/charges"
    retry: { max_attempts: 2, initial: 10ms, max: 10ms }
    contract: { openapi: %q, operation: createCharge }
routes:
  - name: pay
    path: /pay
    durable: %v
    respond: all
    steps:
      - name: charge
        target: payments
        body: { amount: "{{ request.body.total }}", currency: EUR, order: "{{ message.id }}" }
  - name: lie
    path: /lie
    durable: %v
    respond: all
    steps:
      - name: charge
        target: lying
        body: { amount: "{{ request.body.total }}", currency: EUR }
`

func TestContractDurableAndInMemory(t *testing.T) {
	t.Parallel()
	doc, err := filepath.Abs(filepath.Join("..", "..", "examples", "sampleapi", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			t.Parallel()
			pay := sampleapi.Payments()
			ps := httptest.NewServer(pay)
			t.Cleanup(ps.Close)
			lying := newTarget(t, fixed(200, `{"id":"nope","amount":1,"currency":"EUR"}`))
			s := start(t, fmt.Sprintf(contractYAML, ps.URL, doc, lying.srv.URL, doc, durable, durable), engine.Options{})

			// A body that breaks the request schema (amount a string: the
			// inbound total is text) is never sent: a permanent
			// failure with the schema's message, no retry.
			a := ingest(t, s.eng, "pay", `{"total":"twelve"}`, "")
			st := a.Body.Steps["charge"]
			if st.Status != record.DeliveryDead || !strings.Contains(st.Error, "contract: request breaks the contract: /amount") {
				t.Fatalf("bad request: step %+v", st)
			}
			if n := len(pay.Calls("/charges")); n != 0 {
				t.Fatalf("the target got %d calls of a body that breaks its contract", n)
			}
			if durable {
				md := waitMessage(t, s.store, a.Body.ID, func(*record.MessageDetail) bool { return true })
				atts := md.Attempts[md.Deliveries[0].ID]
				if len(atts) != 1 || atts[0].Outcome != record.OutcomePermanent || atts[0].HTTPStatus != 0 {
					t.Errorf("attempts %+v: want one permanent attempt, never sent", atts)
				}
			}

			// A valid body goes through, and the answer keeps the contract.
			a = ingest(t, s.eng, "pay", `{"total": 12.5}`, "")
			if st := a.Body.Steps["charge"]; st.Status != record.DeliverySucceeded || st.Error != "" || st.HTTPStatus != 201 {
				t.Fatalf("good request: step %+v", st)
			}

			// An answer that breaks the contract is flagged, not failed.
			a = ingest(t, s.eng, "lie", `{"total": 3}`, "")
			st = a.Body.Steps["charge"]
			if st.Status != record.DeliverySucceeded || lying.calls.Load() != 1 {
				t.Fatalf("lying target: step %+v, %d calls", st, lying.calls.Load())
			}
			if !durable && !strings.Contains(st.Error, "contract: response breaks the contract: status 200 is not declared") {
				t.Errorf("in-memory step error %q, want the violation", st.Error)
			}
			if durable {
				md := waitMessage(t, s.store, a.Body.ID, func(*record.MessageDetail) bool { return true })
				atts := md.Attempts[md.Deliveries[0].ID]
				if len(atts) != 1 || !strings.Contains(atts[0].Error, "contract: response breaks the contract: status 200 is not declared by operation createCharge") {
					t.Errorf("attempts %+v: want the violation in the attempt's error", atts)
				}
			}
		})
	}
}
