package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Kind is the type of an event, the SSE "event:" field.
type Kind string

// Kinds of events.
const (
	// KindMessage: a message was accepted or its status changed.
	KindMessage Kind = "message"
	// KindDelivery: a delivery was created or its state changed.
	KindDelivery Kind = "delivery"
	// KindAttempt: an attempt was recorded.
	KindAttempt Kind = "attempt"
	// KindReset: events may have been missed since the id the client
	// gave (or just now); reload the state, then go on from this event.
	KindReset Kind = "reset"
)

// Reasons of a reset event.
const (
	ReasonUnknownID = "unknown_id" // the id is from another epoch (a restart, another replica) or not one the hub gave
	ReasonExpired   = "expired"    // the id is older than the buffer, or events were lost after it
	ReasonLost      = "lost"       // events were lost just now (too many changes at once, or a lost connection between replicas)
)

// Event is one event of the stream.
type Event struct {
	// ID is "<epoch>-<seq>", for Last-Event-ID.
	ID   string
	Kind Kind
	// Message: on a message event, the message (no body, headers or
	// query); on the others, its ID and Route.
	Message record.Message
	// Delivery: on delivery and attempt events, the delivery (no response
	// body or headers).
	Delivery record.Delivery
	// Attempts: on delivery events, the delivery's attempts.
	Attempts []record.Attempt
	// Attempt: on attempt events, the attempt.
	Attempt record.Attempt
	// Reason: on reset events, why (Reason* constants).
	Reason string

	seq uint64
}

// Status is the state a status filter matches: the message's on message
// events, the delivery's (after the attempt) on the others.
func (e *Event) Status() string {
	if e.Kind == KindMessage {
		return string(e.Message.Status)
	}
	return string(e.Delivery.Status)
}

// Filter selects the events a subscriber gets. Zero fields do not filter;
// reset events always pass.
type Filter struct {
	MessageID string
	Route     string
	// Statuses: only events whose Status is one of these.
	Statuses []string
}

func (f *Filter) match(e *Event) bool {
	if e.Kind == KindReset {
		return true
	}
	if f.MessageID != "" && e.Message.ID != f.MessageID {
		return false
	}
	if f.Route != "" && e.Message.Route != f.Route {
		return false
	}
	if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, e.Status()) {
		return false
	}
	return true
}

// ErrSlow: the subscriber did not keep up and was dropped.
var ErrSlow = errors.New("the client did not keep up with the events and was dropped; reconnect with Last-Event-ID")

// Options configure a Hub.
type Options struct {
	// Store is read back after changes. Without one the hub publishes
	// nothing (no route is durable).
	Store store.Store
	// Logger for store read failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Buffer is how many recent events are kept for Last-Event-ID
	// resume. Default 4096.
	Buffer int
	// ClientBuffer is how many events wait for one subscriber before it
	// is dropped as slow. Default 256.
	ClientBuffer int
	// MaxPending caps the changed messages waiting to be read; beyond it
	// changes are dropped and subscribers get a reset. Default 10000.
	MaxPending int
	// Remember is how many messages' last seen state is kept to tell what
	// is new. Default 10000.
	Remember int
	// Linger is how long changes are still followed after the last
	// subscriber left, so a reconnecting client can resume. Default 2m.
	Linger time.Duration
}

// Hub follows the store's changes and fans events out to subscribers.
type Hub struct {
	opts   Options
	log    *slog.Logger
	epoch  string
	feed   store.ChangeFeed
	claims claims

	mu      sync.Mutex
	seq     uint64
	ring    []Event // the last Buffer events, oldest at ring[head]
	head    int
	lossSeq uint64 // resuming after seq s is exact only when s >= lossSeq
	subs    map[*Subscription]struct{}
	// activeUntil (unix ns) is when changes stop being followed: far
	// future while someone listens, then now+Linger.
	activeUntil atomic.Int64

	pmu sync.Mutex
	// pending: the changed messages to publish, each with its state when
	// the writer knew it whole (a new message), else nil: read it back.
	pending  map[string]*record.MessageDetail
	order    []string
	overflow bool
	kick     chan struct{}

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	snaps   *snapshots
	dropped atomic.Int64
	missed  atomic.Bool // a change came while nobody listened
}

