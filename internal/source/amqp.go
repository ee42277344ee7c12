package source

import (
	"context"
	"fmt"
	"net/http"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpConsumer consumes one RabbitMQ queue with manual acknowledgements.
type amqpConsumer struct {
	r *runner
}

func (c *amqpConsumer) run(ctx context.Context) {
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
		r.log.Warn("amqp source disconnected; reconnecting", "error", err, "in", backoff(n).String())
		if !sleep(ctx, backoff(n)) {
			break
		}
	}
	r.wg.Wait()
}

// session consumes until ctx ends or the connection or channel closes. It
// reports whether it got as far as consuming.
func (c *amqpConsumer) session(ctx context.Context) (bool, error) {
	r := c.r
	cfg := r.cfg
	conn, err := amqp.DialConfig(cfg.URL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "tandem source " + cfg.Name}})
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("channel: %w", err)
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("qos: %w", err)
	}
	if cfg.Declare {
		if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, nil); err != nil {
			return false, fmt.Errorf("declare queue %s: %w", cfg.Queue, err)
		}
	}
	deliveries, err := ch.Consume(cfg.Queue, "tandem-"+cfg.Name+"-"+newID(), false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", cfg.Queue, err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	r.setState(StateConsuming, nil)
	r.log.Info("amqp source consuming", "queue", cfg.Queue)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	c.refreshLag(conn)
	for {
		select {
		case <-ctx.Done():
			r.wg.Wait() // settle what is in flight on this channel
			return true, nil
		case e := <-closed:
			r.wg.Wait()
			return true, fmt.Errorf("connection closed: %v", e)
		case d, ok := <-deliveries:
			if !ok {
				r.wg.Wait()
				return true, fmt.Errorf("channel closed")
			}
			c.receive(ctx, d)
		case <-t.C:
			c.refreshLag(conn)
		}
	}
}

// refreshLag reads the queue's ready count on a channel of its own (a
// failed passive declare closes its channel).
func (c *amqpConsumer) refreshLag(conn *amqp.Connection) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	if q, err := ch.QueueDeclarePassive(c.r.cfg.Queue, true, false, false, false, nil); err == nil {
		c.r.setLag(int64(q.Messages))
	}
}

func (c *amqpConsumer) receive(ctx context.Context, d amqp.Delivery) {
	r := c.r
	m := &message{body: d.Body, header: http.Header{}, contentType: d.ContentType, redelivered: d.Redelivered}
	for k, v := range d.Headers {
		m.header.Set(k, fmt.Sprint(v))
	}
	if d.ContentType != "" {
		m.header.Set("Content-Type", d.ContentType)
	}
	if d.MessageId != "" {
		m.header.Set("Message-Id", d.MessageId)
	}
	if d.RoutingKey != "" {
		m.header.Set("Amqp-Routing-Key", d.RoutingKey)
	}
	if h := r.cfg.IdempotencyHeader; h != "" {
		m.key = m.header.Get(h)
	} else {
		m.key = d.MessageId
	}
	r.dispatch(ctx, m, func(v verdict) {
		var err error
		if v == ack {
			err = d.Ack(false)
		} else {
			// AMQP has no delayed nack: hold the message (and its slot)
			// for nak_delay, then requeue it.
			sleep(context.WithoutCancel(ctx), r.cfg.NakDelay.D())
			err = d.Nack(false, true)
		}
		if err != nil {
			// The channel is gone; the broker redelivers the message.
			r.log.Warn("settle amqp message", "error", err)
		}
	})
}
