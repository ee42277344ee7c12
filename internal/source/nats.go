package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-run/tandem/internal/config"
)

// natsConsumer consumes a JetStream durable pull consumer.
type natsConsumer struct {
	r *runner
}

func (c *natsConsumer) run(ctx context.Context) {
	r := c.r
	for n := 0; ctx.Err() == nil; n++ {
		r.setState(StateConnecting, nil)
		err := c.session(ctx)
		if ctx.Err() != nil {
			break
		}
		r.setState(StateConnecting, err)
		r.log.Warn("nats source disconnected; reconnecting", "error", err, "in", backoff(n).String())
		if !sleep(ctx, backoff(n)) {
			break
		}
	}
	r.drain()
}

// session connects, makes sure the stream and consumer exist, and consumes
// until ctx ends or the connection is lost for good. In-flight messages
// are settled before it returns.
func (c *natsConsumer) session(ctx context.Context) error {
	r := c.r
	cfg := r.cfg
	lost := make(chan error, 1)
	nc, err := nats.Connect(cfg.URL,
		nats.Name("tandem source "+cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			r.setState(StateConnecting, fmt.Errorf("disconnected: %v", err))
		}),
		nats.ReconnectHandler(func(*nats.Conn) { r.setState(StateConsuming, nil) }),
		nats.ClosedHandler(func(*nats.Conn) {
			select {
			case lost <- errors.New("connection closed"):
			default:
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if len(cfg.Subjects) > 0 {
		if _, err := js.CreateOrUpdateStream(setup, jetstream.StreamConfig{Name: cfg.Stream, Subjects: cfg.Subjects, Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Stream, err)
		}
	}
	policy := jetstream.DeliverAllPolicy
	switch cfg.Deliver {
	case config.DeliverNew:
		policy = jetstream.DeliverNewPolicy
	case config.DeliverLast:
		policy = jetstream.DeliverLastPolicy
	}
	cons, err := js.CreateOrUpdateConsumer(setup, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: policy,
		MaxAckPending: cfg.MaxInFlight,
		AckWait:       cfg.AckWait.D(),
	})
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cfg.Consumer, err)
	}
	r.open()
	defer r.drain()
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if !r.join() {
			return // not acknowledged: delivered again after ack_wait
		}
		defer r.wg.Done()
		c.receive(ctx, msg)
	},
		jetstream.PullMaxMessages(cfg.MaxInFlight),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.log.Debug("nats consume", "error", err)
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				// The consumer is gone (deleted, or a server that lost its
				// state): start over, which makes it again.
				select {
				case lost <- fmt.Errorf("consume: %w", err):
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	r.setState(StateConsuming, nil)
	r.log.Info("nats source consuming", "stream", cfg.Stream, "consumer", cfg.Consumer)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	c.refreshLag(ctx, cons)
	for {
		select {
		case <-ctx.Done():
			cc.Stop()
			r.drain() // settle what is in flight while the connection lives
			return nil
		case err := <-lost:
			cc.Stop()
			r.drain()
			return err
		case <-t.C:
			c.refreshLag(ctx, cons)
		}
	}
}

func (c *natsConsumer) refreshLag(ctx context.Context, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if info, err := cons.Info(ctx); err == nil {
		c.r.setLag(int64(info.NumPending))
	}
}

// receive hands one JetStream message to the runner and settles it.
func (c *natsConsumer) receive(ctx context.Context, msg jetstream.Msg) {
	r := c.r
	m := &message{body: msg.Data(), header: http.Header{}}
	for k, vs := range msg.Headers() {
		m.header[http.CanonicalHeaderKey(k)] = vs
	}
	m.contentType = m.header.Get("Content-Type")
	keyHeader := r.cfg.IdempotencyHeader
	if keyHeader == "" {
		keyHeader = nats.MsgIdHdr
	}
	m.key = msg.Headers().Get(keyHeader)
	if m.key == "" {
		m.key = m.header.Get(keyHeader)
	}
	if md, err := msg.Metadata(); err == nil {
		m.redelivered = md.NumDelivered > 1
		if m.key == "" {
			// The stream sequence names the message: a redelivery after a
			// crash between commit and ack is then recognised.
			m.key = md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
		}
	}
	m.header.Set("Nats-Subject", msg.Subject())
	r.dispatch(ctx, m, func(v verdict) {
		var err error
		if v == ack {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err = msg.DoubleAck(actx)
			cancel()
		} else {
			err = msg.NakWithDelay(r.cfg.NakDelay.D())
		}
		if err != nil {
			// The broker delivers it again after ack_wait; the idempotency
			// key makes that repeat harmless.
			r.log.Warn("settle nats message", "error", err)
		}
	})
}
