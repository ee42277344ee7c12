package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/store/storetest"
)

// seen is one request a bodyTarget received.
type seen struct {
	path, query string
	header      http.Header
	body        string
	at          time.Time
}

// bodyTarget is a real HTTP target that keeps what it received.
type bodyTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []seen
	answer func(r *http.Request, body string) (int, string)
}

func newBodyTarget(t *testing.T, answer func(r *http.Request, body string) (int, string)) *bodyTarget {
	t.Helper()
	bt := &bodyTarget{answer: answer}
	bt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bt.mu.Lock()
		bt.got = append(bt.got, seen{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: string(b), at: time.Now()})
		bt.mu.Unlock()
		code, body := bt.answer(r, string(b))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(bt.srv.Close)
	return bt
}

func (bt *bodyTarget) requests() []seen {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return append([]seen(nil), bt.got...)
}

func answer(code int, body string) func(*http.Request, string) (int, string) {
	return func(*http.Request, string) (int, string) { return code, body }
}

// TestParallelAfterSteps: two steps whose one dependency succeeded are in
// flight together; a third waits for both and reads both answers.
func TestParallelAfterSteps(t *testing.T) {
	t.Parallel()
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	meet := func(name string) func(*http.Request, string) (int, string) {
		// At-least-once: a step may reach its target twice (Go's transport
		// resends a request with an Idempotency-Key when a kept-alive
		// connection dies under it); count each step's arrival once.
		var once sync.Once
		return func(*http.Request, string) (int, string) {
			once.Do(arrived.Done)
			select {
			case <-both:
				return 200, fmt.Sprintf(`{"from":%q}`, name)
			case <-time.After(5 * time.Second):
				return 500, `{"error":"the other step never came"}`
			}
		}
	}
	a := newBodyTarget(t, answer(201, `{"id":"a-1"}`))
	b := newBodyTarget(t, meet("b"))
	c := newBodyTarget(t, meet("c"))
	d := newBodyTarget(t, answer(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  a: { url: %q }
  b: { url: %q, retry: { max_attempts: 1 } }
  c: { url: %q, retry: { max_attempts: 1 } }
  d: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    steps:
      - { name: a, target: a }
      - { name: b, target: b, after: [a], body: { a: "{{ steps.a.body.id }}" } }
      - { name: c, target: c, after: [a] }
      - name: d
        target: d
        after: [b, c]
        body: { b: "{{ steps.b.body.from }}", c: "{{ steps.c.body.from }}", a: "{{ steps.a.status }}" }
`, a.srv.URL, b.srv.URL, c.srv.URL, d.srv.URL), engine.Options{})
	ans := ingest(t, s.eng, "r", `{}`, "")
	if ans.HTTPStatus != http.StatusOK {
		t.Fatalf("code %d: %+v", ans.HTTPStatus, ans.Body)
	}
	if got := b.requests()[0].body; got != `{"a":"a-1"}` {
		t.Errorf("b got %s", got)
	}
	if got := d.requests()[0].body; got != `{"a":201,"b":"b","c":"c"}` {
		t.Errorf("d got %s", got)
	}
}

// TestSagaOverHTTP: the deepest step is undone first, each compensation
// reads its step's answer, and a compensation that fails for good leaves
// the message failed with a dead letter for a person.
func TestSagaOverHTTP(t *testing.T) {
	t.Parallel()
	pay := newBodyTarget(t, answer(201, `{"id":"ch_9"}`))
	stock := newBodyTarget(t, answer(201, `{"reservation":"rs_4"}`))
	ship := newBodyTarget(t, answer(409, `{"error":"no courier"}`))
	release := newBodyTarget(t, answer(200, `{}`))
	refund := newBodyTarget(t, answer(400, `{"error":"refund window closed"}`))
	s := start(t, fmt.Sprintf(`
targets:
  pay: { url: %q }
  stock: { url: %q }
  ship: { url: %q }
  release: { url: %q, method: DELETE }
  refund: { url: %q }
routes:
  - name: order
    path: /order
    respond: all
    saga: true
    steps:
      - name: charge
        target: pay
        compensate: { target: refund, body: { charge: "{{ steps.charge.body.id }}" } }
      - name: reserve
        target: stock
        after: [charge]
        compensate: { target: release, path: "/{{ steps.reserve.body.reservation }}", query: { charge: "{{ steps.charge.body.id }}" } }
      - { name: ship, target: ship, after: [reserve] }
`, pay.srv.URL, stock.srv.URL, ship.srv.URL, release.srv.URL+"/reservations", refund.srv.URL), engine.Options{})
	ans := ingest(t, s.eng, "order", `{}`, "")
	if ans.HTTPStatus != http.StatusBadGateway || ans.Body.Status != record.MessageFailed {
		t.Fatalf("answer %d %+v", ans.HTTPStatus, ans.Body)
	}
	rel, ref := release.requests(), refund.requests()
	if len(rel) != 1 || len(ref) != 1 {
		t.Fatalf("release %d calls, refund %d", len(rel), len(ref))
	}
	if rel[0].path != "/reservations/rs_4" || rel[0].query != "charge=ch_9" {
		t.Errorf("release %s?%s", rel[0].path, rel[0].query)
	}
	if ref[0].body != `{"charge":"ch_9"}` {
		t.Errorf("refund body %s", ref[0].body)
	}
	if !rel[0].at.Before(ref[0].at) {
		t.Errorf("the charge was refunded before the reservation was released")
	}
	md, err := s.store.MessageGet(context.Background(), ans.Body.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]record.DeliveryStatus{}
	for _, d := range md.Deliveries {
		got[d.Step] = d.Status
	}
	want := map[string]record.DeliveryStatus{
		"charge": record.DeliverySucceeded, "reserve": record.DeliveryCompensated, "ship": record.DeliveryDead,
		"charge.compensate": record.DeliveryDead, "reserve.compensate": record.DeliverySucceeded,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("deliveries %v, want %v", got, want)
	}
	dead, err := s.store.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead, MessageID: ans.Body.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.Deliveries) != 2 {
		t.Errorf("dead letters %d, want 2 (ship and the refund)", len(dead.Deliveries))
	}
	if sa := ans.Body.Steps["charge.compensate"]; sa.Status != record.DeliveryDead || !strings.Contains(sa.Error, "400") {
		t.Errorf("answer's refund step %+v", sa)
	}
}

// TestFanOutTemplates: durable: false uses the same templates, and a
// response template merges two answers into the caller's format.
func TestFanOutTemplates(t *testing.T) {
	t.Parallel()
	price := newBodyTarget(t, answer(200, `{"price": 9.5, "currency": "EUR"}`))
	stock := newBodyTarget(t, func(_ *http.Request, body string) (int, string) {
		var in struct{ SKU string }
		_ = json.Unmarshal([]byte(body), &in)
		if in.SKU != "tent" {
			return 404, `{"error":"unknown sku"}`
		}
		return 200, `{"count": 3}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  price: { url: %q }
  stock: { url: %q, retry: { max_attempts: 1 } }
routes:
  - name: quote
    path: /quote
    respond: all
    durable: false
    deadline: 5s
    steps:
      - { name: price, target: price, body: { sku: "{{ request.body.sku }}" } }
      - { name: stock, target: stock, after: [price], body: { sku: "{{ request.body.sku }}", currency: "{{ steps.price.body.currency }}" } }
    response:
      status: "{{ steps.stock.status == 200 ? 200 : 404 }}"
      body: { sku: "{{ request.body.sku }}", price: "{{ steps.price.body.price }}", available: "{{ default(steps.stock.body?.count, 0) > 0 }}" }
`, price.srv.URL, stock.srv.URL), engine.Options{})
	tests := []struct {
		sku, want string
		code      int
	}{
		{"tent", `{"available":true,"price":9.5,"sku":"tent"}`, 200},
		{"kayak", `{"available":false,"price":9.5,"sku":"kayak"}`, 404},
	}
	for _, tt := range tests {
		ans := ingest(t, s.eng, "quote", `{"sku":"`+tt.sku+`"}`, "")
		if ans.HTTPStatus != tt.code || string(ans.Raw) != tt.want {
			t.Errorf("%s: %d %s, want %d %s", tt.sku, ans.HTTPStatus, ans.Raw, tt.code, tt.want)
		}
	}
	if got := stock.requests()[0].body; got != `{"currency":"EUR","sku":"tent"}` {
		t.Errorf("stock got %s", got)
	}
}

// TestTemplateFailureInFanOut: a template that fails for one request fails
// that step with the reason, and the engine goes on.
func TestTemplateFailureInFanOut(t *testing.T) {
	t.Parallel()
	tg := newBodyTarget(t, answer(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  a: { url: %q }
routes:
  - name: r
    path: /r
    respond: all
    durable: false
    steps:
      - { name: a, target: a, body: { n: "{{ request.body.n }}" } }
      - { name: b, target: a }
`, tg.srv.URL), engine.Options{})
	ans := ingest(t, s.eng, "r", `{}`, "")
	a := ans.Body.Steps["a"]
	if ans.HTTPStatus != http.StatusMultiStatus || a.Status != record.DeliveryDead || !strings.Contains(a.Error, "request.body.n is missing") {
		t.Errorf("answer %d %+v", ans.HTTPStatus, ans.Body.Steps)
	}
	if n := len(tg.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (step b)", n)
	}
}

