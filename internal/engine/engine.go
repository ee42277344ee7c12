package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/resilience"
	"github.com/tandem-run/tandem/internal/route"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/target"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// leaseMargin is the default Options.LeaseMargin.
const leaseMargin = 30 * time.Second

// Options configure an Engine.
type Options struct {
	// Config is the loaded, validated config. Required.
	Config *config.Config
	// Store keeps messages. Required when a route is durable.
	Store store.Store
	// Caller makes target calls. Default target.NewCaller with defaults.
	Caller *target.Caller
	// Metrics records telemetry. Default: metrics on a private registry.
	Metrics *telemetry.Metrics
	// Tracing makes the spans of ingests and attempts. Default
	// telemetry.NoTracing(): no spans, inbound traceparents passed on.
	Tracing *telemetry.Tracing
	// Logger for engine events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1) for retry backoff. Default
	// resilience.Jitter.
	Jitter func() float64
	// Owner names this worker in leases. Default host:pid:random.
	Owner string
	// PollInterval is the longest an idle target worker waits before it
	// looks for due deliveries again. Default 250ms.
	PollInterval time.Duration
	// WaitPoll is how often a waiting caller re-reads its message when no
	// local completion woke it (another replica may be delivering).
	// Default 1s.
	WaitPoll time.Duration
	// LeaseMargin is added to a target's total timeout (and to the longest
	// wait for a rate limit token) to make a claim's lease: the lease must
	// outlast the request, or a slow request would be claimed and sent
	// again while still in flight. Default 30s; tests make it short.
	LeaseMargin time.Duration
	// Publisher publishes routes' summaries to brokers (on_complete
	// publish). Required when a route publishes; oncomplete.go.
	Publisher Publisher
}

// Engine runs routes: accept, persist, deliver, answer.
type Engine struct {
	opts    Options
	log     *slog.Logger
	store   store.Store
	caller  *target.Caller
	metrics *telemetry.Metrics
	tracing *telemetry.Tracing

	// gen is the config in force, compiled: routes, targets and their
	// runners. A reload swaps it whole (reload.go).
	gen      atomic.Pointer[generation]
	reloadMu sync.Mutex                           // one reload at a time
	loopCtx  context.Context                      // the claim loops' context, set by Start
	stops    map[*targetRunner]context.CancelFunc // each runner's loop; under reloadMu
	retiring sync.WaitGroup                       // runners replaced by a reload, draining

	waitMu  sync.Mutex
	waiters map[string]*waiter // message id → its waiting caller's wake-ups

	memo *memo // idempotency keys of durable: false routes

	// gate orders every inflight.Add against Shutdown: an ingest enters
	// (Add) only under it and only while closing is false, and Shutdown
	// sets closing under it before it waits, so no Add can race the Wait.
	gate      sync.Mutex
	closing   atomic.Bool
	closingCh chan struct{}  // closed when Shutdown begins
	inflight  sync.WaitGroup // ingest calls in progress
	stopLoops context.CancelFunc
	hardStop  context.CancelFunc
	hardCtx   context.Context
	loops     sync.WaitGroup
	attempts  sync.WaitGroup
	started   atomic.Bool
}

// routePlan is a route compiled for the engine.
type routePlan struct {
	cfg    *config.Route
	plan   *route.Plan // step graph and templates (request.go)
	steps  []*stepPlan
	byName map[string]*stepPlan // forward steps, and compensations by their "<step>.compensate" name
	cache  *routeCache          // cache.go; nil without routes[].cache
}

// stepPlan is one step of a plan, forward or compensation, with its
// target resolved.
type stepPlan struct {
	step   *route.Step // name, target, graph and compiled templates (request.go)
	target *targetRunner
}

