package source

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandem-run/tandem/internal/telemetry"
)

// TestNATSLagAndInFlight: while the store holds every insert, a source
// with max_in_flight 4 has 4 messages in flight and the rest pending at
// the broker (the consumer's NumPending), and shows both.
func TestNATSLagAndInFlight(t *testing.T) {
	url := natsURL(t)
	name := testName(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	hold := make(chan struct{})
	r := newRigHeld(t, fmt.Sprintf("{kind: nats, url: %q, stream: %s, subjects: [%q], max_in_flight: 4}", url, name, "t."+name), hold)
	for i := range 20 {
		if _, err := js.Publish(context.Background(), "t."+name, fmt.Appendf(nil, `{"n":"%d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "lag 16, in flight 4", func() bool {
		s := r.mgr.Status()[0]
		return s.Lag == 16 && s.InFlight == 4
	})
	close(hold)
	waitFor(t, 30*time.Second, "lag 0, in flight 0", func() bool {
		s := r.mgr.Status()[0]
		return s.Lag == 0 && s.InFlight == 0 && len(r.billing.snapshot()) == 20
	})
}

// TestAMQPLagAndInFlight: the same for RabbitMQ, where the lag is the
// queue's ready count (a passive declare).
func TestAMQPLagAndInFlight(t *testing.T) {
	url := amqpURL(t)
	queue := testName(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })
	hold := make(chan struct{})
	r := newRigHeld(t, fmt.Sprintf("{kind: amqp, url: %q, queue: %s, declare: true, max_in_flight: 4}", url, queue), hold)
	for i := range 20 {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{ContentType: "application/json", MessageId: fmt.Sprint("m-", i), Body: fmt.Appendf(nil, `{"n":"%d"}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "lag 16, in flight 4", func() bool {
		s := r.mgr.Status()[0]
		return s.Lag == 16 && s.InFlight == 4
	})
	close(hold)
	waitFor(t, 30*time.Second, "lag 0, in flight 0", func() bool {
		s := r.mgr.Status()[0]
		return s.Lag == 0 && s.InFlight == 0 && len(r.billing.snapshot()) == 20
	})
}

// newRigHeld is newRigWith whose store holds every insert until hold is
// closed.
func newRigHeld(t *testing.T, src string, hold chan struct{}) *rig {
	t.Helper()
	r := newRigWith(t, src)
	r.st.hold.Store(&hold)
	return r
}

// TestSourceMetricsScripted runs a known script through a JetStream
// source (good messages, a poison one, one that meets a store outage and
// is redelivered) and checks GET /metrics, parsed, counts each event.
func TestSourceMetricsScripted(t *testing.T) {
	url := natsURL(t)
	name := testName(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	reg := telemetry.NewRegistry()
	r := newRigMetrics(t, fmt.Sprintf("{kind: nats, url: %q, stream: %s, subjects: [%q], nak_delay: 50ms}", url, name, "t."+name), telemetry.NewMetrics(reg))
	r.js, r.stream, r.subject = js, name, "t."+name
	srv := httptest.NewServer(telemetry.Handler(reg))
	defer srv.Close()
	const good = 10
	for i := range good {
		r.publish(t, fmt.Sprintf(`{"n":"%d"}`, i), nil)
	}
	r.publish(t, `{"n": poison`, nil)
	waitFor(t, 20*time.Second, "good ones delivered", func() bool { return len(r.ship.snapshot()) == good })
	r.st.down.Store(true)
	r.publish(t, `{"n":"late"}`, nil)
	waitFor(t, 10*time.Second, "a redelivery", func() bool { return r.consumerInfo(t).NumRedelivered > 0 })
	r.st.down.Store(false)
	waitFor(t, 20*time.Second, "the late one delivered", func() bool { return r.ship.snapshot()["late"] == 1 })
	waitFor(t, 10*time.Second, "all acked", func() bool { return r.consumerInfo(t).AckFloor.Stream == good+2 })

	scrape := func() map[string]*dto.MetricFamily {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return fams
	}
	sourceGauges := func(fams map[string]*dto.MetricFamily) map[string]float64 {
		gauge := map[string]float64{}
		for _, m := range fams["tandem_source"].GetMetric() {
			var src, of string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "source":
					src = l.GetValue()
				case "of":
					of = l.GetValue()
				}
			}
			if src == "bus" {
				gauge[of] = m.GetGauge().GetValue()
			}
		}
		return gauge
	}
	// The lag gauge is refreshed from the broker now and then, not at
	// each ack: wait for the refresh after the last ack.
	var fams map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, "the lag gauge back at 0", func() bool {
		fams = scrape()
		return sourceGauges(fams)["lag"] == 0
	})
	ev := map[string]float64{}
	for _, m := range fams["tandem_source_messages_total"].GetMetric() {
		var src, event string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "source":
				src = l.GetValue()
			case "event":
				event = l.GetValue()
			}
		}
		if src == "bus" {
			ev[event] = m.GetCounter().GetValue()
		}
	}
	naks := ev["redelivered"] // each redelivery follows one nak of the late message
	if ev["accepted"] != good+1 || ev["dead_lettered"] != 1 || naks < 1 || ev["received"] != good+2+naks {
		t.Errorf("tandem_source_messages_total: %v; want accepted %d, dead_lettered 1, redelivered >= 1, received = %d + redelivered", ev, good+1, good+2)
	}
	var samples uint64
	for _, m := range fams["tandem_source_ack_latency_seconds"].GetMetric() {
		samples += m.GetHistogram().GetSampleCount()
	}
	if samples != good+2 {
		t.Errorf("ack latency samples %d, want %d (one per acknowledged message)", samples, good+2)
	}
	gauge := sourceGauges(fams)
	if gauge["up"] != 1 || gauge["in_flight"] != 0 || gauge["lag"] != 0 {
		t.Errorf("tandem_source gauges: %v, want up 1, in_flight 0, lag 0", gauge)
	}
	if !strings.Contains(fmt.Sprint(fams["tandem_source_ack_latency_seconds"].GetType()), "HISTOGRAM") {
		t.Errorf("ack latency is a %v", fams["tandem_source_ack_latency_seconds"].GetType())
	}
}

// TestNATSConsumerDeletedRecreated: a consumer deleted under the source
// (an operator, a server that lost its state) is made again, and
// consumption goes on.
func TestNATSConsumerDeletedRecreated(t *testing.T) {
	r := newRig(t, "")
	r.publish(t, `{"n":"1"}`, nil)
	waitFor(t, 10*time.Second, "first delivered", func() bool { return r.billing.snapshot()["1"] == 1 })
	if err := r.js.DeleteConsumer(context.Background(), r.stream, "tandem"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the consumer made again", func() bool {
		_, err := r.js.Consumer(context.Background(), r.stream, "tandem")
		return err == nil && r.mgr.Status()[0].State == StateConsuming
	})
	r.publish(t, `{"n":"2"}`, nil)
	waitFor(t, 30*time.Second, "second delivered", func() bool { return r.billing.snapshot()["2"] == 1 })
	if got := r.billing.snapshot()["1"]; got != 1 {
		t.Errorf("the first message was delivered %d times", got)
	}
}
