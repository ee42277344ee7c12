package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// liveHandler serves through the handler in force; a reload swaps it.
type liveHandler struct{ h atomic.Pointer[http.Handler] }

func (l *liveHandler) set(h http.Handler) { l.h.Store(&h) }

// ServeHTTP serves through the handler in force.
func (l *liveHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*l.h.Load()).ServeHTTP(w, r)
}

// reloader loads the config file again on SIGHUP, POST /v1/config/reload
// or a change on disk (server.watch_config). The new file is validated as
// `tandem validate` does; a bad one, or one that changes what only a
// restart applies, changes nothing. A good one is swapped in: the engine's
// routes and targets first (engine.Reload), then the HTTP handler built
// for it.
type reloader struct {
	path    string
	log     *slog.Logger
	eng     *engine.Engine
	live    *liveHandler
	reg     *prometheus.Registry
	metrics *telemetry.Metrics
	srcs    *source.Manager
	// base holds the handler's options that do not come from the config
	// (live events, the background context); dashboard builds /ui/ for a
	// config. Both optional.
	base      api.Options
	dashboard func(context.Context, *config.Config) (http.Handler, error)

	mu     sync.Mutex // one reload at a time; guards the fields below
	cfg    *config.Config
	info   api.ConfigInfo
	failed string // hash of the last file that failed, so a watch logs it once
	// override applies the command line's overrides (--listen) to each
	// file loaded, as serve did to the first.
	override func(*config.Config)
	// pending ends the background work of the handler handler built
	// last; current that of the handler in force.
	pending, current context.CancelFunc
}

// setOverride sets what the command line overrides in every file loaded.
func (r *reloader) setOverride(f func(*config.Config)) {
	r.mu.Lock()
	r.override = f
	r.mu.Unlock()
}

