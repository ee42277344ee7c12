package source_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/tandem-run/tandem/internal/source"
)

// natsServer is a nats-server of this test alone, on its own port and
// store directory, so restarting it disturbs no other test.
type natsServer struct {
	bin, dir, port string
	cmd            *exec.Cmd
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nats-server not installed: %v", err)
		}
		t.Skipf("nats-server not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	s := &natsServer{bin: bin, dir: t.TempDir(), port: port}
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + s.port }

func (s *natsServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "-js", "-a", "127.0.0.1", "-p", s.port, "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	poll(t, 20*time.Second, "nats-server up", func() bool {
		nc, err := nats.Connect(s.url(), nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})
}

// kill ends the server with SIGKILL: no clean shutdown.
func (s *natsServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	}
	s.cmd = nil
}

// byN is a target that counts each message by its "n".
type byN struct {
	mu  sync.Mutex
	got map[string]int
	srv *httptest.Server
}

func newByN(t testing.TB) *byN {
	c := &byN{got: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct{ N string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &v)
		c.mu.Lock()
		c.got[v.N]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *byN) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// exactlyOnce reports each of 0..n-1 not seen exactly once.
func (c *byN) exactlyOnce(t *testing.T, name string, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	bad := 0
	for i := range n {
		if k := strconv.Itoa(i); c.got[k] != 1 {
			if bad++; bad <= 10 {
				t.Errorf("%s got message %s %d times, want 1", name, k, c.got[k])
			}
		}
	}
	if bad > 10 {
		t.Errorf("%s: %d messages in all not delivered exactly once", name, bad)
	}
}

// get returns the status and body of GET path on the rig's API.
func (r *outcomeRig) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sources returns GET /v1/sources.
func (r *outcomeRig) sources(t testing.TB) []source.Status {
	t.Helper()
	code, body := r.get(t, "/v1/sources")
	var v struct{ Sources []source.Status }
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET /v1/sources: %d %s", code, body)
	}
	return v.Sources
}

// sourceMetrics parses GET /metrics and returns, for source name, each
// tandem_source_messages_total event's count (and the tandem_source
// gauges as "gauge_<of>") and the ack latency histogram's sample count.
func (r *outcomeRig) sourceMetrics(t testing.TB, name string) (map[string]float64, uint64) {
	t.Helper()
	code, body := r.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	label := func(m *dto.Metric, k string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == k {
				return l.GetValue()
			}
		}
		return ""
	}
	events := map[string]float64{}
	if f := fams["tandem_source_messages_total"]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "source") == name {
				events[label(m, "event")] = m.GetCounter().GetValue()
			}
		}
	}
	if f := fams["tandem_source"]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "source") == name {
				events["gauge_"+label(m, "of")] = m.GetGauge().GetValue()
			}
		}
	}
	var acks uint64
	if f := fams["tandem_source_ack_latency_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			if label(m, "source") == name {
				acks = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return events, acks
}

