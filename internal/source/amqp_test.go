package source

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// amqpURL is the RabbitMQ of the tests; a missing one fails in CI and
// skips elsewhere.
func amqpURL(t testing.TB) string {
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
		t.Skipf("RabbitMQ not reachable at %s; start rabbitmq-server or set TANDEM_TEST_AMQP: %v", u, err)
	}
	conn.Close()
	return u
}

// amqpRig is a rig fed by a fresh queue, with a channel to publish on.
func amqpRig(t *testing.T) (*rig, *amqp.Channel, string) {
	url := amqpURL(t)
	queue := testName(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(queue, false, false, false) })
	r := newRigWith(t, fmt.Sprintf("{kind: amqp, url: %q, queue: %s, declare: true, max_in_flight: 64, nak_delay: 50ms}", url, queue))
	return r, ch, queue
}

func TestAMQPThousandExactlyOnce(t *testing.T) {
	r, ch, queue := amqpRig(t)
	const n = 1000
	for i := range n {
		err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json",
			MessageId: fmt.Sprintf("m-%d", i), Body: fmt.Appendf(nil, `{"n":"%d"}`, i),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*counter{r.billing, r.ship} {
		waitFor(t, 60*time.Second, "every message at the target", func() bool { return len(c.snapshot()) == n })
	}
	waitFor(t, 10*time.Second, "queue drained and acked", func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0 && r.mgr.Status()[0].InFlight == 0
	})
	for name, c := range map[string]*counter{"billing": r.billing, "shipping": r.ship} {
		got := c.snapshot()
		for i := range n {
			if k := fmt.Sprint(i); got[k] != 1 {
				t.Errorf("%s got message %s %d times, want 1", name, k, got[k])
			}
		}
	}
}

func TestAMQPPoisonDeadLettered(t *testing.T) {
	r, ch, queue := amqpRig(t)
	err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, ContentType: "application/json", MessageId: "poison", Body: []byte(`not json`),
	})
	if err != nil {
		t.Fatal(err)
	}
	var dead []record.Delivery
	waitFor(t, 10*time.Second, "a dead letter", func() bool {
		res, err := r.st.DeliveryList(context.Background(), &store.DeliveryListParams{Status: record.DeliveryDead})
		if err != nil {
			t.Fatal(err)
		}
		dead = res.Deliveries
		return len(dead) == 1
	})
	if !strings.Contains(dead[0].LastError, "not valid JSON") || dead[0].Target != DeadTarget("bus") {
		t.Errorf("dead letter: target %s reason %q", dead[0].Target, dead[0].LastError)
	}
	waitFor(t, 10*time.Second, "poison acked", func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && q.Messages == 0 && r.mgr.Status()[0].InFlight == 0
	})
}
