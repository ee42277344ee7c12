package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Options configure an Engine.
type Options struct {
	// Config is the loaded, validated config. Required.
	Config *config.Config
	// Store keeps messages. Required unless every route is durable: false.
	Store store.Store
	// Logger for engine events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Owner names this worker in leases. Default host:pid:random.
	Owner string
	// PollInterval is the longest an idle target worker waits before it
	// looks for due deliveries again. Default 250ms.
	PollInterval time.Duration
}

// Engine runs routes: accept, persist, deliver, answer.
type Engine struct {
	opts Options
}

// New builds an Engine; Start runs its workers.
func New(opts Options) (*Engine, error) {
	return &Engine{opts: opts}, nil
}

// Start runs the delivery workers until Shutdown.
func (e *Engine) Start(ctx context.Context) error { return errors.New("not implemented") }

// Shutdown stops accepting, then finishes or releases in-flight attempts
// until ctx ends.
func (e *Engine) Shutdown(ctx context.Context) error { return nil }

// Ingest accepts one inbound request on a route and answers per the route's
// respond setting. Errors: ErrUnknownRoute, ErrShuttingDown,
// store.ErrIdempotencyConflict (409), store.ErrUnavailable (503).
func (e *Engine) Ingest(ctx context.Context, route string, in *Inbound) (*Answer, error) {
	return nil, errors.New("not implemented")
}

// Store returns the engine's store (nil when no route is durable).
func (e *Engine) Store() store.Store { return e.opts.Store }

// Config returns the engine's config.
func (e *Engine) Config() *config.Config { return e.opts.Config }

// Routes describes the configured routes.
func (e *Engine) Routes() []RouteInfo { return nil }

// Replay sends dead deliveries back to work and wakes their workers.
func (e *Engine) Replay(ctx context.Context, p *store.DeliveryReplayParams) ([]record.Delivery, error) {
	return nil, errors.New("not implemented")
}

// Ready reports whether the engine can accept messages (store reachable,
// not shutting down).
func (e *Engine) Ready(ctx context.Context) error { return nil }