// newReloader describes cfg, loaded from data, as version 1.
func newReloader(cfg *config.Config, data []byte, now time.Time) *reloader {
	return &reloader{path: cfg.File, cfg: cfg, info: api.ConfigInfo{Version: 1, Hash: hashOf(data), LoadedAt: now.UTC()}}
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// handler builds the HTTP handler for cfg.
func (r *reloader) handler(cfg *config.Config) (http.Handler, error) {
	o := r.base
	o.Engine, o.Config, o.Registry, o.Metrics, o.Logger = r.eng, cfg, r.reg, r.metrics, r.log
	o.Version, o.Sources, o.Reloader = shortVersion(), r.srcs, r
	// The handler's background work (a JWKS refresh) ends when a reload
	// replaces it: each handler runs under its own context.
	parent := o.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	o.Context = ctx
	if r.dashboard != nil {
		ui, err := r.dashboard(ctx, cfg)
		if err != nil {
			cancel()
			return nil, err
		}
		o.UI = ui
	}
	h, err := api.New(o)
	if err != nil {
		cancel()
		return nil, err
	}
	r.pending = cancel
	return h, nil
}

// ConfigInfo describes the config in force.
func (r *reloader) ConfigInfo() api.ConfigInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// ReloadConfig reloads the file (POST /v1/config/reload).
func (r *reloader) ReloadConfig(ctx context.Context) (*api.ReloadInfo, error) {
	return r.reload(ctx, "api", false)
}

// reload reads the file and swaps it in. quiet (a watch) skips a file
// whose hash is the one in force or the last that failed.
func (r *reloader) reload(ctx context.Context, why string, quiet bool) (*api.ReloadInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := os.ReadFile(r.path)
	if err != nil {
		if !quiet {
			r.log.Error("config reload failed: nothing changed", "trigger", why, "error", err)
			r.metrics.ConfigReload(false, 0)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	hash := hashOf(data)
	if hash == r.info.Hash {
		return &api.ReloadInfo{ConfigInfo: r.info, Unchanged: true}, nil
	}
	if quiet && hash == r.failed {
		return nil, nil
	}
	info, err := r.swap(ctx, data, hash)
	if err != nil {
		r.failed = hash
		r.metrics.ConfigReload(false, 0)
		var errs config.Errors
		if errors.As(err, &errs) {
			r.log.Error("config reload refused: the file is not valid; nothing changed", "trigger", why, "file", r.path, "errors", len(errs))
			for _, e := range errs {
				r.log.Error("config error", "error", e.Error())
			}
		} else {
			r.log.Error("config reload refused: nothing changed", "trigger", why, "file", r.path, "error", err)
		}
		return nil, err
	}
	r.failed = ""
	r.metrics.ConfigReload(true, info.Version)
	return info, nil
}

// swap validates data and puts it in force; r.mu is held.
func (r *reloader) swap(ctx context.Context, data []byte, hash string) (*api.ReloadInfo, error) {
	cfg, err := config.Parse(data, r.path)
	if err != nil {
		return nil, err
	}
	if r.override != nil {
		r.override(cfg)
	}
	if keys := restartKeys(r.cfg, cfg); len(keys) > 0 {
		return nil, &api.RestartNeededError{Keys: keys}
	}
	h, err := r.handler(cfg)
	if err != nil {
		return nil, err
	}
	stop := r.pending
	res, err := r.eng.Reload(ctx, cfg)
	if err != nil {
		stop()
		return nil, err
	}
	r.live.set(h)
	if r.current != nil {
		r.current() // the replaced handler's background work
	}
	r.current = stop
	r.cfg = cfg
	r.info = api.ConfigInfo{Version: r.info.Version + 1, Hash: hash, LoadedAt: time.Now().UTC()}
	r.log.Info("config reloaded", "version", r.info.Version, "hash", hash[:12],
		"targets_added", res.TargetsAdded, "targets_changed", res.TargetsChanged, "targets_removed", res.TargetsRemoved,
		"routes_added", res.RoutesAdded, "routes_changed", res.RoutesChanged, "routes_removed", res.RoutesRemoved)
	return &api.ReloadInfo{
		ConfigInfo: r.info,
		Targets:    &api.Changes{Added: orEmpty(res.TargetsAdded), Changed: orEmpty(res.TargetsChanged), Removed: orEmpty(res.TargetsRemoved)},
		Routes:     &api.Changes{Added: orEmpty(res.RoutesAdded), Changed: orEmpty(res.RoutesChanged), Removed: orEmpty(res.RoutesRemoved)},
	}, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// reloadable are the top-level keys a reload applies; every other key
// (server, store, log, sources, and whatever is added later) needs a
// restart.
var reloadable = []string{"Targets", "Routes", "Auth", "File"}

// restartKeys names the keys that differ between old and next and that
// only a restart applies: every top-level key but targets, routes and
// auth, and which route a source feeds.
func restartKeys(old, next *config.Config) []string {
	var keys []string
	a, b := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem()
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || slices.Contains(reloadable, f.Name) {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			keys = append(keys, name)
		}
	}
	feeds := func(c *config.Config) map[string]string {
		m := map[string]string{}
		for _, rt := range c.Routes {
			if rt.Source != "" {
				m[rt.Source] = rt.Name
			}
		}
		return m
	}
	if !reflect.DeepEqual(feeds(old), feeds(next)) {
		keys = append(keys, "routes[].source")
	}
	return keys
}

// watch reloads the config when its file changes, until ctx ends. It
// watches the directory, since editors (and Kubernetes ConfigMaps) replace
// the file rather than write it, and waits for a quiet spell (debounce)
// before it reads.
func (r *reloader) watch(ctx context.Context, debounce time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	dir := filepath.Dir(r.path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch config directory %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var timer *time.Timer
		fire := make(chan struct{}, 1)
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				// Any change in the directory may be the file (a symlink
				// swap changes another name); the hash tells.
				if timer != nil {
					timer.Stop()
				}
				timer = time.AfterFunc(debounce, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				r.log.Warn("watch config", "error", err)
			case <-fire:
				_, _ = r.reload(ctx, "watch", true)
			}
		}
	}()
	return nil
}

// configBytes reads the file cfg was loaded from, for its hash (nil when
// it came from bytes).
func configBytes(cfg *config.Config) []byte {
	if cfg.File == "" {
		return nil
	}
	data, _ := os.ReadFile(cfg.File)
	return data
}
