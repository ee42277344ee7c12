package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
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
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// The broker measurements (bench/RESULTS.md, "Broker sources"):
//
//	go test ./internal/source -run '^$' -bench Broker -benchtime 3x
//
// BenchmarkBrokerAccept compares, in one run, how fast a route durably
// accepts messages from NATS JetStream, from RabbitMQ and over HTTP (64
// keep-alive clients): the same route, a fresh SQLite store each, delivery
// workers off. BenchmarkBrokerEndToEnd measures publish → delivered at
// both targets, workers on.

// benchBatch is how many messages one measured run moves.
const benchBatch = 3000

// countingStore counts committed inserts.
type countingStore struct {
	store.Store
	n atomic.Int64
}

func (c *countingStore) MessageInsert(ctx context.Context, p *store.MessageInsertParams) (*store.MessageInsertResult, error) {
	r, err := c.Store.MessageInsert(ctx, p)
	if err == nil && !r.Existing {
		c.n.Add(1)
	}
	return r, err
}

// benchRig is a route (two steps) over a fresh SQLite store, fed by src
// (YAML flow; "" for an HTTP route at /orders).
type benchRig struct {
	st   *countingStore
	eng  *engine.Engine
	mgr  *source.Manager
	http *httptest.Server
}

func newBenchRig(b *testing.B, src, billing, shipping string, deliver bool) *benchRig {
	b.Helper()
	feed := "path: /orders"
	srcs := ""
	if src != "" {
		feed, srcs = "source: bus", "sources:\n  bus: "+src+"\n"
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `%stargets:
  billing: {url: %q}
  shipping: {url: %q}
routes:
  - name: orders
    %s
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, srcs, billing, shipping, feed), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(b.TempDir(), "b.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRig{st: &countingStore{Store: st}}
	if r.eng, err = engine.New(engine.Options{Config: cfg, Store: r.st, Logger: quiet}); err != nil {
		b.Fatal(err)
	}
	if deliver {
		if err := r.eng.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if src != "" {
		if r.mgr, err = source.New(source.Options{Config: cfg, Engine: r.eng, Store: r.st, Logger: quiet}); err != nil {
			b.Fatal(err)
		}
	} else {
		h, err := api.New(api.Options{Engine: r.eng, Config: cfg, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		r.http = httptest.NewServer(h)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if r.mgr != nil {
			_ = r.mgr.Stop(ctx)
		}
		if r.http != nil {
			r.http.Close()
		}
		_ = r.eng.Shutdown(ctx)
		_ = st.Close()
	})
	return r
}

// waitCommitted polls until n messages are committed.
func (r *benchRig) waitCommitted(b *testing.B, n int64) {
	deadline := time.Now().Add(5 * time.Minute)
	for r.st.n.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d committed after 5 minutes", r.st.n.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// postAll sends n messages to the rig's HTTP route from 64 clients,
// calling at(i) (when not nil) right before message i is posted.
func (r *benchRig) postAll(b *testing.B, n int, at func(int)) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				if at != nil {
					at(i)
				}
				resp, err := client.Post(r.http.URL+"/orders", "application/json", bytes.NewReader(fmt.Appendf(nil, `{"n":"%d"}`, i)))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
}

// natsStream makes a fresh stream and returns it with a publisher.
func natsStream(b *testing.B, url string) (jetstream.JetStream, string) {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	name := uniq(b)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: []string{"b." + name}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return js, name
}

// publishNATS publishes n messages (asynchronously, all acked by the
// stream before it returns), calling at(i) as each is sent.
func publishNATS(b *testing.B, js jetstream.JetStream, name string, n int, at func(int)) {
	for i := range n {
		if at != nil {
			at(i)
		}
		if _, err := js.PublishAsync("b."+name, fmt.Appendf(nil, `{"n":"%d"}`, i)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish acks did not come")
	}
}

// amqpQueue declares a fresh queue and returns a channel to publish on.
func amqpQueue(b *testing.B, url string) (*amqp.Channel, string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	q := uniq(b)
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = ch.QueueDelete(q, false, false, false) })
	return ch, q
}

func publishAMQP(b *testing.B, ch *amqp.Channel, q string, n int, at func(int)) {
	for i := range n {
		if at != nil {
			at(i)
		}
		err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: fmt.Sprint("m-", i), Body: fmt.Appendf(nil, `{"n":"%d"}`, i)})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func noContent() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
}

// BenchmarkBrokerAccept: durable accept, messages/s, per feed, and the
// ratio of each broker to HTTP. Each iteration measures all three, in a
// rotating order.
func BenchmarkBrokerAccept(b *testing.B) {
	nurl, aurl := needNATS(b), needAMQP(b)
	tgt := noContent()
	defer tgt.Close()
	var took [3]time.Duration // http, nats, amqp
	b.ResetTimer()
	for i := range b.N {
		for k := range 3 {
			switch (i + k) % 3 {
			case 0:
				b.StopTimer()
				r := newBenchRig(b, "", tgt.URL, tgt.URL, false)
				b.StartTimer()
				start := time.Now()
				r.postAll(b, benchBatch, nil)
				took[0] += time.Since(start)
			case 1:
				b.StopTimer()
				js, name := natsStream(b, nurl)
				publishNATS(b, js, name, benchBatch, nil) // preloaded
				r := newBenchRig(b, fmt.Sprintf("{kind: nats, url: %q, stream: %s, max_in_flight: 256}", nurl, name), tgt.URL, tgt.URL, false)
				b.StartTimer()
				start := time.Now()
				r.mgr.Start(context.Background())
				r.waitCommitted(b, benchBatch)
				took[1] += time.Since(start)
			case 2:
				b.StopTimer()
				ch, q := amqpQueue(b, aurl)
				publishAMQP(b, ch, q, benchBatch, nil) // preloaded
				r := newBenchRig(b, fmt.Sprintf("{kind: amqp, url: %q, queue: %s, max_in_flight: 256}", aurl, q), tgt.URL, tgt.URL, false)
				b.StartTimer()
				start := time.Now()
				r.mgr.Start(context.Background())
				r.waitCommitted(b, benchBatch)
				took[2] += time.Since(start)
			}
		}
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(benchBatch*b.N) / d.Seconds() }
	b.ReportMetric(rate(took[0]), "http_msg/s")
	b.ReportMetric(rate(took[1]), "nats_msg/s")
	b.ReportMetric(rate(took[2]), "amqp_msg/s")
	b.ReportMetric(rate(took[1])/rate(took[0]), "nats/http")
	b.ReportMetric(rate(took[2])/rate(took[0]), "amqp/http")
	b.ReportMetric(0, "ns/op")
}

// arrivals is a target that notes when each message first arrived.
type arrivals struct {
	mu  sync.Mutex
	at  map[int]time.Time
	srv *httptest.Server
}

func newArrivals() *arrivals {
	a := &arrivals{at: map[int]time.Time{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct{ N string }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &v)
		n, _ := strconv.Atoi(v.N)
		now := time.Now()
		a.mu.Lock()
		if _, ok := a.at[n]; !ok {
			a.at[n] = now
		}
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	return a
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// e2eRun feeds n messages with send (which calls at(i) as it sends i) and
// waits until both targets have every one; it returns the time from the
// first send to the last arrival and each message's latency (send to its
// arrival at the later of the two targets).
func e2eRun(b *testing.B, billing, shipping *arrivals, n int, send func(at func(int))) (time.Duration, []time.Duration) {
	sent := make([]time.Time, n)
	start := time.Now()
	send(func(i int) { sent[i] = time.Now() })
	deadline := time.Now().Add(5 * time.Minute)
	for billing.count() < n || shipping.count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("billing %d, shipping %d of %d after 5 minutes", billing.count(), shipping.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
	var last time.Time
	lat := make([]time.Duration, n)
	billing.mu.Lock()
	shipping.mu.Lock()
	for i := range n {
		done := billing.at[i]
		if s := shipping.at[i]; s.After(done) {
			done = s
		}
		if done.After(last) {
			last = done
		}
		lat[i] = done.Sub(sent[i])
	}
	shipping.mu.Unlock()
	billing.mu.Unlock()
	return last.Sub(start), lat
}

func pct(lat []time.Duration, p float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)]) / float64(time.Millisecond)
}

// BenchmarkBrokerEndToEnd: from publish (or POST) to delivered at both
// targets, with the workers on: messages/s over the whole batch, and the
// per-message latency's p50 and p99.
func BenchmarkBrokerEndToEnd(b *testing.B) {
	nurl, aurl := needNATS(b), needAMQP(b)
	for _, feed := range []string{"http", "nats", "amqp"} {
		b.Run(feed, func(b *testing.B) {
			var took time.Duration
			var lat []time.Duration
			for range b.N {
				b.StopTimer()
				billing, shipping := newArrivals(), newArrivals()
				defer billing.srv.Close()
				defer shipping.srv.Close()
				var send func(func(int))
				var r *benchRig
				switch feed {
				case "http":
					r = newBenchRig(b, "", billing.srv.URL, shipping.srv.URL, true)
					send = func(at func(int)) { r.postAll(b, benchBatch, at) }
				case "nats":
					js, name := natsStream(b, nurl)
					r = newBenchRig(b, fmt.Sprintf("{kind: nats, url: %q, stream: %s, max_in_flight: 256}", nurl, name), billing.srv.URL, shipping.srv.URL, true)
					r.mgr.Start(context.Background())
					send = func(at func(int)) { publishNATS(b, js, name, benchBatch, at) }
				case "amqp":
					ch, q := amqpQueue(b, aurl)
					r = newBenchRig(b, fmt.Sprintf("{kind: amqp, url: %q, queue: %s, max_in_flight: 256}", aurl, q), billing.srv.URL, shipping.srv.URL, true)
					r.mgr.Start(context.Background())
					send = func(at func(int)) { publishAMQP(b, ch, q, benchBatch, at) }
				}
				if r.mgr != nil {
					deadline := time.Now().Add(10 * time.Second)
					for r.mgr.Status()[0].State != source.StateConsuming && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond)
					}
				}
				b.StartTimer()
				d, l := e2eRun(b, billing, shipping, benchBatch, send)
				took += d
				lat = append(lat, l...)
			}
			b.StopTimer()
			b.ReportMetric(float64(benchBatch*b.N)/took.Seconds(), "msg/s")
			b.ReportMetric(pct(lat, 0.5), "p50_ms")
			b.ReportMetric(pct(lat, 0.99), "p99_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
