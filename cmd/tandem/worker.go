package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// exitLeftDue is the exit code of `tandem worker --once` when its window
// ended with deliveries still due (docs/operations.md).
const exitLeftDue = 3

// exitError is an error that asks for a particular exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// defaultWindow is `tandem worker --once`'s default --window.
const defaultWindow = 30 * time.Second

// worker runs the delivery engine without the HTTP front: until SIGTERM,
// or, with --once, until what is due is delivered (engine.Drain).
func (m *Main) worker(ctx context.Context, args []string) error {
	fs := m.newFlags("worker", "worker --config FILE [--once [--window 30s]]")
	path := m.configFlag(fs)
	once := fs.Bool("once", false, "deliver what is due, and what becomes due within --window, then exit")
	window := fs.Duration("window", defaultWindow, "with --once: how long after the start due deliveries are still taken")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *window <= 0 {
		return usagef("worker: --window must be positive")
	}
	windowSet := false
	fs.Visit(func(f *flag.Flag) { windowSet = windowSet || f.Name == "window" })
	if windowSet && !*once {
		return usagef("worker: --window goes with --once")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(m.Stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	if !needsStore(cfg) {
		return fmt.Errorf("worker: %s has no durable route: there is nothing to deliver in the background", cfg.File)
	}
	reg := telemetry.NewRegistry()
	metrics := telemetry.NewMetrics(reg)
	st, err := openStore(ctx, cfg, logger, metrics)
	if err != nil {
		return err
	}
	defer closeStore(st)
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, Metrics: metrics})
	if err != nil {
		return err
	}
	grace := cfg.Server.ShutdownGrace.D()
	if grace <= 0 {
		grace = config.DefaultShutdownGrace.D()
	}
	if *once {
		res, err := eng.Drain(ctx, engine.DrainParams{Window: *window})
		if cfg.Store.Retention.Enabled() && err == nil {
			// A scheduled worker may be the only process that runs: it
			// purges once per run what store.retention lets go.
			r := &retention{st: st, keep: cfg.Store.Retention, log: logger}
			if _, perr := r.once(ctx); perr != nil {
				logger.Warn("retention purge", "error", perr)
			}
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		_ = eng.Shutdown(sctx)
		if res != nil {
			fmt.Fprintf(m.Stdout, "worker: %d attempts; left: %d due, %d scheduled later, %d waiting, %d running elsewhere, %d dead letters\n",
				attemptsMade(reg), res.Due, res.Later, res.Waiting, res.Running, res.Dead)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("worker: %w", err)
		}
		if res != nil && res.Due > 0 {
			return &exitError{code: exitLeftDue, msg: fmt.Sprintf("worker: %d deliveries are still due after the %s window", res.Due, *window)}
		}
		return nil
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	if err := eng.Start(bg); err != nil {
		return err
	}
	startReplica(bg, st, eng, logger)
	if cfg.Store.Retention.Enabled() {
		r := &retention{st: st, keep: cfg.Store.Retention, log: logger}
		go r.run(bg)
	}
	logger.Info("tandem worker running", "store", cfg.Store.Driver, "targets", len(cfg.Targets), "version", shortVersion())
	<-ctx.Done()
	logger.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return eng.Shutdown(sctx)
}

// attemptsMade sums tandem_attempts_total: the requests this process sent.
func attemptsMade(reg *prometheus.Registry) int {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "tandem_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return int(n)
}
