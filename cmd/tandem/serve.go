package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/certfile"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/events"
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/store/sqlite"
	"github.com/tandem-run/tandem/internal/telemetry"
)

func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.newFlags("serve", "serve --config FILE [--listen ADDR]")
	path := m.configFlag(fs)
	listen := fs.String("listen", "", "listen address, overriding server.listen")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	logger, err := telemetry.NewLogger(m.Stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	tuneGC(m.Getenv)
	stopProfiles, err := startProfiles(m.Getenv("TANDEM_PROFILE_DIR"))
	if err != nil {
		return err
	}
	defer stopProfiles()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // reload.go: SIGHUP reloads the config
	defer signal.Stop(hup)
	srv, err := start(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	srv.reloader.setOverride(func(c *config.Config) {
		if *listen != "" {
			c.Server.Listen = *listen
		}
	})
	go func() {
		for range hup {
			_, _ = srv.reloader.reload(ctx, "SIGHUP", false)
		}
	}()
	<-ctx.Done()
	logger.Info("shutting down", "grace", cfg.Server.ShutdownGrace.D().String())
	return srv.stop()
}

// server is a running gateway: listener, engine and store.
type server struct {
	cfg     *config.Config
	log     *slog.Logger
	http    *http.Server
	engine  *engine.Engine
	sources *source.Manager
	pubs    *source.Publishers
	store   store.Store
	tracing *telemetry.Tracing
	addr    net.Addr
	served  chan error
	cancel  context.CancelFunc
	// reloader reloads the config file (reload.go).
	reloader *reloader
}

// start opens the store, starts the engine and serves HTTP. With ln nil it
// listens on cfg.Server.Listen.
func start(ctx context.Context, cfg *config.Config, logger *slog.Logger, ln net.Listener) (*server, error) {
	reg := telemetry.NewRegistry()
	metrics := telemetry.NewMetrics(reg)
	tracing, err := telemetry.NewTracing(ctx, telemetry.TracingOptions{Config: cfg.Telemetry.Tracing, Version: shortVersion()})
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st, err := openStore(ctx, cfg, logger, metrics)
	if err != nil {
		cancel()
		return nil, err
	}
	// The engine, the sources and the API write through the hub's
	// wrapper, so the live events (GET /v1/events, /ui/) see every change;
	// replica work (startReplica) uses st itself.
	hub := events.New(events.Options{Store: st, Logger: logger})
	wst := hub.Wrap(st)
	pubs := source.NewPublishers(cfg) // on_complete publish
	eng, err := engine.New(engine.Options{Config: cfg, Store: wst, Logger: logger, Metrics: metrics, Tracing: tracing, Publisher: pubs})
	if err != nil {
		cancel()
		closeStore(st)
		return nil, err
	}
	srcs, err := source.New(source.Options{Config: cfg, Engine: eng, Store: wst, Metrics: metrics, Tracing: tracing, Logger: logger})
	if err != nil {
		cancel()
		closeStore(st)
		return nil, err
	}
	stream := api.NewEventStream(api.EventStreamOptions{Hub: hub, Store: st, Logger: logger})
	// The handler in force is swapped by a reload (reload.go).
	rl := newReloader(cfg, configBytes(cfg), time.Now())
	rl.log, rl.eng, rl.live, rl.reg, rl.metrics, rl.srcs = logger, eng, &liveHandler{}, reg, metrics, srcs
	rl.base = api.Options{Context: bg, Events: stream}
	rl.dashboard = func(ctx context.Context, c *config.Config) (http.Handler, error) {
		return newDashboard(ctx, c, eng, hub, stream, reg, logger)
	}
	metrics.ConfigVersion(1)
	h, err := rl.handler(cfg)
	if err != nil {
		cancel()
		closeStore(st)
		return nil, err
	}
	tlsCfg, err := listenerTLS(cfg.Server.TLS)
	if err != nil {
		cancel()
		closeStore(st)
		return nil, err
	}
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Server.Listen)
		if err != nil {
			cancel()
			closeStore(st)
			return nil, fmt.Errorf("listen on %s: %w", cfg.Server.Listen, err)
		}
	}
	if err := eng.Start(bg); err != nil {
		cancel()
		ln.Close()
		closeStore(st)
		return nil, err
	}
	srcs.Start(bg)
	go hub.Run(bg)
	rl.live.set(h)
	rl.current = rl.pending
	if cfg.Server.WatchConfig && cfg.File != "" {
		if err := rl.watch(bg, 250*time.Millisecond); err != nil {
			logger.Warn("server.watch_config: the config file is not watched", "error", err)
		}
	}
	if st != nil {
		go metrics.NewQueueWatch(st, slices.Sorted(maps.Keys(cfg.Targets)), nil).Run(bg, 5*time.Second)
		startReplica(bg, st, eng, logger)
		if cfg.Store.Retention.Enabled() {
			r := &retention{st: st, keep: cfg.Store.Retention, log: logger}
			go r.run(bg)
		}
	}
	s := &server{
		cfg: cfg, log: logger, engine: eng, sources: srcs, pubs: pubs, store: st, tracing: tracing, addr: ln.Addr(), cancel: cancel, reloader: rl,
		served: make(chan error, 1),
		http: &http.Server{
			Handler:           rl.live,
			ReadHeaderTimeout: 10 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
			TLSConfig:         tlsCfg,
		},
	}
	api.ConfigureServer(s.http, cfg) // timeouts and header cap from server.*
	// Event streams never end by themselves: end them when shutdown begins,
	// or http.Server.Shutdown would wait the whole grace for them.
	s.http.RegisterOnShutdown(hub.Close)
	go func() {
		if tlsCfg != nil {
			// The certificate comes from TLSConfig.GetCertificate, reloaded
			// when its files change.
			s.served <- s.http.ServeTLS(ln, "", "")
			return
		}
		s.served <- s.http.Serve(ln)
	}()
	logger.Info("tandem serving", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "store", cfg.Store.Driver, "routes", len(cfg.Routes), "targets", len(cfg.Targets), "version", shortVersion(), "tracing", tracing.Exporting())
	return s, nil
}

