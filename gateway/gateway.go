// Package gateway is tandem's function mode: the gateway as a plain
// http.Handler, for platforms that run one handler per request and may
// freeze the process between requests (Cloud Run, Knative, AWS Lambda
// through an HTTP adapter such as aws-lambda-go's). The handler accepts
// into PostgreSQL and starts no worker; `tandem worker` (or
// `tandem worker --once`, run on a schedule) delivers.
//
// Invariants:
//
//   - The handler is the one `tandem serve` serves (internal/api over
//     internal/engine): the same routes, auth, validation, idempotency
//     and answers. Only the workers and the background jobs (retention,
//     replica heartbeats, queue gauges, broker sources) are left out.
//   - A 202 means committed: ServeHTTP returns only after the group
//     commit that holds its message has been flushed (synchronous_commit
//     on). Nothing a later request needs is left to a goroutine, so a
//     process frozen right after the answer loses nothing; the wake-up
//     NOTIFY that follows a commit may wait for the next thaw, which
//     only delays a listening worker until its next poll.
//   - Durable routes need PostgreSQL: a function's disk does not outlive
//     its instance, so SQLite is refused. A route that waits for its
//     steps (respond: all or a list) is refused too: no worker runs
//     beside the handler to finish them. durable: false routes run in
//     the request, as in `tandem serve`.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// ErrNotFunctionReady: the config cannot run as a function (see the
// error's text: a SQLite store, or a route that waits for its steps).
var ErrNotFunctionReady = errors.New("gateway: config cannot run in function mode")

// Options configure New.
type Options struct {
	// ConfigFile is the tandem.yaml to serve. Required.
	ConfigFile string
	// Logger gets the gateway's log lines. Default: a logger on stderr in
	// the config's log format and level.
	Logger *slog.Logger
	// Version is shown in /openapi.json. Default "dev".
	Version string
}

// Handler is the gateway as an http.Handler. Safe for concurrent use.
type Handler struct {
	h     http.Handler
	eng   *engine.Engine
	store store.Store
}

// New loads the config, connects to PostgreSQL (applying migrations, as
// `tandem serve` does) and returns the handler. It starts no worker and
// no background job; the goroutines it leaves are the store's: the
// connection pool's, the group-commit writers (idle between requests) and
// the wake-up notifier.
func New(ctx context.Context, opts Options) (*Handler, error) {
	if opts.ConfigFile == "" {
		return nil, errors.New("gateway: ConfigFile is required")
	}
	cfg, err := config.Load(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	if err := check(cfg); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		if logger, err = telemetry.NewLogger(os.Stderr, cfg.Log.Format, cfg.Log.Level); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	reg := telemetry.NewRegistry()
	metrics := telemetry.NewMetrics(reg)
	var st store.Store
	if durable(cfg) {
		pg, err := postgres.Open(ctx, postgres.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: logger, OnBatch: metrics.ObserveBatch})
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		st = pg
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, Metrics: metrics})
	if err != nil {
		closeStore(st)
		return nil, fmt.Errorf("gateway: %w", err)
	}
	h, err := api.New(api.Options{Engine: eng, Config: cfg, Registry: reg, Logger: logger, Version: opts.Version})
	if err != nil {
		closeStore(st)
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &Handler{h: h, eng: eng, store: st}, nil
}

// ServeHTTP serves one request: a route's ingest, or the admin API.
func (g *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.h.ServeHTTP(w, r) }

// Close refuses new messages, waits for the requests in progress (until
// ctx ends) and closes the store.
func (g *Handler) Close(ctx context.Context) error {
	err := g.eng.Shutdown(ctx)
	closeStore(g.store)
	return err
}

// check refuses what a function cannot run: every problem at once.
func check(cfg *config.Config) error {
	var problems []string
	if durable(cfg) && cfg.Store.Driver != "postgres" {
		problems = append(problems, fmt.Sprintf("store.driver is %s: function mode accepts into PostgreSQL (a function's disk does not outlive it); set store.driver: postgres", cfg.Store.Driver))
	}
	for i, r := range cfg.Routes {
		if r.Source != "" {
			problems = append(problems, fmt.Sprintf("routes[%d] (%s) reads broker source %q: a function consumes no broker; run tandem serve for it", i, r.Name, r.Source))
			continue
		}
		if r.IsDurable() && r.Respond.Mode != config.RespondAccepted {
			problems = append(problems, fmt.Sprintf("routes[%d] (%s) has respond: %s: no worker runs beside a function to finish its steps; use respond: accepted, or durable: false", i, r.Name, r.Respond))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrNotFunctionReady, cfg.File, strings.Join(problems, "; "))
	}
	return nil
}

func durable(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.IsDurable() {
			return true
		}
	}
	return false
}

func closeStore(st store.Store) {
	if st != nil {
		_ = st.Close()
	}
}
