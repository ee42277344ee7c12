package source

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

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// natsURL is the JetStream server of the tests; a missing one fails in
// CI and skips elsewhere.
func natsURL(t testing.TB) string {
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
		t.Skipf("NATS not reachable at %s; start nats-server -js or set TANDEM_TEST_NATS: %v", u, err)
	}
	nc.Close()
	return u
}

// counter is a target that counts each message (by its "n") it got.
type counter struct {
	mu  sync.Mutex
	got map[string]int
	srv *httptest.Server
}

func newCounter(t testing.TB) *counter {
	c := &counter{got: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v struct{ N string }
		_ = json.Unmarshal(b, &v)
		c.mu.Lock()
		c.got[v.N]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.got))
	for k, v := range c.got {
		out[k] = v
	}
	return out
}

// gatedStore wraps a store: MessageInsert can be held or made to fail.
type gatedStore struct {
	store.Store
	hold    atomic.Pointer[chan struct{}]
	down    atomic.Bool
	entered chan struct{}
	inserts atomic.Int64 // calls that reached the store
	refused atomic.Int64 // calls refused while down
}

func (g *gatedStore) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	if g.down.Load() {
		g.refused.Add(1)
		return nil, fmt.Errorf("insert: %w", store.ErrUnavailable)
	}
	g.inserts.Add(1)
	if h := g.hold.Load(); h != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-*h
	}
	return g.Store.MessageInsert(ctx, p)
}

// rig is an engine with two counting targets and a NATS-fed route.
type rig struct {
	js      jetstream.JetStream
	stream  string
	subject string
	st      *gatedStore
	mgr     *Manager
	billing *counter
	ship    *counter
}

// testName is a stream or queue name unique to this test run.
func testName(t testing.TB) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(fmt.Sprintf("T%s%d", t.Name(), time.Now().UnixNano()))
}