// listenerTLS builds the listener's TLS config from server.tls; nil
// without it.
func listenerTLS(t *config.ServerTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cfg, err := certfile.ServerConfig(certfile.ServerOptions{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		VerifyIfGiven: t.ClientAuth == config.ClientAuthIfGiven,
	})
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	return cfg, nil
}

// stop shuts down within the config's grace: new requests are refused,
// waiting callers are answered, attempts in flight finish or are given back.
func (s *server) stop() error {
	grace := s.cfg.Server.ShutdownGrace.D()
	if grace <= 0 {
		grace = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	// Sources stop first: what they hold in flight is committed and
	// acknowledged (or nacked) while the engine still accepts.
	if err := s.sources.Stop(ctx); err != nil {
		s.log.Warn("sources shutdown", "error", err)
	}
	if err := s.engine.Shutdown(ctx); err != nil {
		s.log.Warn("engine shutdown", "error", err)
	}
	if err := <-httpDone; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("http shutdown", "error", err)
	}
	s.cancel()
	s.pubs.Close()
	closeStore(s.store)
	// The last spans go out within what is left of the grace.
	if err := s.tracing.Shutdown(ctx); err != nil {
		s.log.Warn("tracing shutdown", "error", err)
	}
	if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

func closeStore(st store.Store) {
	if st != nil {
		_ = st.Close()
	}
}

// needsStore reports whether any route is durable.
func needsStore(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.IsDurable() {
			return true
		}
	}
	return false
}

func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, metrics *telemetry.Metrics) (store.Store, error) {
	if !needsStore(cfg) {
		return nil, nil
	}
	switch cfg.Store.Driver {
	case "postgres":
		st, err := postgres.Open(ctx, postgres.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: logger, OnBatch: metrics.ObserveBatch})
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		st, err := sqlite.Open(ctx, sqlite.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: logger, OnBatch: metrics.ObserveBatch})
		if err != nil {
			return nil, fmt.Errorf("open sqlite store %s: %w", config.RedactDSN(cfg.Store.DSN), err)
		}
		return st, nil
	}
}