// loadRestartYAML is a route over one source feeding two counting
// targets.
func loadRestartYAML(src string, billing, shipping *byN) string {
	return fmt.Sprintf(`sources:
  bus: %s
targets:
  billing: {url: %q, retry: {initial: 10ms, max: 100ms}}
  shipping: {url: %q, retry: {initial: 10ms, max: 100ms}}
routes:
  - name: orders
    source: bus
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, src, billing.srv.URL, shipping.srv.URL)
}

// checkDown waits until /readyz says the source is not consuming and
// GET /v1/sources shows it reconnecting with the error.
func checkDown(t *testing.T, r *outcomeRig) {
	t.Helper()
	poll(t, 30*time.Second, "/readyz 503 naming the source", func() bool {
		code, body := r.get(t, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "source bus is connecting")
	})
	if s := r.sources(t)[0]; s.State != source.StateConnecting {
		t.Errorf("source while the broker is away: %+v", s)
	}
	if ev, _ := r.sourceMetrics(t, "bus"); ev["gauge_up"] != 0 {
		t.Errorf("tandem_source{of=up} while the broker is away: %v", ev["gauge_up"])
	}
}

// checkRecovered waits until the source consumes again with nothing
// pending, then checks the metrics add up.
func checkRecovered(t *testing.T, r *outcomeRig, n int) {
	t.Helper()
	poll(t, 30*time.Second, "/readyz 200", func() bool { code, _ := r.get(t, "/readyz"); return code == http.StatusOK })
	poll(t, 10*time.Second, "lag and in flight 0", func() bool {
		s := r.sources(t)[0]
		return s.State == source.StateConsuming && s.Lag == 0 && s.InFlight == 0 && s.Error == ""
	})
	ev, acks := r.sourceMetrics(t, "bus")
	t.Logf("metrics: %v, ack latency samples %d", ev, acks)
	if ev["gauge_up"] != 1 || ev["gauge_in_flight"] != 0 {
		t.Errorf("gauges after recovery: up %v, in_flight %v", ev["gauge_up"], ev["gauge_in_flight"])
	}
	if ev["accepted"] < float64(n) || ev["received"] != ev["accepted"]+ev["dead_lettered"] || float64(acks) != ev["accepted"] {
		t.Errorf("metrics after the run: %v, ack latency samples %d; want accepted >= %d, received = accepted + dead_lettered, one ack latency per accepted", ev, acks, n)
	}
}

// TestNATSBrokerRestartUnderLoad kills the NATS server (SIGKILL) while
// messages are published and consumed, restarts it on the same store:
// the source reconnects by itself, /readyz names it while it is away,
// and every message published reaches both targets exactly once.
func TestNATSBrokerRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker")
	}
	srv := startNATS(t)
	billing, shipping := newByN(t), newByN(t)
	r := newOutcomeRig(t, loadRestartYAML(fmt.Sprintf(`{kind: nats, url: %q, stream: R, subjects: ["r.in"], max_in_flight: 32, ack_wait: 2s, nak_delay: 100ms}`, srv.url()), billing, shipping))
	poll(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == source.StateConsuming })

	pc, err := nats.Connect(srv.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pjs, _ := jetstream.New(pc)
	const n = 1000
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(120 * time.Second)
		for i := range n {
			m := &nats.Msg{Subject: "r.in", Data: fmt.Appendf(nil, `{"n":"%d"}`, i), Header: nats.Header{"Nats-Msg-Id": {fmt.Sprint("m-", i)}}}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := pjs.PublishMsg(ctx, m)
				cancel()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					pubDone <- fmt.Errorf("publish %d: %w", i, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			published.Add(1)
			time.Sleep(time.Millisecond)
		}
		pubDone <- nil
	}()
	poll(t, 60*time.Second, "a part delivered", func() bool { return billing.count() >= n/5 })
	srv.kill()
	t.Logf("broker killed: %d published, %d at billing", published.Load(), billing.count())
	checkDown(t, r)
	time.Sleep(time.Second)
	srv.start(t)
	t.Log("broker restarted")
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	poll(t, 120*time.Second, "every message at both targets", func() bool { return billing.count() == n && shipping.count() == n })
	billing.exactlyOnce(t, "billing", n)
	shipping.exactlyOnce(t, "shipping", n)
	checkRecovered(t, r, n)
}

// TestAMQPConnectionCutUnderLoad resets the source's connection to
// RabbitMQ (through a proxy; the shared server keeps running) while
// messages are published and consumed, and lets it back after a while:
// the source reconnects with backoff and every message reaches both
// targets exactly once.
func TestAMQPConnectionCutUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a broker connection")
	}
	direct := needAMQP(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tp, "amqp", "127.0.0.1:0", u.Host)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()
	via := *u
	via.Host = proxy.Listen
	queue := uniq(t)
	conn, err := amqp.Dial(direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	billing, shipping := newByN(t), newByN(t)
	r := newOutcomeRig(t, loadRestartYAML(fmt.Sprintf(`{kind: amqp, url: %q, queue: %s, max_in_flight: 32, nak_delay: 100ms}`, via.String(), queue), billing, shipping))
	poll(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == source.StateConsuming })
	const n = 1000
	pubDone := make(chan error, 1)
	go func() {
		for i := range n {
			err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: fmt.Sprint("m-", i), Body: fmt.Appendf(nil, `{"n":"%d"}`, i)})
			if err != nil {
				pubDone <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		pubDone <- nil
	}()
	poll(t, 60*time.Second, "a part delivered", func() bool { return billing.count() >= n/5 })
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(`{"name":"cut","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
		t.Fatal(err)
	}
	t.Logf("connection cut: %d at billing", billing.count())
	checkDown(t, r)
	time.Sleep(2 * time.Second)
	if err := proxy.Toxics.RemoveToxic(context.Background(), "cut"); err != nil {
		t.Fatal(err)
	}
	t.Log("connection restored")
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	poll(t, 120*time.Second, "every message at both targets", func() bool { return billing.count() == n && shipping.count() == n })
	billing.exactlyOnce(t, "billing", n)
	shipping.exactlyOnce(t, "shipping", n)
	checkRecovered(t, r, n)
}

// TestMQTTConnectionCutUnderLoad resets the source's connection to
// Mosquitto (through a proxy) while QoS 1 messages flow, then lets it
// back: the source reconnects into its persistent session and every
// message reaches both targets. MQTT messages carry no idempotency key,
// so one whose PUBACK the cut lost may arrive twice (at least once).
func TestMQTTConnectionCutUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a broker connection")
	}
	direct := os.Getenv("TANDEM_TEST_MQTT")
	if direct == "" {
		direct = "tcp://127.0.0.1:1883"
	}
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	probe := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(direct).SetClientID(fmt.Sprint("probe", time.Now().UnixNano()%1e9)))
	if tok := probe.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("MQTT not reachable at %s: %v", direct, tok.Error())
		}
		t.Skipf("MQTT not reachable at %s: %v", direct, tok.Error())
	}
	defer probe.Disconnect(100)
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tp, "mqtt", "127.0.0.1:0", u.Host)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer proxy.Stop()
	topic := "cut/" + uniq(t)
	clientID := fmt.Sprintf("tcut%d", time.Now().UnixNano()%1e12)
	defer func() {
		cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(direct).SetClientID(clientID).SetCleanSession(true))
		if tok := cl.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			cl.Disconnect(0)
		}
	}()
	billing, shipping := newByN(t), newByN(t)
	r := newOutcomeRig(t, loadRestartYAML(fmt.Sprintf(`{kind: mqtt, url: "tcp://%s", topic: %q, client_id: %s, max_in_flight: 32}`, proxy.Listen, topic, clientID), billing, shipping))
	poll(t, 10*time.Second, "source consuming", func() bool { return r.mgr.Status()[0].State == source.StateConsuming })
	const n = 1000
	pubDone := make(chan error, 1)
	go func() {
		for i := range n {
			tok := probe.Publish(topic, 1, false, fmt.Sprintf(`{"n":"%d"}`, i))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				pubDone <- fmt.Errorf("publish %d: %v", i, tok.Error())
				return
			}
		}
		pubDone <- nil
	}()
	poll(t, 60*time.Second, "a part delivered", func() bool { return billing.count() >= n/5 })
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(`{"name":"cut","type":"reset_peer","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
		t.Fatal(err)
	}
	t.Logf("connection cut: %d at billing", billing.count())
	checkDown(t, r)
	time.Sleep(2 * time.Second)
	if err := proxy.Toxics.RemoveToxic(context.Background(), "cut"); err != nil {
		t.Fatal(err)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	poll(t, 120*time.Second, "every message at both targets", func() bool { return billing.count() == n && shipping.count() == n })
	poll(t, 30*time.Second, "/readyz 200", func() bool { code, _ := r.get(t, "/readyz"); return code == http.StatusOK })
	dups := 0
	for _, c := range []*byN{billing, shipping} {
		c.mu.Lock()
		for i := range n {
			switch k := strconv.Itoa(i); {
			case c.got[k] == 0:
				t.Errorf("message %s never delivered", k)
			case c.got[k] > 1:
				dups++
			}
		}
		c.mu.Unlock()
	}
	t.Logf("%d deliveries beyond the first (redelivered after the cut, no idempotency key in MQTT 3.1.1)", dups)
}
