package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"encoding/json"

	"github.com/google/uuid"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// States of a source, as GET /v1/sources shows them.
const (
	StateConnecting = "connecting"
	StateConsuming  = "consuming"
	StateStopped    = "stopped"
)

// DeadStep is the step name of a source's dead letters; their target is
// DeadTarget(source).
const DeadStep = "source"

// DeadReasonHeader carries a dead letter's reason in its message headers.
const DeadReasonHeader = "Tandem-Dead-Reason"

// DeadTarget is the target name of the dead letters of source name.
func DeadTarget(name string) string { return "source:" + name }

// maxKey is the longest idempotency key accepted, as for HTTP.
const maxKey = 255

// Ingester accepts a message on a route; *engine.Engine is one.
type Ingester interface {
	Ingest(ctx context.Context, route string, in *engine.Inbound) (*engine.Answer, error)
}

// Options configure a Manager.
type Options struct {
	// Config is the loaded, validated config. Required.
	Config *config.Config
	// Engine accepts messages. Required.
	Engine Ingester
	// Store records dead letters. Required when a source is configured.
	Store store.Store
	// Metrics counts per source. Default: private metrics.
	Metrics *telemetry.Metrics
	// Tracing makes a consumer span per broker message, continuing the
	// message's traceparent header. Default telemetry.NoTracing().
	Tracing *telemetry.Tracing
	// Logger for source events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Status is one source as GET /v1/sources shows it.
type Status struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Route    string `json:"route"`
	State    string `json:"state"`
	Lag      int64  `json:"lag"`       // messages the broker holds not yet delivered to tandem
	InFlight int64  `json:"in_flight"` // received, not yet settled
	Error    string `json:"error,omitempty"`
}

// Manager runs every configured source.
type Manager struct {
	runners []*runner
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// consumer is one broker client: it connects, consumes into r.handle and
// reconnects until ctx ends.
type consumer interface {
	run(ctx context.Context)
}

// New builds a Manager for the sources that a route consumes.
func New(opts Options) (*Manager, error) {
	if opts.Config == nil || opts.Engine == nil {
		return nil, errors.New("source: config and engine are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.NewMetrics(nil)
	}
	if opts.Tracing == nil {
		opts.Tracing = telemetry.NoTracing()
	}
	m := &Manager{}
	for _, rt := range opts.Config.Routes {
		if rt.Source == "" {
			continue
		}
		sc := opts.Config.Sources[rt.Source]
		if sc == nil {
			return nil, fmt.Errorf("source: route %s: unknown source %q", rt.Name, rt.Source)
		}
		if opts.Store == nil {
			return nil, fmt.Errorf("source %s: no store for dead letters", sc.Name)
		}
		r := &runner{
			cfg: sc, route: rt.Name, opts: opts, maxBody: int64(opts.Config.Server.MaxBody),
			log: opts.Logger.With("source", sc.Name), met: opts.Metrics.Source(sc.Name),
			slots: make(chan struct{}, sc.MaxInFlight),
		}
		r.state.Store(StateStopped)
		switch sc.Kind {
		case config.SourceNATS:
			r.c = &natsConsumer{r: r}
		case config.SourceAMQP:
			r.c = &amqpConsumer{r: r}
		case config.SourceMQTT:
			r.c = &mqttConsumer{r: r}
		default:
			return nil, fmt.Errorf("source %s: unknown kind %q", sc.Name, sc.Kind)
		}
		m.runners = append(m.runners, r)
	}
	return m, nil
}

// Start runs every source until Stop; it returns at once.
func (m *Manager) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, r := range m.runners {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.sweep(ctx)
			r.c.run(ctx)
			r.state.Store(StateStopped)
		}()
	}
}

// Stop stops consuming and waits until every message in flight is settled
// or ctx ends. Call it before the engine shuts down.
func (m *Manager) Stop(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop sources: %w", ctx.Err())
	}
}

// Status describes every source, in config order.
func (m *Manager) Status() []Status {
	out := make([]Status, 0, len(m.runners))
	for _, r := range m.runners {
		st := Status{Name: r.cfg.Name, Kind: r.cfg.Kind, Route: r.route, State: r.state.Load().(string),
			Lag: r.lag.Load(), InFlight: int64(len(r.slots))}
		if e, _ := r.lastErr.Load().(string); e != "" && st.State != StateConsuming {
			st.Error = e
		}
		out = append(out, st)
	}
	return out
}

