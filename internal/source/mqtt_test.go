package source

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// mqttURL is the MQTT broker of the tests (Mosquitto); a missing one
// fails in CI and skips elsewhere.
func mqttURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TANDEM_TEST_MQTT")
	if u == "" {
		u = "tcp://127.0.0.1:1883"
	}
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(u).SetClientID(fmt.Sprint("probe", time.Now().UnixNano()%1e9)).SetConnectTimeout(2 * time.Second))
	if tok := cl.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("MQTT not reachable at %s (TANDEM_TEST_MQTT): %v", u, tok.Error())
		}
		t.Skipf("MQTT not reachable at %s; start mosquitto or set TANDEM_TEST_MQTT: %v", u, tok.Error())
	}
	cl.Disconnect(0)
	return u
}

// mqttRig is a rig fed by a fresh topic, with a QoS 1 publisher. The
// source's session is removed at the end.
func mqttRig(t *testing.T, extra string) (*rig, mqtt.Client, string, string) {
	url := mqttURL(t)
	topic := "t/" + testName(t)
	clientID := fmt.Sprintf("tdm%d", time.Now().UnixNano()%1e12)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID + "p"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(100) })
	t.Cleanup(func() { endMQTTSession(url, clientID) })
	r := newRigWith(t, fmt.Sprintf("{kind: mqtt, url: %q, topic: %q, client_id: %s, max_in_flight: 64, nak_delay: 50ms%s}", url, topic, clientID, extra))
	return r, pub, topic, clientID
}

// endMQTTSession connects with a clean session, which discards the
// broker's state for clientID.
func endMQTTSession(url, clientID string) {
	cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true))
	if tok := cl.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		cl.Disconnect(0)
	}
}

func mqttPublish(t testing.TB, pub mqtt.Client, topic, body string) {
	t.Helper()
	tok := pub.Publish(topic, 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

func TestMQTTThousandExactlyOnce(t *testing.T) {
	r, pub, topic, _ := mqttRig(t, "")
	const n = 1000
	for i := range n {
		mqttPublish(t, pub, topic, fmt.Sprintf(`{"n":"%d"}`, i))
	}
	for _, c := range []*counter{r.billing, r.ship} {
		waitFor(t, 60*time.Second, "every message at the target", func() bool { return len(c.snapshot()) == n })
	}
	waitFor(t, 10*time.Second, "nothing in flight", func() bool { return r.mgr.Status()[0].InFlight == 0 })
	for name, c := range map[string]*counter{"billing": r.billing, "shipping": r.ship} {
		got := c.snapshot()
		for i := range n {
			if k := fmt.Sprint(i); got[k] != 1 {
				t.Errorf("%s got message %s %d times, want 1", name, k, got[k])
			}
		}
	}
	if s := r.mgr.Status()[0]; s.Kind != "mqtt" || s.State != StateConsuming || s.Lag != -1 {
		t.Errorf("status: %+v", s)
	}
}

// TestMQTTPoisonAndOutage: a poison message is dead-lettered and
// acknowledged; one that meets a store outage is held and committed once
// the store is back. A second session of the same client id then gets
// nothing again: everything was acknowledged.
func TestMQTTPoisonAndOutage(t *testing.T) {
	r, pub, topic, _ := mqttRig(t, "")
	mqttPublish(t, pub, topic, `{"n": broken`)
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
	r.st.down.Store(true)
	mqttPublish(t, pub, topic, `{"n":"late"}`)
	waitFor(t, 10*time.Second, "several tries while the store is down", func() bool { return r.st.refused.Load() >= 3 })
	if got := r.billing.snapshot()["late"]; got != 0 {
		t.Fatalf("delivered during the outage")
	}
	if s := r.mgr.Status()[0]; s.InFlight != 1 {
		t.Errorf("in flight during the outage: %+v", s)
	}
	r.st.down.Store(false)
	waitFor(t, 10*time.Second, "delivered after the outage", func() bool { return r.billing.snapshot()["late"] == 1 && r.ship.snapshot()["late"] == 1 })
	waitFor(t, 10*time.Second, "nothing in flight", func() bool { return r.mgr.Status()[0].InFlight == 0 })

	// Stop and start the source again on the same session: nothing comes back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.mgr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	before := r.st.inserts.Load()
	r.mgr.Start(context.Background())
	waitFor(t, 10*time.Second, "consuming again", func() bool { return r.mgr.Status()[0].State == StateConsuming })
	// A marker published now comes after anything the session still held.
	mqttPublish(t, pub, topic, `{"n":"marker"}`)
	waitFor(t, 10*time.Second, "the marker delivered", func() bool { return r.billing.snapshot()["marker"] == 1 })
	if got := r.st.inserts.Load(); got != before+1 {
		t.Errorf("a new session got %d messages again: they were not acknowledged", got-before-1)
	}
	if got := r.billing.snapshot()["late"]; got != 1 {
		t.Errorf("late delivered %d times", got)
	}
}

// TestMQTTUnackedRedelivered: messages received but not committed when
// the source stops are not acknowledged; the next session gets them.
func TestMQTTUnackedRedelivered(t *testing.T) {
	r, pub, topic, _ := mqttRig(t, "")
	r.st.down.Store(true)
	mqttPublish(t, pub, topic, `{"n":"held"}`)
	waitFor(t, 10*time.Second, "held in flight", func() bool { return r.mgr.Status()[0].InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.mgr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r.st.down.Store(false)
	r.mgr.Start(context.Background())
	waitFor(t, 20*time.Second, "redelivered in the next session and delivered", func() bool {
		return r.billing.snapshot()["held"] == 1 && r.ship.snapshot()["held"] == 1
	})
}
