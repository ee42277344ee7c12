package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
)

// sourceTarget records, per message number, the message ids it was sent.
type sourceTarget struct {
	mu  sync.Mutex
	ids map[string]map[string]bool // n → message ids
}

func (s *sourceTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var v struct{ N string }
	_ = json.Unmarshal(b, &v)
	id, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), ".")
	s.mu.Lock()
	if s.ids[v.N] == nil {
		s.ids[v.N] = map[string]bool{}
	}
	s.ids[v.N][id] = true
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *sourceTarget) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// TestSourceCrashNothingLost kills `tandem serve` with SIGKILL twice while
// it consumes a JetStream stream, and restarts it on the same SQLite file:
// every message the broker saw acknowledged is delivered to both targets,
// and a redelivery of a message committed before the kill is not a second
// message.
func TestSourceCrashNothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills tandem")
	}
	url := os.Getenv("TANDEM_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS not reachable at %s (TANDEM_TEST_NATS): %v", url, err)
		}
		t.Skipf("NATS not reachable at %s; start nats-server -js or set TANDEM_TEST_NATS: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := fmt.Sprintf("CRASH%d", time.Now().UnixNano())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"c." + stream}}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(ctx, stream)
	const n = 4000
	for i := range n {
		if _, err := js.Publish(ctx, "c."+stream, fmt.Appendf(nil, `{"n":"%d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	billing := &sourceTarget{ids: map[string]map[string]bool{}}
	shipping := &sourceTarget{ids: map[string]map[string]bool{}}
	bs, ss := httptest.NewServer(billing), httptest.NewServer(shipping)
	defer bs.Close()
	defer ss.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tandem.yaml")
	cfg := fmt.Sprintf(`store: {dsn: %q}
sources:
  bus: {kind: nats, url: %q, stream: %s, max_in_flight: 128, ack_wait: 2s}
targets:
  billing: {url: %q, retry: {initial: 10ms, max: 100ms}}
  shipping: {url: %q, retry: {initial: 10ms, max: 100ms}}
routes:
  - name: orders
    source: bus
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, "file:"+filepath.Join(dir, "t.db"), url, stream, bs.URL, ss.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ackFloor := func() uint64 {
		c, err := js.Consumer(ctx, stream, "tandem")
		if err != nil {
			return 0
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0
		}
		return info.AckFloor.Stream
	}
	bin := crashBinary(t)
	var acked uint64
	for _, killAt := range []uint64{n / 4, n / 2} {
		p := crashLaunch(t, bin, cfgPath, crashFreeAddr(t))
		deadline := time.Now().Add(60 * time.Second)
		for ackFloor() < killAt {
			if time.Now().After(deadline) {
				t.Fatalf("ack floor %d, not %d, after 60s\n%s", ackFloor(), killAt, p.crashLogs())
			}
			time.Sleep(2 * time.Millisecond)
		}
		p.crashKill(t)
		acked = ackFloor() // what the broker saw acknowledged when tandem died
		t.Logf("killed at ack floor %d", acked)
		// None was acknowledged before its commit: every message the
		// broker counts as acknowledged is in the store the dead process
		// left (its key is <stream>:<sequence>).
		committed := committedKeys(t, filepath.Join(dir, "t.db"))
		for seq := uint64(1); seq <= acked; seq++ {
			if !committed[fmt.Sprintf("%s:%d", stream, seq)] {
				t.Fatalf("message %d was acknowledged to the broker but is not in the store", seq)
			}
		}
	}
	p := crashLaunch(t, bin, cfgPath, crashFreeAddr(t))
	deadline := time.Now().Add(90 * time.Second)
	for ackFloor() < n || billing.count() < n || shipping.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after restart: ack floor %d, billing %d, shipping %d of %d\n%s", ackFloor(), billing.count(), shipping.count(), n, p.crashLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.crashKill(t)
	for name, tg := range map[string]*sourceTarget{"billing": billing, "shipping": shipping} {
		tg.mu.Lock()
		for i := range n {
			ids := tg.ids[fmt.Sprint(i)]
			if len(ids) == 0 {
				t.Errorf("%s: message %d never delivered (acked up to %d before the last kill)", name, i, acked)
			} else if len(ids) > 1 {
				t.Errorf("%s: message %d became %d messages: a redelivery was not recognised", name, i, len(ids))
			}
		}
		tg.mu.Unlock()
	}
}

// committedKeys reads the idempotency keys of the messages in the SQLite
// file db, read-only.
func committedKeys(t *testing.T, db string) map[string]bool {
	t.Helper()
	ro, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rows, err := ro.Query(`SELECT idempotency_key FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAMQPSourceCrashNothingLost is TestSourceCrashNothingLost for a
// RabbitMQ source: tandem is killed twice mid-stream; after each kill the
// broker requeues what was not acknowledged, and every message it no
// longer holds (it saw it acknowledged) must be in the store. At the end
// each message reached both targets as one message (the AMQP message-id
// is the idempotency key).
func TestAMQPSourceCrashNothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills tandem")
	}
	url := os.Getenv("TANDEM_TEST_AMQP")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ not reachable at %s (TANDEM_TEST_AMQP): %v", url, err)
		}
		t.Skipf("RabbitMQ not reachable at %s: %v", url, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("crash%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	const n = 3000
	for i := range n {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: fmt.Sprint("m-", i), Body: fmt.Appendf(nil, `{"n":"%d"}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	billing := &sourceTarget{ids: map[string]map[string]bool{}}
	shipping := &sourceTarget{ids: map[string]map[string]bool{}}
	bs, ss := httptest.NewServer(billing), httptest.NewServer(shipping)
	defer bs.Close()
	defer ss.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tandem.yaml")
	cfg := fmt.Sprintf(`store: {dsn: %q}
sources:
  bus: {kind: amqp, url: %q, queue: %s, max_in_flight: 128}
targets:
  billing: {url: %q, retry: {initial: 10ms, max: 100ms}}
  shipping: {url: %q, retry: {initial: 10ms, max: 100ms}}
routes:
  - name: orders
    source: bus
    steps: [{name: bill, target: billing}, {name: ship, target: shipping}]
`, "file:"+filepath.Join(dir, "t.db"), url, queue, bs.URL, ss.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// ready is the queue's message count once no consumer holds any: what
	// the broker has not seen acknowledged.
	ready := func() int {
		deadline := time.Now().Add(30 * time.Second)
		for {
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if q.Consumers == 0 {
				return q.Messages
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %s still has %d consumers after tandem died", queue, q.Consumers)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	bin := crashBinary(t)
	for _, killAt := range []int{n / 4, n / 2} {
		p := crashLaunch(t, bin, cfgPath, crashFreeAddr(t))
		deadline := time.Now().Add(60 * time.Second)
		// Killed mid-stream: once the broker holds at most n-killAt ready
		// (the rest delivered; some of it acknowledged).
		for {
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			if q.Messages <= n-killAt {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the queue holds %d, not %d, after 60s\n%s", q.Messages, n-killAt, p.crashLogs())
			}
			time.Sleep(time.Millisecond)
		}
		p.crashKill(t)
		acked := n - ready()
		committed := 0
		for k := range committedKeys(t, filepath.Join(dir, "t.db")) {
			if strings.HasPrefix(k, "m-") {
				committed++
			}
		}
		t.Logf("killed: the broker saw %d acknowledged, %d committed", acked, committed)
		if committed < acked {
			t.Fatalf("the broker saw %d messages acknowledged but only %d are in the store", acked, committed)
		}
	}
	p := crashLaunch(t, bin, cfgPath, crashFreeAddr(t))
	deadline := time.Now().Add(90 * time.Second)
	for billing.count() < n || shipping.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after restart: billing %d, shipping %d of %d\n%s", billing.count(), shipping.count(), n, p.crashLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.crashKill(t)
	for name, tg := range map[string]*sourceTarget{"billing": billing, "shipping": shipping} {
		tg.mu.Lock()
		for i := range n {
			if ids := tg.ids[fmt.Sprint(i)]; len(ids) != 1 {
				t.Errorf("%s: message %d became %d messages", name, i, len(ids))
			}
		}
		tg.mu.Unlock()
	}
}