// New builds an Engine from a validated config; Start runs its workers.
func New(opts Options) (*Engine, error) {
	if opts.Config == nil {
		return nil, errors.New("engine: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = resilience.Jitter
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.WaitPoll <= 0 {
		opts.WaitPoll = time.Second
	}
	if opts.LeaseMargin <= 0 {
		opts.LeaseMargin = leaseMargin
	}
	if opts.Owner == "" {
		opts.Owner = defaultOwner()
	}
	if opts.Caller == nil {
		opts.Caller = target.NewCaller(target.CallerOptions{})
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.NewMetrics(nil)
	}
	if opts.Tracing == nil {
		opts.Tracing = telemetry.NoTracing()
	}
	e := &Engine{
		opts:      opts,
		log:       opts.Logger,
		store:     opts.Store,
		caller:    opts.Caller,
		metrics:   opts.Metrics,
		tracing:   opts.Tracing,
		stops:     map[*targetRunner]context.CancelFunc{},
		waiters:   map[string]*waiter{},
		memo:      newMemo(memoMax),
		closingCh: make(chan struct{}),
	}
	e.hardCtx, e.hardStop = context.WithCancel(context.Background())
	g, err := e.compile(opts.Config, nil)
	if err != nil {
		return nil, err
	}
	e.gen.Store(g)
	e.metrics.SetHosts(e.hostSamples)
	e.initMetrics()
	return e, nil
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Start runs one claim loop per target until Shutdown. It returns at once.
func (e *Engine) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("engine: already started")
	}
	if e.store == nil {
		return nil
	}
	e.discardStranded(ctx)
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.stopLoops = cancel
	e.loopCtx = loopCtx
	for _, tr := range e.cur().targets {
		e.startLoop(tr)
	}
	return nil
}

// discardStranded dead-letters the open deliveries of every target the
// store knows and the config no longer has (renamed or removed): no loop
// would ever claim them, so they would wait forever, unseen. As dead
// letters they are visible, and replayable once the target is back.
// Running ones whose lease has not ended are left to their worker (a
// replica on the old config). A store that cannot be read is logged: the
// next start tries again.
func (e *Engine) discardStranded(ctx context.Context) {
	now := e.opts.Now().UTC()
	stats, err := e.store.DeliveryStats(ctx, &now)
	if err != nil {
		e.log.Warn("look for deliveries of removed targets", "error", err)
		return
	}
	for _, ts := range stats {
		if e.cur().targets[ts.Target] != nil || ts.Due+ts.Scheduled+ts.Waiting+ts.Running == 0 {
			continue
		}
		e.discardTarget(ctx, ts.Target, now)
	}
}

// discardTarget dead-letters the open deliveries of one target that is
// no longer configured (running ones whose lease has not ended excepted).
func (e *Engine) discardTarget(ctx context.Context, name string, now time.Time) {
	reason := fmt.Sprintf("target %q is no longer configured", name)
	total := 0
	for {
		n, err := e.store.DeliveryDiscard(ctx, &store.DeliveryDiscardParams{Target: name, Reason: reason, Limit: discardBatch, Now: &now})
		total += n
		if err != nil {
			e.log.Warn("dead-letter deliveries of a removed target", "target", name, "error", err)
			break
		}
		if n < discardBatch {
			break
		}
	}
	if total > 0 {
		e.log.Warn("deliveries of a target that is no longer configured dead-lettered; replay them once it is back", "target", name, "deliveries", total)
	}
}

// discardBatch is how many deliveries one DeliveryDiscard call settles.
const discardBatch = 1000

// Shutdown stops accepting, stops claiming, and waits for attempts in
// flight until ctx ends; then it cancels those attempts and gives their
// deliveries back to the store without counting an attempt. It does not
// close the store.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.gate.Lock()
	if e.closing.CompareAndSwap(false, true) {
		close(e.closingCh)
	}
	e.gate.Unlock()
	if e.stopLoops != nil {
		e.stopLoops()
	}
	e.loops.Wait()
	done := make(chan struct{})
	go func() {
		e.retiring.Wait()
		e.attempts.Wait()
		e.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		e.hardStop()
		return nil
	case <-ctx.Done():
		// Grace is over: cancel attempts; each gives its delivery back.
		e.hardStop()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return nil
	}
}

// enter admits one ingest call (the caller then calls e.inflight.Done),
// or reports false once shutdown has begun.
func (e *Engine) enter() bool {
	e.gate.Lock()
	defer e.gate.Unlock()
	if e.closing.Load() {
		return false
	}
	e.inflight.Add(1)
	return true
}

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *telemetry.Metrics { return e.metrics }

// Tracing returns the engine's tracing.
func (e *Engine) Tracing() *telemetry.Tracing { return e.tracing }

// Store returns the engine's store (nil when no route is durable).
func (e *Engine) Store() store.Store { return e.store }

// Config returns the engine's config.
func (e *Engine) Config() *config.Config { return e.cur().cfg }

// Owner returns the name this engine's workers hold leases under.
func (e *Engine) Owner() string { return e.opts.Owner }

