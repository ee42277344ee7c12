package source_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// post sends body to the rig's path with extra headers.
func (r *outcomeRig) post(t *testing.T, path, body string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestOnCompleteSagaAndCallback: a saga whose second step fails for good
// is compensated; its summary, read once everything is final, goes to the
// route's on_complete target and to the request's Callback-Url, each once,
// and says compensated, with the compensation that ran.
func TestOnCompleteSagaAndCallback(t *testing.T) {
	crm, cb, tgt := newSummaries(t), newSummaries(t), steps(t)
	crm.fail.Store(2) // the summary is retried like any delivery
	cbURL := cb.srv.URL + "/hook"
	r := newOutcomeRig(t, fmt.Sprintf(`server: {callback_hosts: ["127.0.0.1", "*.example.com"]}
targets:
  pay: {url: %q}
  ship: {url: %q, retry: {max_attempts: 1}}
  crm: {url: %q, auth: {bearer: s3cret}, sign: {standard_webhooks: {secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, retry: {initial: 10ms, max: 50ms}}
routes:
  - name: orders
    path: /orders
    saga: true
    steps:
      - {name: charge, target: pay, compensate: {target: pay, body: {n: refund}}}
      - {name: ship, target: ship, after: [charge], body: {n: bad}}
    on_complete: {target: crm}
`, tgt.URL, tgt.URL, crm.srv.URL))
	resp, b := r.post(t, "/orders", `{"n":"1"}`, map[string]string{"Callback-Url": cbURL})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", resp.StatusCode, b)
	}
	var ans struct{ ID string }
	_ = json.Unmarshal(b, &ans)
	for name, s := range map[string]*summaries{"on_complete target": crm, "callback": cb} {
		poll(t, 20*time.Second, "the summary at the "+name, func() bool { return len(s.snapshot()[ans.ID]) > 0 })
	}
	// Each summary is one delivery: once both succeeded, nothing more comes.
	for _, kind := range []string{engine.OnCompleteTarget, engine.OnCompleteCallback} {
		poll(t, 10*time.Second, "on_complete "+kind+" recorded", func() bool {
			return r.onComplete(t, ans.ID, kind).Status == record.DeliverySucceeded
		})
	}
	for name, s := range map[string]*summaries{"on_complete target": crm, "callback": cb} {
		got := s.snapshot()[ans.ID]
		if len(got) != 1 {
			t.Fatalf("%s got %d summaries, want 1", name, len(got))
		}
		sum := got[0]
		if sum.Status != record.MessageCompensated || sum.Steps["charge"].Status != record.DeliveryCompensated ||
			sum.Steps["ship"].Status != record.DeliveryDead || sum.Steps["charge.compensate"].Status != record.DeliverySucceeded {
			t.Errorf("%s summary: %+v", name, sum)
		}
		if h := s.hdr[ans.ID]; h.Get("Idempotency-Key") == "" || h.Get("Tandem-Status") != "compensated" {
			t.Errorf("%s headers: %v", name, h)
		}
	}
	// The summaries are deliveries of the message, and did not change
	// its status.
	for kind, attempts := range map[string]int{engine.OnCompleteTarget: 3, engine.OnCompleteCallback: 1} {
		if d := r.onComplete(t, ans.ID, kind); d.Status != record.DeliverySucceeded || d.Attempts != attempts {
			t.Errorf("on_complete %s delivery: %+v, want succeeded after %d attempts", kind, d, attempts)
		}
	}
	if got := crm.hdr[ans.ID].Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("the on_complete target got Authorization %q: the target's auth applies", got)
	}
	if got := crm.hdr[ans.ID].Get("Webhook-Signature"); !strings.HasPrefix(got, "v1,") || crm.hdr[ans.ID].Get("Webhook-Id") == "" {
		t.Errorf("the on_complete target got webhook-signature %q: the target's signing applies", got)
	}
	if got := cb.hdr[ans.ID].Get("Authorization"); got != "" {
		t.Errorf("a callback got Authorization %q", got)
	}
	md, err := r.st.MessageGet(t.Context(), ans.ID)
	if err != nil {
		t.Fatal(err)
	}
	if md.Message.Status != record.MessageCompensated {
		t.Errorf("message status %s", md.Message.Status)
	}
	// GET /v1/messages/{id} lists them with the steps.
	resp2, err := http.Get(r.srv.URL + "/v1/messages/" + ans.ID)
	if err != nil {
		t.Fatal(err)
	}
	view, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{`"on_complete.target"`, `"on_complete.callback"`, `"callback:orders"`} {
		if !strings.Contains(string(view), want) {
			t.Errorf("message view lacks %s: %s", want, view)
		}
	}
}

// TestCallbackRefused: a Callback-Url the server does not allow answers
// 422 problem+json naming the reason, and no message is stored.
func TestCallbackRefused(t *testing.T) {
	tgt := steps(t)
	r := newOutcomeRig(t, fmt.Sprintf(`server: {callback_hosts: ["hooks.example.com", "*.partner.example"]}
targets:
  pay: {url: %q}
routes:
  - {name: orders, path: /orders, steps: [{name: charge, target: pay}]}
  - {name: quick, path: /quick, durable: false, respond: all, steps: [{name: charge, target: pay}]}
`, tgt.URL))
	for _, tt := range []struct{ path, url, reason string }{
		{"/orders", "http://127.0.0.1:1/hook", "host 127.0.0.1 is not in server.callback_hosts"},
		{"/orders", "http://localhost:1/hook", "host localhost is not in server.callback_hosts"},
		{"/orders", "http://10.0.0.8/hook", "not in server.callback_hosts"},
		{"/orders", "http://[::1]/hook", "not in server.callback_hosts"},
		{"/orders", "http://169.254.169.254/latest/meta-data", "not in server.callback_hosts"},
		{"/orders", "https://evil.example.org/hook", "host evil.example.org is not in"},
		{"/orders", "file:///etc/passwd", "scheme must be http or https"},
		{"/orders", "https://u:p@hooks.example.com/", "must not hold credentials"},
		{"/quick", "https://hooks.example.com/done", "a callback needs a durable route"},
	} {
		resp, b := r.post(t, tt.path, `{"n":"1"}`, map[string]string{"Callback-Url": tt.url})
		if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), tt.reason) {
			t.Errorf("Callback-Url %s: %d %s %s, want 422 problem+json about %q", tt.url, resp.StatusCode, resp.Header.Get("Content-Type"), b, tt.reason)
		}
	}
	res, err := r.st.MessageList(t.Context(), &store.MessageListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 0 {
		t.Errorf("refused requests stored %d messages", len(res.Messages))
	}
	// Allowed at ingest: a listed host, and one below the wildcard.
	for _, u := range []string{"https://hooks.example.com/done", "https://a.partner.example/cb"} {
		if resp, b := r.post(t, "/orders", `{"n":"2"}`, map[string]string{"Callback-Url": u}); resp.StatusCode != http.StatusAccepted {
			t.Errorf("Callback-Url %s: %d %s, want 202", u, resp.StatusCode, b)
		}
	}
}

// TestCallbackNoHostsListed: with no server.callback_hosts every
// Callback-Url is refused.
func TestCallbackNoHostsListed(t *testing.T) {
	tgt := steps(t)
	r := newOutcomeRig(t, fmt.Sprintf(`targets:
  pay: {url: %q}
routes:
  - {name: orders, path: /orders, steps: [{name: charge, target: pay}]}
`, tgt.URL))
	resp, b := r.post(t, "/orders", `{"n":"1"}`, map[string]string{"Callback-Url": "https://hooks.example.com/x"})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), "callback_hosts is empty") {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}
