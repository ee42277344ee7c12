package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
)

// Publishers publishes summaries (on_complete publish) to the brokers of
// the configured sources. Each publish returns only once the broker
// confirmed it: a JetStream publish ack (the stream stored it), an AMQP
// publisher confirm for a message that was routed to a queue. An error
// leaves the delivery to be retried; a repeat carries the same message
// id (Nats-Msg-Id, which JetStream deduplicates; AMQP message-id).
// Connections open on first use and are dropped after an error, so the
// next attempt reconnects. *Publishers is an engine.Publisher.
type Publishers struct {
	cfg  *config.Config
	mu   sync.Mutex
	nats map[string]*natsPub
	amqp map[string]*amqpPub
}

// NewPublishers returns the publishers of cfg's sources.
func NewPublishers(cfg *config.Config) *Publishers {
	return &Publishers{cfg: cfg, nats: map[string]*natsPub{}, amqp: map[string]*amqpPub{}}
}

// ErrUnknownSource: a publish names a source that is not configured.
var ErrUnknownSource = errors.New("unknown source")

// errNotRouted: the broker confirmed an AMQP message no queue took.
var errNotRouted = errors.New("no queue is bound to take it")

// Publish sends p and waits for the broker's confirmation.
func (ps *Publishers) Publish(ctx context.Context, p *engine.PublishParams) error {
	sc := ps.cfg.Sources[p.Source]
	if sc == nil {
		return fmt.Errorf("%w %q", ErrUnknownSource, p.Source)
	}
	ps.mu.Lock()
	switch sc.Kind {
	case config.SourceNATS:
		np := ps.nats[sc.Name]
		if np == nil {
			np = &natsPub{cfg: sc}
			ps.nats[sc.Name] = np
		}
		ps.mu.Unlock()
		return np.publish(ctx, p)
	case config.SourceAMQP:
		ap := ps.amqp[sc.Name]
		if ap == nil {
			ap = &amqpPub{cfg: sc}
			ps.amqp[sc.Name] = ap
		}
		ps.mu.Unlock()
		return ap.publish(ctx, p)
	}
	ps.mu.Unlock()
	return fmt.Errorf("source %s: cannot publish to kind %q", sc.Name, sc.Kind)
}

// Close closes every connection.
func (ps *Publishers) Close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, np := range ps.nats {
		np.close()
	}
	for _, ap := range ps.amqp {
		ap.mu.Lock()
		ap.drop()
		ap.mu.Unlock()
	}
}

// natsPub publishes to JetStream over one connection.
type natsPub struct {
	cfg *config.Source
	mu  sync.Mutex
	nc  *nats.Conn
	js  jetstream.JetStream
}

func (np *natsPub) conn(ctx context.Context) (jetstream.JetStream, error) {
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.js != nil && !np.nc.IsClosed() {
		return np.js, nil
	}
	nc, err := nats.Connect(np.cfg.URL, nats.Name("tandem publish "+np.cfg.Name), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if len(np.cfg.Subjects) > 0 {
		// As for consuming: a source with subjects has its stream made.
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: np.cfg.Stream, Subjects: np.cfg.Subjects, Storage: jetstream.FileStorage}); err != nil {
			nc.Close()
			return nil, fmt.Errorf("stream %s: %w", np.cfg.Stream, err)
		}
	}
	np.nc, np.js = nc, js
	return js, nil
}

func (np *natsPub) publish(ctx context.Context, p *engine.PublishParams) error {
	js, err := np.conn(ctx)
	if err != nil {
		return err
	}
	m := nats.NewMsg(p.Subject)
	m.Data = p.Body
	for k, vs := range p.Header {
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	m.Header.Set(nats.MsgIdHdr, p.MsgID)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish to %s: %w", p.Subject, err)
	}
	return nil
}

func (np *natsPub) close() {
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.nc != nil {
		np.nc.Close()
		np.nc, np.js = nil, nil
	}
}

// amqpPub publishes on one confirming channel, one message at a time, so
// a return (unroutable) and the confirm are matched to their message.
type amqpPub struct {
	cfg     *config.Source
	mu      sync.Mutex
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

func (ap *amqpPub) open() error {
	if ap.ch != nil && !ap.ch.IsClosed() {
		return nil
	}
	ap.drop()
	conn, err := amqp.DialConfig(ap.cfg.URL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "tandem publish " + ap.cfg.Name}})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return fmt.Errorf("channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return fmt.Errorf("confirm mode: %w", err)
	}
	ap.conn, ap.ch = conn, ch
	ap.returns = ch.NotifyReturn(make(chan amqp.Return, 1))
	return nil
}

func (ap *amqpPub) drop() {
	if ap.conn != nil {
		_ = ap.conn.Close()
	}
	ap.conn, ap.ch = nil, nil
}

func (ap *amqpPub) publish(ctx context.Context, p *engine.PublishParams) error {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if err := ap.open(); err != nil {
		return err
	}
	h := amqp.Table{}
	for k, vs := range p.Header {
		if k != "Content-Type" && len(vs) > 0 {
			h[k] = vs[0]
		}
	}
	dc, err := ap.ch.PublishWithDeferredConfirmWithContext(ctx, p.Exchange, p.RoutingKey, true, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent, ContentType: p.Header.Get("Content-Type"), MessageId: p.MsgID,
		Timestamp: time.Now().UTC(), Headers: h, Body: p.Body,
	})
	if err != nil {
		ap.drop()
		return fmt.Errorf("publish to exchange %q: %w", p.Exchange, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		ap.drop()
		return fmt.Errorf("confirm: %w", err)
	}
	if !ok {
		return fmt.Errorf("publish to exchange %q: the broker refused it (nack)", p.Exchange)
	}
	// A mandatory message that no queue took is returned before its ack.
	select {
	case r := <-ap.returns:
		return fmt.Errorf("publish to exchange %q with key %q: %w (%s)", p.Exchange, p.RoutingKey, errNotRouted, r.ReplyText)
	default:
	}
	return nil
}