// runner is one source and the route it feeds.
type runner struct {
	cfg     *config.Source
	route   string
	opts    Options
	maxBody int64
	log     *slog.Logger
	met     *telemetry.SourceMetrics
	c       consumer
	slots   chan struct{} // one token per message in flight
	wg      sync.WaitGroup
	state   atomic.Value // string
	lastErr atomic.Value // string
	lag     atomic.Int64
	// Broker clients call back in goroutines of their own, which may still
	// arrive as a session ends: under gate, a callback joins wg only while
	// the session is open, so waiting for wg never races an Add.
	gate   sync.Mutex
	closed bool
}

// open marks a session open for the broker client's callbacks.
func (r *runner) open() {
	r.gate.Lock()
	r.closed = false
	r.gate.Unlock()
}

// join adds a callback to wg, or reports false once the session is
// draining (its message is left unacknowledged: the broker delivers it
// again). The caller calls wg.Done when it returns.
func (r *runner) join() bool {
	r.gate.Lock()
	defer r.gate.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// drain closes the session to new callbacks and waits until every message
// in flight is settled.
func (r *runner) drain() {
	r.gate.Lock()
	r.closed = true
	r.gate.Unlock()
	r.wg.Wait()
}

func (r *runner) setState(s string, err error) {
	r.state.Store(s)
	r.met.Up(s == StateConsuming)
	if err != nil {
		r.lastErr.Store(err.Error())
	} else if s == StateConsuming {
		r.lastErr.Store("")
	}
}

// setLag records what the broker holds not yet delivered (-1: unknown).
func (r *runner) setLag(n int64) {
	r.lag.Store(n)
	r.met.Lag(n)
}

// message is a broker message in the form every kind hands over.
type message struct {
	body        []byte
	header      http.Header
	contentType string
	key         string // idempotency key ("" for none)
	redelivered bool
}

// verdict is how a broker message is settled.
type verdict int

const (
	ack verdict = iota // committed (or dead-lettered): never again
	nak                // not now: deliver again after nak_delay
)

// handle turns one broker message into a committed message or a dead
// letter, and says how to settle it. It never acks before the commit.
func (r *runner) handle(ctx context.Context, m *message) verdict {
	ctx, span := r.startConsume(ctx, m)
	v := r.settle(ctx, m)
	endConsume(span, v)
	return v
}

// settle is handle inside the message's consumer span.
func (r *runner) settle(ctx context.Context, m *message) verdict {
	r.met.Received()
	if m.redelivered {
		r.met.Redelivered()
	}
	if reason := r.check(m); reason != "" {
		return r.deadLetter(ctx, m, reason)
	}
	in := &engine.Inbound{Body: m.body, Header: m.header, IdempotencyKey: m.key}
	_, err := r.opts.Engine.Ingest(ctx, r.route, in)
	switch {
	case err == nil:
		r.met.Accepted()
		return ack
	case errors.Is(err, store.ErrIdempotencyConflict):
		return r.deadLetter(ctx, m, "the idempotency key "+m.key+" was already used on this route with a different body")
	case errors.Is(err, engine.ErrCallbackRefused):
		return r.deadLetter(ctx, m, err.Error())
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, engine.ErrShuttingDown):
		r.log.Debug("message not accepted; nak", "error", err)
		return nak
	default:
		r.log.Warn("message not accepted; nak", "error", err)
		return nak
	}
}

// check returns why m can never be accepted, or "".
func (r *runner) check(m *message) string {
	if r.maxBody > 0 && int64(len(m.body)) > r.maxBody {
		return fmt.Sprintf("the body is %d bytes, larger than the limit of %d bytes (server.max_body)", len(m.body), r.maxBody)
	}
	if len(m.key) > maxKey {
		return fmt.Sprintf("the idempotency key is longer than %d characters", maxKey)
	}
	for i := 0; i < len(m.key); i++ {
		if m.key[i] < 0x20 || m.key[i] > 0x7e {
			return fmt.Sprintf("the idempotency key has a character that is not printable ASCII at offset %d", i)
		}
	}
	ct := m.contentType
	if ct == "" {
		ct = r.cfg.ContentType
	}
	if isJSON(ct) {
		switch {
		case len(m.body) == 0:
			return "the body is empty, but the content type is JSON"
		case !utf8.Valid(m.body):
			return "the body is not valid UTF-8"
		case !json.Valid(m.body):
			var v json.RawMessage
			if err := json.Unmarshal(m.body, &v); err != nil {
				return "the body is not valid JSON: " + err.Error()
			}
			return "the body is not valid JSON"
		}
	}
	return ""
}