// TestSagaStoreConformance runs the saga cases of the store conformance
// suite against SQLite.
func TestSagaStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.RunSaga(t, func(t *testing.T) store.Store {
		st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "saga.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	})
}

// TestHybridAnswer: the caller gets the named steps' results (200, or 502
// when one failed) while the rest goes on; past the deadline it gets 202
// with the status URL, and the message still completes.
func TestHybridAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	users := newBodyTarget(t, func(_ *http.Request, body string) (int, string) {
		if strings.Contains(body, "taken") {
			return 409, `{"error":"taken"}`
		}
		return 201, `{"id":"u-1"}`
	})
	slow := newBodyTarget(t, func(*http.Request, string) (int, string) {
		<-release
		return 200, `{}`
	})
	s := start(t, fmt.Sprintf(`
targets:
  users: { url: %q }
  slow: { url: %q, timeout: { total: 20s } }
routes:
  - name: signup
    path: /signup
    respond: [create]
    deadline: 5s
    steps:
      - { name: create, target: users }
      - { name: welcome, target: slow, after: [create], required: false }
  - name: signup-slow
    path: /signup-slow
    respond: [welcome]
    deadline: 50ms
    steps:
      - { name: create, target: users }
      - { name: welcome, target: slow, after: [create] }
`, users.srv.URL, slow.srv.URL), engine.Options{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	ans := ingest(t, s.eng, "signup", `{"email":"a@x"}`, "")
	if ans.HTTPStatus != http.StatusOK || string(ans.Body.Steps["create"].Body) != `{"id":"u-1"}` || len(ans.Body.Steps) != 1 {
		t.Fatalf("answer %d %+v", ans.HTTPStatus, ans.Body)
	}
	if ans.Body.Status != record.MessageRunning {
		t.Errorf("message status %s while welcome is held, want running", ans.Body.Status)
	}
	if ans = ingest(t, s.eng, "signup", `{"email":"taken"}`, ""); ans.HTTPStatus != http.StatusBadGateway {
		t.Errorf("failed create: %d, want 502", ans.HTTPStatus)
	}
	late := ingest(t, s.eng, "signup-slow", `{"email":"b@x"}`, "")
	if late.HTTPStatus != http.StatusAccepted || late.Location != "/v1/messages/"+late.Body.ID {
		t.Fatalf("past the deadline: %d %q", late.HTTPStatus, late.Location)
	}
	once.Do(func() { close(release) })
	md := waitMessage(t, s.store, late.Body.ID, func(md *record.MessageDetail) bool { return md.Message.Status.Terminal() })
	if md.Message.Status != record.MessageSucceeded {
		t.Errorf("status %s", md.Message.Status)
	}
}

// TestSagaCompensatesTimedOutStep: a step whose only attempt timed out
// after the request was written may have charged the card, so the saga
// refunds it; with compensate_unknown: false it does not.
func TestSagaCompensatesTimedOutStep(t *testing.T) {
	t.Parallel()
	pay := newBodyTarget(t, func(r *http.Request, _ string) (int, string) {
		<-r.Context().Done() // the charge happens, the answer never comes
		return 200, `{}`
	})
	refund := newBodyTarget(t, answer(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  pay: { url: %q, timeout: { total: 200ms }, retry: { max_attempts: 1 } }
  refund: { url: %q }
routes:
  - name: order
    path: /order
    respond: all
    saga: true
    steps:
      - name: charge
        target: pay
        compensate: { target: refund }
  - name: trusting
    path: /trusting
    respond: all
    saga: true
    steps:
      - name: charge
        target: pay
        compensate_unknown: false
        compensate: { target: refund }
`, pay.srv.URL, refund.srv.URL), engine.Options{})

	ans := ingest(t, s.eng, "order", `{}`, "")
	if ans.Body.Status != record.MessageCompensated {
		t.Fatalf("answer %d %+v, want the message compensated", ans.HTTPStatus, ans.Body)
	}
	if n := len(refund.requests()); n != 1 {
		t.Fatalf("refund called %d times, want 1", n)
	}
	md, err := s.store.MessageGet(context.Background(), ans.Body.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range md.Deliveries {
		if d.Step == "charge" && (d.Status != record.DeliveryDead || !d.OutcomeUnknown) {
			t.Errorf("charge: %s, outcome unknown %v; want dead and unknown", d.Status, d.OutcomeUnknown)
		}
	}

	ans = ingest(t, s.eng, "trusting", `{}`, "")
	if ans.Body.Status != record.MessageFailed {
		t.Fatalf("compensate_unknown false: %d %+v, want failed", ans.HTTPStatus, ans.Body)
	}
	if n := len(refund.requests()); n != 1 {
		t.Errorf("refund called %d times in all, want still 1", n)
	}
}
