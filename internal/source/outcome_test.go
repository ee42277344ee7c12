package source_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// needNATS returns the JetStream server of the tests; a missing one fails
// in CI and skips elsewhere.
func needNATS(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TANDEM_TEST_NATS")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS not reachable at %s (TANDEM_TEST_NATS): %v", u, err)
		}
		t.Skipf("NATS not reachable at %s: %v", u, err)
	}
	nc.Close()
	return u
}

// needAMQP returns the RabbitMQ of the tests, like needNATS.
func needAMQP(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TANDEM_TEST_AMQP")
	if u == "" {
		u = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ not reachable at %s (TANDEM_TEST_AMQP): %v", u, err)
		}
		t.Skipf("RabbitMQ not reachable at %s: %v", u, err)
	}
	conn.Close()
	return u
}

// uniq is a stream, queue or subject name unique to this test run.
func uniq(t testing.TB) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(fmt.Sprintf("O%s%d", t.Name(), time.Now().UnixNano()))
}

// summaries is a target that keeps every summary it is sent, by message.
type summaries struct {
	fail atomic.Int32 // answer this many requests 503 first
	mu   sync.Mutex
	got  map[string][]engine.Summary
	hdr  map[string]http.Header
	srv  *httptest.Server
}

func newSummaries(t testing.TB) *summaries {
	s := &summaries{got: map[string][]engine.Summary{}, hdr: map[string]http.Header{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var sum engine.Summary
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &sum); err != nil || sum.MessageID == "" {
			t.Errorf("not a summary: %s", b)
		}
		s.mu.Lock()
		s.got[sum.MessageID] = append(s.got[sum.MessageID], sum)
		s.hdr[sum.MessageID] = r.Header.Clone()
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *summaries) snapshot() map[string][]engine.Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]engine.Summary, len(s.got))
	for k, v := range s.got {
		out[k] = append([]engine.Summary(nil), v...)
	}
	return out
}