// deadLetter records m as a dead letter with reason; ack once it is
// durable, nak when the store cannot take it now.
func (r *runner) deadLetter(ctx context.Context, m *message, reason string) verdict {
	now := r.opts.Now().UTC()
	sum := sha256.Sum256(m.body)
	h := m.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(DeadReasonHeader, reason)
	body := m.body
	if r.maxBody > 0 && int64(len(body)) > r.maxBody {
		body = nil // the limit holds for dead letters too; the reason gives the size
	}
	key := m.key
	if len(key) > maxKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		key = ""
	}
	msg := record.Message{ID: newID(), Route: r.route, IdempotencyKey: key, BodyHash: hex.EncodeToString(sum[:]), Body: body, Headers: h}
	// The dead letter stays in the consumer span's trace.
	if tp, ts := r.opts.Tracing.TraceParent(ctx); len(ts) <= store.MaxTraceState {
		msg.TraceParent, msg.TraceState = tp, ts
	}
	d := record.Delivery{ID: newID(), Step: DeadStep, Target: DeadTarget(r.cfg.Name), Required: true, Status: record.DeliveryScheduled, NextAttemptAt: now}
	res, err := r.opts.Store.MessageInsert(ctx, &store.MessageInsertParams{Message: msg, Deliveries: []record.Delivery{d}, Now: &now})
	if err != nil && !errors.Is(err, store.ErrIdempotencyConflict) {
		r.log.Warn("record dead letter; nak", "error", err)
		return nak
	}
	if err == nil && res.Existing {
		// A redelivery of a message already recorded (as a dead letter, or
		// accepted): nothing to add.
		return ack
	}
	if err != nil {
		// The key names an accepted message with another body, and this
		// one cannot be stored under it: store it without the key.
		msg.IdempotencyKey = ""
		if _, err := r.opts.Store.MessageInsert(ctx, &store.MessageInsertParams{Message: msg, Deliveries: []record.Delivery{d}, Now: &now}); err != nil {
			r.log.Warn("record dead letter; nak", "error", err)
			return nak
		}
	}
	r.met.DeadLettered()
	r.log.Warn("message dead-lettered", "message_id", msg.ID, "reason", reason)
	// Durable now; completing it dead is best effort here and finished by
	// the next sweep otherwise.
	if err := r.complete(ctx); err != nil {
		r.log.Warn("complete dead letter", "error", err)
	}
	return ack
}

// complete claims this source's recorded dead letters and completes each
// dead with the reason kept in its message.
func (r *runner) complete(ctx context.Context) error {
	owner := "source:" + r.cfg.Name + ":" + newID()
	for {
		now := r.opts.Now().UTC()
		ds, err := r.opts.Store.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: DeadTarget(r.cfg.Name), Limit: 64, LeaseFor: time.Minute, Owner: owner, Now: &now})
		if err != nil {
			return fmt.Errorf("claim dead letters: %w", err)
		}
		for i := range ds {
			d := &ds[i]
			reason := ""
			if d.Message != nil {
				reason = http.Header(d.Message.Headers).Get(DeadReasonHeader)
			}
			if reason == "" {
				if md, err := r.opts.Store.MessageGet(ctx, d.MessageID); err == nil {
					reason = http.Header(md.Message.Headers).Get(DeadReasonHeader)
				}
			}
			if reason == "" {
				reason = "rejected by source " + r.cfg.Name
			}
			a := record.Attempt{N: d.Attempts + 1, StartedAt: now, Outcome: record.OutcomePermanent, Error: reason}
			if _, err := r.opts.Store.DeliveryComplete(ctx, store.CompleteDead(store.LeaseOf(d), a, store.Response{}, reason)); err != nil {
				return fmt.Errorf("complete dead letter: %w", err)
			}
		}
		if len(ds) < 64 {
			return nil
		}
	}
}

// sweep finishes dead letters a previous process recorded but did not
// complete (it crashed in between).
func (r *runner) sweep(ctx context.Context) {
	if err := r.complete(ctx); err != nil {
		r.log.Warn("sweep dead letters", "error", err)
	}
}

// dispatch runs handle for m in its own goroutine once a slot is free,
// then settle; it blocks while max_in_flight messages are in flight.
func (r *runner) dispatch(ctx context.Context, m *message, settle func(verdict)) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		settle(nak)
		return
	}
	r.wg.Add(1)
	r.met.InFlight(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.slots; r.met.InFlight(-1) }()
		// The ingest outlives a stop: a message half-way to the store is
		// finished and settled, not abandoned.
		start := time.Now()
		v := r.handle(context.WithoutCancel(ctx), m)
		settle(v)
		if v == ack {
			r.met.ObserveAck(time.Since(start))
		}
	}()
}

// backoff returns the wait before reconnect attempt n (0-based): 100ms
// doubling up to 10s.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < n && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isJSON reports whether a content type is application/json or +json.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
