package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttConsumer consumes one MQTT topic filter at QoS 1, in a persistent
// session (clean session off, a fixed client id), with manual
// acknowledgements: a PUBACK is sent only after the message's commit, and
// the broker delivers again, after a reconnect, whatever was not
// acknowledged.
type mqttConsumer struct {
	r *runner
}

func (c *mqttConsumer) run(ctx context.Context) {
	r := c.r
	for n := 0; ctx.Err() == nil; n++ {
		r.setState(StateConnecting, nil)
		consumed, err := c.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if consumed {
			n = 0
		}
		r.setState(StateConnecting, err)
		r.log.Warn("mqtt source disconnected; reconnecting", "error", err, "in", backoff(n).String())
		if !sleep(ctx, backoff(n)) {
			break
		}
	}
	r.drain()
}

// session connects, subscribes and consumes until ctx ends or the
// connection is lost. It reports whether it got as far as consuming.
// Messages in flight are settled before it returns: the client stays
// connected until their acknowledgements went out.
func (c *mqttConsumer) session(ctx context.Context) (bool, error) {
	r := c.r
	cfg := r.cfg
	r.setLag(-1) // MQTT has no way to ask the broker what it holds
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(false). // reconnects are this loop's, with backoff
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(10 * time.Second).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	// Messages of the persistent session can arrive before Subscribe
	// returns: every message goes to the one handler.
	r.open()
	handler := func(_ mqtt.Client, m mqtt.Message) {
		if !r.join() {
			return // not acknowledged: the broker delivers it next session
		}
		defer r.wg.Done()
		c.receive(ctx, m)
	}
	opts.SetDefaultPublishHandler(handler)
	cl := mqtt.NewClient(opts)
	if t := cl.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		err := t.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		cl.Disconnect(0)
		r.drain()
		return false, fmt.Errorf("connect: %w", err)
	}
	defer cl.Disconnect(250)
	if t := cl.Subscribe(cfg.Topic, 1, handler); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		err := t.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		r.drain()
		return false, fmt.Errorf("subscribe %s: %w", cfg.Topic, err)
	}
	r.setState(StateConsuming, nil)
	r.log.Info("mqtt source consuming", "topic", cfg.Topic, "client_id", cfg.ClientID)
	select {
	case <-ctx.Done():
		r.drain() // settle what is in flight while the connection lives
		return true, nil
	case err := <-lost:
		r.drain()
		return true, fmt.Errorf("connection lost: %w", err)
	}
}

// receive hands one MQTT message to the runner. MQTT has no negative
// acknowledgement: a message that cannot be committed now (store outage)
// is held, with its slot, and tried again every nak_delay; one still not
// committed when the source stops stays unacknowledged, and the broker
// delivers it again in the next session.
func (c *mqttConsumer) receive(ctx context.Context, msg mqtt.Message) {
	r := c.r
	m := &message{body: msg.Payload(), header: http.Header{}, redelivered: msg.Duplicate()}
	m.header.Set("Mqtt-Topic", msg.Topic())
	m.header.Set("Mqtt-Message-Id", strconv.Itoa(int(msg.MessageID())))
	r.dispatch(ctx, m, func(v verdict) {
		for v == nak {
			if !sleep(ctx, r.cfg.NakDelay.D()) {
				return // left unacknowledged: redelivered next session
			}
			m.redelivered = true
			v = r.handle(context.WithoutCancel(ctx), m)
		}
		msg.Ack()
	})
}