// New returns a Hub; Run follows the changes.
func New(opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.ClientBuffer <= 0 {
		opts.ClientBuffer = 256
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 10000
	}
	if opts.Remember <= 0 {
		opts.Remember = 10000
	}
	if opts.Linger <= 0 {
		opts.Linger = 2 * time.Minute
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	h := &Hub{
		opts: opts, log: opts.Logger,
		epoch:   hex.EncodeToString(b[:]),
		subs:    map[*Subscription]struct{}{},
		pending: map[string]*record.MessageDetail{},
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		snaps:   newSnapshots(opts.Remember),
		claims:  claims{m: map[string]string{}},
	}
	if f, ok := opts.Store.(store.ChangeFeed); ok {
		h.feed = f
	}
	return h
}

// Epoch names this hub's life; it starts every event id.
func (h *Hub) Epoch() string { return h.epoch }

// LastID returns the id of the last event published ("<epoch>-0" before
// any): a page rendered now can subscribe after it and miss nothing.
func (h *Hub) LastID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id(h.seq)
}

// Dropped counts the subscribers dropped as slow.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }

func (h *Hub) id(seq uint64) string { return h.epoch + "-" + strconv.FormatUint(seq, 10) }

// Changed tells the hub that the messages changed. It never blocks: it
// only marks them to be read back (when someone listens), and passes them
// to the other replicas through the store's change feed.
func (h *Hub) Changed(ids ...string) {
	if len(ids) == 0 {
		return
	}
	if h.feed != nil {
		h.feed.ChangeNotify(h.epoch, ids)
	}
	h.mark(ids)
}

// mark queues ids to be read back, while someone listens.
func (h *Hub) mark(ids []string) {
	if !h.listening() {
		return
	}
	h.pmu.Lock()
	for _, id := range ids {
		h.queueLocked(id, nil)
	}
	h.pmu.Unlock()
	h.poke()
}

// inserted queues a new message whose whole state the writer knows, so
// it need not be read back.
func (h *Hub) inserted(md *record.MessageDetail) {
	if h.feed != nil {
		h.feed.ChangeNotify(h.epoch, []string{md.Message.ID})
	}
	if !h.listening() {
		return
	}
	h.pmu.Lock()
	h.queueLocked(md.Message.ID, md)
	h.pmu.Unlock()
	h.poke()
}

// listening reports whether changes are followed now, and notes a change
// missed when not.
func (h *Hub) listening() bool {
	if h.opts.Now().UnixNano() > h.activeUntil.Load() {
		h.missed.Store(true)
		return false
	}
	return true
}

// queueLocked marks id pending; a second change before it is published
// means it must be read back.
func (h *Hub) queueLocked(id string, md *record.MessageDetail) {
	if _, ok := h.pending[id]; ok {
		h.pending[id] = nil
		return
	}
	if len(h.pending) >= h.opts.MaxPending {
		h.overflow = true
		return
	}
	h.pending[id] = md
	h.order = append(h.order, id)
}

func (h *Hub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Close ends the streams (Done closes) and stops Run: call it when the
// server shuts down, since a stream never ends by itself.
func (h *Hub) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// Done is closed by Close.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Run reads changed messages back and publishes their events until ctx
// ends. On a store with a change feed it follows the other replicas too.
func (h *Hub) Run(ctx context.Context) {
	if h.opts.Store == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var feed <-chan store.Change
	if h.feed != nil {
		feed = h.feed.ChangeListen(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-feed:
			if !ok {
				feed = nil
				continue
			}
			switch {
			case len(c.MessageIDs) == 0:
				// (Re)connected: notices of other replicas may be lost.
				if h.opts.Now().UnixNano() <= h.activeUntil.Load() {
					h.lost()
				}
			case c.Origin != h.epoch:
				h.mark(c.MessageIDs)
			}
		case <-h.kick:
			h.drain(ctx)
		}
	}
}

// drain reads every pending message and publishes what changed.
func (h *Hub) drain(ctx context.Context) {
	for ctx.Err() == nil {
		h.pmu.Lock()
		batch := h.order
		known := make([]*record.MessageDetail, len(batch))
		for i, id := range batch {
			known[i] = h.pending[id]
		}
		h.order = nil
		clear(h.pending)
		overflow := h.overflow
		h.overflow = false
		h.pmu.Unlock()
		if overflow {
			h.lost()
		}
		if len(batch) == 0 {
			return
		}
		for i, id := range batch {
			if known[i] != nil {
				h.publishDiff(known[i])
				continue
			}
			h.readBack(ctx, id)
		}
	}
}

func (h *Hub) readBack(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	md, err := h.opts.Store.MessageGet(rctx, id)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.snaps.forget(id)
		return
	case err != nil:
		if ctx.Err() == nil {
			h.log.Warn("events: read changed message", "message_id", id, "error", err)
			h.lost()
		}
		return
	}
	h.publishDiff(md)
}