// steps is a target that answers each message by its "n": 400 for "bad",
// else 200 with {"ok": n}.
func steps(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct{ N string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &v)
		if v.N == "bad" {
			http.Error(w, `{"error":"refused"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":%q}`, v.N)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// outcomeRig runs a whole tandem (engine, sources, publishers, HTTP API)
// on a fresh SQLite store.
type outcomeRig struct {
	eng *engine.Engine
	st  store.Store
	mgr *source.Manager
	srv *httptest.Server
}

func newOutcomeRig(t *testing.T, yaml string) *outcomeRig {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	pubs := source.NewPublishers(cfg)
	reg := telemetry.NewRegistry()
	met := telemetry.NewMetrics(reg)
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Publisher: pubs, Metrics: met, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mgr, err := source.New(source.Options{Config: cfg, Engine: eng, Store: st, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Start(context.Background())
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Sources: mgr, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	r := &outcomeRig{eng: eng, st: st, mgr: mgr, srv: httptest.NewServer(h)}
	t.Cleanup(func() {
		r.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mgr.Stop(ctx)
		_ = eng.Shutdown(ctx)
		pubs.Close()
		_ = st.Close()
	})
	return r
}

func poll(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bodyN returns the "n" of message id's body.
func (r *outcomeRig) bodyN(t testing.TB, id string) string {
	md, err := r.st.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N string }
	_ = json.Unmarshal(md.Message.Body, &v)
	return v.N
}

// onComplete returns message id's on_complete delivery of kind.
func (r *outcomeRig) onComplete(t testing.TB, id, kind string) record.Delivery {
	md, err := r.st.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range md.Deliveries {
		if d.Step == record.OnCompleteStep(kind) {
			return d
		}
	}
	t.Fatalf("message %s has no on_complete %s delivery", id, kind)
	return record.Delivery{}
}

// checkSummary checks a summary against the outcome its n implies.
func checkSummary(t testing.TB, n string, s engine.Summary) {
	t.Helper()
	if n == "bad" {
		if s.Status != record.MessageFailed || s.Steps["ship"].Status != record.DeliveryDead || s.Steps["bill"].Status != record.DeliveryDead || s.Steps["ship"].HTTPStatus != 400 || !strings.Contains(s.Steps["ship"].Error, "400") {
			t.Errorf("summary of the failing message: %+v", s)
		}
		return
	}
	if s.Status != record.MessageSucceeded || s.Route != "orders" || len(s.Steps) != 2 {
		t.Errorf("summary of %s: %+v", n, s)
	}
	for _, step := range []string{"bill", "ship"} {
		a := s.Steps[step]
		if a.Status != record.DeliverySucceeded || a.HTTPStatus != 200 || string(a.Body) != fmt.Sprintf(`{"ok":%q}`, n) {
			t.Errorf("summary of %s, step %s: %+v (%s)", n, step, a, a.Body)
		}
	}
}

// TestOnCompleteNATS: messages from a JetStream source fan out to two
// targets; each outcome goes, once, to a target and to a JetStream
// subject. The subject's stream is created only after the first publish
// failed: the publish is a delivery, retried until the stream acks it.
func TestOnCompleteNATS(t *testing.T) {
	url := needNATS(t)
	name := uniq(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	t.Cleanup(func() { _ = js.DeleteStream(ctx, name); _ = js.DeleteStream(ctx, "D"+name) })
	crm, tgt := newSummaries(t), steps(t)
	r := newOutcomeRig(t, fmt.Sprintf(`sources:
  bus: {kind: nats, url: %q, stream: %s, subjects: ["in.%s"], ack_wait: 2s}
targets:
  billing: {url: %q}
  shipping: {url: %q, retry: {max_attempts: 1}}
  crm: {url: %q}
routes:
  - name: orders
    source: bus
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
    on_complete: {target: crm, publish: {source: bus, subject: "done.%s"}}
`, url, name, name, tgt.URL, tgt.URL, crm.srv.URL, name))
	poll(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == source.StateConsuming })
	const n = 40
	for i := range n {
		body := fmt.Sprintf(`{"n":"%d"}`, i)
		if i == 7 {
			body = `{"n":"bad"}`
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "in." + name, Data: []byte(body), Header: nats.Header{"Nats-Msg-Id": {fmt.Sprint("m-", i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, 60*time.Second, "every summary at the crm target", func() bool { return len(crm.snapshot()) == n })
	// No stream takes done.<name> yet: the publishes fail and wait.
	var someID string
	for id := range crm.snapshot() {
		someID = id
	}
	poll(t, 20*time.Second, "a failed publish attempt", func() bool { return r.onComplete(t, someID, engine.OnCompletePublish).Attempts > 0 })
	if d := r.onComplete(t, someID, engine.OnCompletePublish); d.Status == record.DeliverySucceeded || d.LastError == "" {
		t.Fatalf("a publish with no stream to take it: %+v", d)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "D" + name, Subjects: []string{"done." + name}}); err != nil {
		t.Fatal(err)
	}
	for id, ss := range crm.snapshot() {
		if len(ss) != 1 {
			t.Errorf("message %s: %d summaries at the target, want 1", id, len(ss))
		}
		checkSummary(t, r.bodyN(t, id), ss[0])
	}
	// Every summary reaches the stream once.
	cons, err := js.OrderedConsumer(ctx, "D"+name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var s engine.Summary
			if err := json.Unmarshal(m.Data(), &s); err != nil {
				t.Fatalf("published summary: %v: %s", err, m.Data())
			}
			seen[s.MessageID]++
			if m.Headers().Get("Nats-Msg-Id") != s.MessageID+".on_complete.publish" {
				t.Errorf("Nats-Msg-Id %q", m.Headers().Get("Nats-Msg-Id"))
			}
			checkSummary(t, r.bodyN(t, s.MessageID), s)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d summaries published", len(seen), n)
	}
	poll(t, 10*time.Second, "every publish delivery succeeded", func() bool {
		for id := range seen {
			if r.onComplete(t, id, engine.OnCompletePublish).Status != record.DeliverySucceeded {
				return false
			}
		}
		return true
	})
	info, err := js.Stream(ctx, "D"+name)
	if err != nil {
		t.Fatal(err)
	}
	si, _ := info.Info(ctx)
	if si.State.Msgs != n {
		t.Errorf("the outcome stream holds %d messages, want %d (one per message)", si.State.Msgs, n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("summary of %s published %d times", id, c)
		}
	}
}

// TestOnCompleteAMQP: an outcome published to RabbitMQ through the
// default exchange arrives once per message; while no queue takes it
// (the broker returns it), the publish is retried, not dropped.
func TestOnCompleteAMQP(t *testing.T) {
	url := needAMQP(t)
	in, done := uniq(t), uniq(t)+"done"
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(in, false, false, false)
		_, _ = ch.QueueDelete(done, false, false, false)
	})
	tgt := steps(t)
	r := newOutcomeRig(t, fmt.Sprintf(`sources:
  mq: {kind: amqp, url: %q, queue: %s, declare: true}
targets:
  billing: {url: %q}
  shipping: {url: %q, retry: {max_attempts: 1}}
routes:
  - name: orders
    source: mq
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
    on_complete: {publish: {source: mq, exchange: "", routing_key: %s}}
`, url, in, tgt.URL, tgt.URL, done))
	poll(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == source.StateConsuming })
	const n = 30
	for i := range n {
		body := fmt.Sprintf(`{"n":"%d"}`, i)
		if i == 3 {
			body = `{"n":"bad"}`
		}
		if err := ch.PublishWithContext(context.Background(), "", in, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: fmt.Sprint("m-", i), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	poll(t, 60*time.Second, "every message accepted", func() bool {
		res, err := r.st.MessageList(context.Background(), &store.MessageListParams{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		ids = ids[:0]
		for _, m := range res.Messages {
			ids = append(ids, m.ID)
		}
		return len(ids) == n
	})
	poll(t, 30*time.Second, "a returned publish", func() bool { return r.onComplete(t, ids[0], engine.OnCompletePublish).Attempts > 0 })
	if d := r.onComplete(t, ids[0], engine.OnCompletePublish); d.Status == record.DeliverySucceeded || !strings.Contains(d.LastError, "no queue") {
		t.Fatalf("a publish no queue took: %+v", d)
	}
	if _, err := ch.QueueDeclare(done, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(done, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	timeout := time.After(90 * time.Second)
	for len(seen) < n {
		select {
		case m := <-msgs:
			var s engine.Summary
			if err := json.Unmarshal(m.Body, &s); err != nil {
				t.Fatalf("published summary: %v: %s", err, m.Body)
			}
			if m.MessageId != s.MessageID+".on_complete.publish" || m.ContentType != "application/json" {
				t.Errorf("message-id %q content-type %q", m.MessageId, m.ContentType)
			}
			seen[s.MessageID]++
			checkSummary(t, r.bodyN(t, s.MessageID), s)
		case <-timeout:
			t.Fatalf("%d of %d summaries arrived", len(seen), n)
		}
	}
	// Each publish delivery succeeded once (a returned attempt put nothing
	// in a queue), and the queue holds nothing more.
	poll(t, 10*time.Second, "every publish delivery succeeded", func() bool {
		for id := range seen {
			if r.onComplete(t, id, engine.OnCompletePublish).Status != record.DeliverySucceeded {
				return false
			}
		}
		return true
	})
	if q, err := ch.QueueDeclarePassive(done, true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Errorf("the outcome queue still holds %d messages (%v)", q.Messages, err)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("summary of %s arrived %d times", id, c)
		}
	}
}