// Routes describes the configured routes, in config order.
func (e *Engine) Routes() []RouteInfo {
	g := e.cur()
	out := make([]RouteInfo, 0, len(g.names))
	for _, n := range g.names {
		rc := g.routes[n].cfg
		ri := RouteInfo{Name: rc.Name, Method: rc.Method, Path: rc.Path, Durable: rc.IsDurable(), Saga: rc.Saga, Deadline: rc.Deadline.D()}
		if rc.Method == "" {
			ri.Method = http.MethodPost
		}
		switch rc.Respond.Mode {
		case "", config.RespondAccepted:
			ri.Respond = config.RespondAccepted
		case config.RespondAll:
			ri.Respond = config.RespondAll
		default:
			ri.Respond = rc.Respond.Steps
		}
		seen := map[string]bool{}
		for _, s := range g.routes[n].plan.Steps {
			ri.Steps = append(ri.Steps, s.Name)
			if !seen[s.Target] {
				seen[s.Target] = true
				ri.Targets = append(ri.Targets, s.Target)
			}
		}
		out = append(out, ri)
	}
	return out
}

// Replay sends dead deliveries back to work and wakes their workers. The
// result lists those the store refused (not dead, or forward steps of a
// saga whose compensation has begun) with the reason.
func (e *Engine) Replay(ctx context.Context, p *store.DeliveryReplayParams) (*store.DeliveryReplayResult, error) {
	if e.store == nil {
		return &store.DeliveryReplayResult{}, nil
	}
	if p.Now == nil {
		// Replayed deliveries are due now on the engine's clock, the one
		// its claims compare against.
		q := *p
		now := e.opts.Now().UTC()
		q.Now = &now
		p = &q
	}
	res, err := e.store.DeliveryReplay(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("replay deliveries: %w", err)
	}
	for _, d := range res.Replayed {
		e.log.Info("delivery replayed", "message_id", d.MessageID, "delivery_id", d.ID, "step", d.Step, "target", d.Target)
		e.wake(d.Target)
		e.notify(d.MessageID)
	}
	return res, nil
}

// Ready reports whether the engine can accept messages: not shutting down,
// and the store reachable.
func (e *Engine) Ready(ctx context.Context) error {
	if e.closing.Load() {
		return ErrShuttingDown
	}
	if e.store == nil {
		return nil
	}
	if err := e.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Wake tells the target's worker that work may be due now. Stores that learn
// of work from elsewhere (another replica) call it through the serve command.
func (e *Engine) Wake(targetName string) { e.wake(targetName) }

func (e *Engine) wake(targetName string) {
	if tr := e.cur().targets[targetName]; tr != nil {
		tr.poke()
	}
}

// waiter is how a caller waiting for its message (respond: all or a list
// of steps) hears of changes: ch is closed at each change and replaced,
// under Engine.waitMu, so no change falls between two waits; status is
// the message's status the change left, when the change knew it.
type waiter struct {
	ch     chan struct{}
	status record.MessageStatus // "" when the change did not say
}

// subscribe returns the message's waiter, made if need be, and the
// channel closed at its next change: taken now, so a change that comes
// before the caller first waits is not missed.
func (e *Engine) subscribe(id string) (*waiter, <-chan struct{}) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	w := e.waiters[id]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		e.waiters[id] = w
	}
	return w, w.ch
}

// next returns the channel closed at the waiter's next change, and the
// status the last change left.
func (e *Engine) next(w *waiter) (<-chan struct{}, record.MessageStatus) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	return w.ch, w.status
}

func (e *Engine) unsubscribe(id string) {
	e.waitMu.Lock()
	delete(e.waiters, id)
	e.waitMu.Unlock()
}

// notify wakes everyone waiting on the message; they read it again.
func (e *Engine) notify(id string) { e.notifyStatus(id, "") }

// notifyStatus wakes everyone waiting on the message and tells them its
// status now, so a caller whose answer needs a final status need not read
// the message while it has none.
func (e *Engine) notifyStatus(id string, status record.MessageStatus) {
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	if w := e.waiters[id]; w != nil {
		// Completions committed together notify in any order: a status
		// that is not terminal never hides a terminal one told before it
		// (a read, which a terminal status brings, shows the truth).
		if status == "" || !w.status.Terminal() {
			w.status = status
		}
		close(w.ch)
		w.ch = make(chan struct{})
	}
}