func (h *Hub) publishDiff(md *record.MessageDetail) {
	if evs := h.snaps.diff(md); len(evs) > 0 {
		h.publish(evs)
	}
}

// publish numbers the events, keeps them in the ring and sends them to
// the subscribers whose filter they match, dropping any that is full.
func (h *Hub) publish(evs []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		h.seq++
		e := evs[i]
		e.seq, e.ID = h.seq, h.id(h.seq)
		if len(h.ring) < h.opts.Buffer {
			h.ring = append(h.ring, e)
		} else {
			// The oldest event leaves: resuming from before it is no
			// longer exact.
			h.lossSeq = max(h.lossSeq, h.ring[h.head].seq)
			h.ring[h.head] = e
			h.head = (h.head + 1) % len(h.ring)
		}
		for s := range h.subs {
			if s.filter.match(&e) {
				h.sendLocked(s, e)
			}
		}
	}
}

// lost records that events were lost now, and tells every subscriber.
func (h *Hub) lost() {
	h.mu.Lock()
	defer h.mu.Unlock()
	// The sequence skips one: no id from before is exact any more, and
	// the reset's id is one a client can resume from.
	h.seq++
	h.lossSeq = h.seq
	for s := range h.subs {
		h.sendLocked(s, Event{ID: h.id(h.seq), Kind: KindReset, Reason: ReasonLost})
	}
}

// sendLocked hands e to s, or drops s when its buffer is full: a slow
// client must never hold up the others or the engine.
func (h *Hub) sendLocked(s *Subscription, e Event) {
	select {
	case s.ch <- e:
	default:
		s.err = ErrSlow
		h.removeLocked(s)
		h.dropped.Add(1)
	}
}

func (h *Hub) removeLocked(s *Subscription) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	close(s.ch)
	if len(h.subs) == 0 {
		h.activeUntil.Store(h.opts.Now().Add(h.opts.Linger).UnixNano())
	}
}

// Subscription is one subscriber's stream.
type Subscription struct {
	// Backlog are the events to send before those on C: what followed the
	// resumed id, or one reset event.
	Backlog []Event
	// C carries the live events; it is closed when the subscriber is
	// dropped (Err says why) or closed.
	C <-chan Event

	ch     chan Event
	filter Filter
	h      *Hub
	err    error // set under h.mu before ch closes
}

// Err returns ErrSlow once C is closed because the subscriber fell behind.
func (s *Subscription) Err() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.removeLocked(s)
}

// Subscribe starts a stream of the events f selects. With lastID (the
// id of the last event the client saw), the Backlog holds what followed
// it, or a reset event when that cannot be told exactly.
func (h *Hub) Subscribe(f Filter, lastID string) *Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.opts.Now().UnixNano() > h.activeUntil.Load() && h.missed.Swap(false) {
		// Changes were not followed until now: no resume from before is
		// exact, not even from the last event. The sequence skips one, so
		// ids handed out from now on differ from those before.
		h.seq++
		h.lossSeq = h.seq
	}
	h.activeUntil.Store(math.MaxInt64)
	ch := make(chan Event, h.opts.ClientBuffer)
	s := &Subscription{C: ch, ch: ch, filter: f, h: h}
	h.subs[s] = struct{}{}
	if lastID == "" {
		return s
	}
	seq, err := h.parseID(lastID)
	switch {
	case err != nil:
		s.Backlog = []Event{{ID: h.id(h.seq), Kind: KindReset, Reason: ReasonUnknownID}}
	case seq < h.lossSeq:
		s.Backlog = []Event{{ID: h.id(h.seq), Kind: KindReset, Reason: ReasonExpired}}
	default:
		for i := range h.ring {
			e := h.ring[(h.head+i)%len(h.ring)]
			if e.seq > seq && f.match(&e) {
				s.Backlog = append(s.Backlog, e)
			}
		}
	}
	return s
}

// parseID reads an event id this hub gave.
func (h *Hub) parseID(id string) (uint64, error) {
	epoch, n, ok := strings.Cut(id, "-")
	if !ok || epoch != h.epoch {
		return 0, fmt.Errorf("event id %q is not from this server's current run", id)
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil || seq > h.seq {
		return 0, fmt.Errorf("event id %q is not one this server gave", id)
	}
	return seq, nil
}