func newRig(t *testing.T, extra string, tr ...*telemetry.Tracing) *rig {
	t.Helper()
	url := natsURL(t)
	name := testName(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	r := newRigWith(t, fmt.Sprintf("{kind: nats, url: %q, stream: %s, subjects: [%q], max_in_flight: 64, nak_delay: 50ms%s}", url, name, "t."+name, extra), tr...)
	r.js, r.stream, r.subject = js, name, "t."+name
	return r
}

// newRigWith runs the route over the source written as src (YAML flow),
// traced by tr when given.
func newRigWith(t *testing.T, src string, tr ...*telemetry.Tracing) *rig {
	t.Helper()
	return newRigMetrics(t, src, nil, tr...)
}

// newRigMetrics is newRigWith with the engine and sources counting into met.
func newRigMetrics(t *testing.T, src string, met *telemetry.Metrics, tr ...*telemetry.Tracing) *rig {
	t.Helper()
	var tracing *telemetry.Tracing
	if len(tr) > 0 {
		tracing = tr[0]
	}
	r := &rig{billing: newCounter(t), ship: newCounter(t)}
	yaml := fmt.Sprintf(`server: {max_body: 1KiB}
sources:
  bus: %s
targets:
  billing: {url: %q, retry: {initial: 10ms, max: 50ms}}
  shipping: {url: %q, retry: {initial: 10ms, max: 50ms}}
routes:
  - name: orders
    source: bus
    steps:
      - {name: bill, target: billing}
      - {name: ship, target: shipping}
`, src, r.billing.srv.URL, r.ship.srv.URL)
	cfg, err := config.Parse([]byte(yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	r.st = &gatedStore{Store: st, entered: make(chan struct{}, 1)}
	eng, err := engine.New(engine.Options{Config: cfg, Store: r.st, Metrics: met, Tracing: tracing, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.mgr, err = New(Options{Config: cfg, Engine: eng, Store: r.st, Metrics: met, Tracing: tracing}); err != nil {
		t.Fatal(err)
	}
	r.mgr.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.mgr.Stop(ctx)
		_ = eng.Shutdown(ctx)
		_ = st.Close()
	})
	waitFor(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == StateConsuming })
	return r
}

func (r *rig) publish(t testing.TB, body string, h nats.Header) {
	t.Helper()
	m := &nats.Msg{Subject: r.subject, Data: []byte(body), Header: h}
	if _, err := r.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) consumerInfo(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := r.js.Consumer(context.Background(), r.stream, "tandem")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNATSThousandExactlyOnce(t *testing.T) {
	r := newRig(t, "")
	const n = 1000
	for i := range n {
		r.publish(t, fmt.Sprintf(`{"n":"%d"}`, i), nil)
	}
	for _, c := range []*counter{r.billing, r.ship} {
		waitFor(t, 60*time.Second, "every message at the target", func() bool { return len(c.snapshot()) == n })
	}
	waitFor(t, 10*time.Second, "all acked", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	for name, c := range map[string]*counter{"billing": r.billing, "shipping": r.ship} {
		got := c.snapshot()
		for i := range n {
			if k := fmt.Sprint(i); got[k] != 1 {
				t.Errorf("%s got message %s %d times, want 1", name, k, got[k])
			}
		}
	}
	if s := r.mgr.Status()[0]; s.InFlight != 0 {
		t.Errorf("in flight after all acked: %+v", s)
	}
}

func TestNATSPoisonDeadLettered(t *testing.T) {
	r := newRig(t, "")
	r.publish(t, `{"n": broken`, nats.Header{"Nats-Msg-Id": {"poison-1"}})
	r.publish(t, `{"n":"`+strings.Repeat("x", 2000)+`"}`, nil)
	var dead []record.Delivery
	waitFor(t, 10*time.Second, "two dead letters", func() bool {
		res, err := r.st.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
		if err != nil {
			t.Fatal(err)
		}
		dead = res.Deliveries
		return len(dead) == 2
	})
	reasons := dead[0].LastError + "\n" + dead[1].LastError
	for _, want := range []string{"not valid JSON", "larger than the limit of 1024 bytes"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("dead letter reasons %q lack %q", reasons, want)
		}
	}
	waitFor(t, 5*time.Second, "poison acked", func() bool {
		info := r.consumerInfo(t)
		return info.NumAckPending == 0 && info.NumRedelivered == 0 && info.AckFloor.Stream == 2
	})
	if got := len(r.billing.snapshot()) + len(r.ship.snapshot()); got != 0 {
		t.Errorf("a poison message reached a target %d times", got)
	}
}

func TestNATSNoAckBeforeCommit(t *testing.T) {
	r := newRig(t, "")
	hold := make(chan struct{})
	r.st.hold.Store(&hold)
	r.publish(t, `{"n":"1"}`, nil)
	<-r.st.entered // the insert has begun and is held
	info := r.consumerInfo(t)
	if info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("while the insert is held the broker saw ack_pending=%d ack_floor=%d, want 1 and 0", info.NumAckPending, info.AckFloor.Stream)
	}
	if s := r.mgr.Status()[0]; s.InFlight != 1 {
		t.Errorf("status in flight = %d, want 1", s.InFlight)
	}
	r.st.hold.Store(nil)
	close(hold)
	waitFor(t, 5*time.Second, "ack after commit", func() bool {
		i := r.consumerInfo(t)
		return i.NumAckPending == 0 && i.AckFloor.Stream == 1
	})
	waitFor(t, 5*time.Second, "delivered", func() bool { return r.billing.snapshot()["1"] == 1 })
}

func TestNATSStoreOutageNaks(t *testing.T) {
	r := newRig(t, "")
	r.st.down.Store(true)
	r.publish(t, `{"n":"7"}`, nil)
	waitFor(t, 5*time.Second, "a redelivery while the store is down", func() bool {
		return r.consumerInfo(t).NumRedelivered > 0
	})
	if info := r.consumerInfo(t); info.AckFloor.Stream != 0 {
		t.Fatalf("acked during a store outage: ack floor %d", info.AckFloor.Stream)
	}
	r.st.down.Store(false)
	waitFor(t, 10*time.Second, "delivery after the outage", func() bool {
		return r.billing.snapshot()["7"] == 1 && r.ship.snapshot()["7"] == 1
	})
	waitFor(t, 5*time.Second, "acked", func() bool { return r.consumerInfo(t).AckFloor.Stream == 1 })
}
