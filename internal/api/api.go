package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// defaultMaxBody caps inbound bodies when server.max_body is not set.
const defaultMaxBody = 1 << 20

// Options configure the HTTP handler built by New.
type Options struct {
	// Engine runs the routes. Without one (tests of the HTTP layer only),
	// every endpoint that needs it answers 503.
	Engine *engine.Engine
	// Config is the loaded config. Default Engine.Config().
	Config *config.Config
	// Registry is served at /metrics. Default a new, empty registry.
	Registry *prometheus.Registry
	// Metrics counts route answers refused before the engine and admin
	// API requests. Default the engine's; none without an engine.
	Metrics *telemetry.Metrics
	// Logger gets internal errors and recovered panics. Default slog.Default().
	Logger *slog.Logger
	// Version is shown in the OpenAPI document. Default "dev".
	Version string
	// Sources, when set, is served at GET /v1/sources (sources.go).
	Sources Sources
	// Context ends the handler's background work (the JWKS refresh of
	// auth.jwt.jwks_url). Default context.Background().
	Context context.Context
	// Events, when set, serves GET /v1/events and
	// GET /v1/messages/{id}/events (events.go).
	Events *EventStream
	// UI, when set, is served at /ui/ (the dashboard, internal/ui).
	UI http.Handler
	// Reloader, when set, serves GET /v1/config and POST
	// /v1/config/reload (config.go).
	Reloader ConfigReloader
}

// server is the state shared by all handlers.
type server struct {
	eng     *engine.Engine
	cfg     *config.Config
	log     *slog.Logger
	auth    *authenticator
	maxBody int64
	mux     *http.ServeMux
	// targets are the configured targets with secrets redacted.
	targets map[string]*config.Target
	// methods are all methods some pattern accepts, for the Allow header.
	methods []string
	// sources are the broker sources, if any (sources.go).
	sources Sources
	// metrics counts rejected route requests and admin requests.
	metrics *telemetry.Metrics
	// routeOf maps a route's ServeMux pattern to the route's name.
	routeOf map[string]string
	// reloader reloads the config file (config.go).
	reloader ConfigReloader
}

// New builds tandem's HTTP handler: the configured routes, the admin API
// under /v1, /openapi.json, /metrics, /healthz and /readyz. Every error
// answer is an application/problem+json document.
func New(opts Options) (http.Handler, error) {
	cfg := opts.Config
	if cfg == nil && opts.Engine != nil {
		cfg = opts.Engine.Config()
	}
	if cfg == nil {
		return nil, errors.New("api: config is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Metrics == nil && opts.Engine != nil {
		opts.Metrics = opts.Engine.Metrics()
	}
	auth, err := newAuthenticator(cfg, jwtOptions{Ctx: opts.Context, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &server{
		eng:      opts.Engine,
		cfg:      cfg,
		log:      opts.Logger,
		auth:     auth,
		maxBody:  int64(cfg.Server.MaxBody),
		mux:      http.NewServeMux(),
		targets:  cfg.Redacted().Targets,
		sources:  opts.Sources,
		metrics:  opts.Metrics,
		reloader: opts.Reloader,
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxBody
	}
	if err := s.routes(opts); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return s.recoverer(s.cors(s.mux)), nil
}

// routes registers every handler on s.mux. ServeMux panics on conflicting
// patterns; handle turns that into an error.
func (s *server) routes(opts Options) error {
	admin := &adminMux{s: s}
	hcfg := huma.DefaultConfig("tandem", opts.Version)
	hcfg.Info.Description = "Admin API of tandem and the routes it serves."
	// No docs page (it loads scripts from a CDN), no /schemas, no $schema
	// links in answers, no YAML or 3.0 variants: /openapi.json is served below.
	hcfg.DocsPath = ""
	hcfg.SchemasPath = ""
	hcfg.OpenAPIPath = ""
	hcfg.CreateHooks = nil
	hcfg.Transformers = []huma.Transformer{toProblem}
	problemSchemas(hcfg.Components.Schemas)
	api := humago.New(admin, hcfg)
	if err := s.registerAdmin(api); err != nil {
		return err
	}
	if admin.err != nil {
		return admin.err
	}
	for _, rt := range s.cfg.Routes {
		if rt.Source != "" {
			continue // fed by a broker (internal/source), not served
		}
		if err := s.registerRoute(api, rt); err != nil {
			return err
		}
	}
	if opts.Events != nil {
		documentEvents(api)
		if err := s.registerEvents(opts.Events); err != nil {
			return err
		}
	}
	if opts.UI != nil {
		if err := s.mountUI(opts.UI); err != nil {
			return err
		}
	}
	spec, err := openAPIHandler(api)
	if err != nil {
		return err
	}
	steps := []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /openapi.json", s.counted("GET /openapi.json", s.adminOnly(spec))},
		// OpenMetrics, for a scraper that asks for it, carries the
		// exemplars (trace ids) of the latency histograms.
		{"GET /metrics", s.adminOnly(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry, EnableOpenMetrics: true}))},
		{"GET /healthz", http.HandlerFunc(s.healthz)},
		{"GET /readyz", http.HandlerFunc(s.readyz)},
		{"GET /v1/sources", s.counted("GET /v1/sources", s.adminOnly(http.HandlerFunc(s.listSources)))},
		{"/", http.HandlerFunc(s.notFound)},
	}
	for _, st := range steps {
		if err := s.handle(st.pattern, st.h); err != nil {
			return err
		}
	}
	return nil
}

// handle registers h for pattern, turning ServeMux's panic on a conflict
// into an error, and notes the pattern's method for Allow headers.
func (s *server) handle(pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("register %q: %v", pattern, r)
		}
	}()
	s.mux.Handle(pattern, h)
	if m, _, ok := strings.Cut(pattern, " "); ok && !slices.Contains(s.methods, m) {
		s.methods = append(s.methods, m)
		if m == http.MethodGet && !slices.Contains(s.methods, http.MethodHead) {
			s.methods = append(s.methods, http.MethodHead)
		}
	}
	return nil
}

// adminMux is the mux huma registers the admin operations on: each handler
// is wrapped in the admin auth check, and registration errors are kept.
type adminMux struct {
	s   *server
	err error
}

// HandleFunc registers an admin operation behind the admin auth check.
func (m *adminMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	if err := m.s.handle(pattern, m.s.counted(pattern, m.s.adminOnly(http.HandlerFunc(h)))); err != nil && m.err == nil {
		m.err = err
	}
}

// ServeHTTP serves through the server's mux.
func (m *adminMux) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.s.mux.ServeHTTP(w, r) }

// adminOnly lets a request through when the admin auth check passes.
func (s *server) adminOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, p := s.auth.admin(r)
		if p != nil {
			writeProblem(w, r, p)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// notFound answers requests no pattern matched: 405 with Allow when the
// path is served for other methods, else 404.
func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var allow []string
	var route string
	for _, m := range s.methods {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
			if rt := s.routeOf[pattern]; rt != "" {
				route = rt
			}
		}
	}
	if len(allow) > 0 {
		slices.Sort(allow)
		if route != "" {
			// A route's path called with the wrong method is that route's answer.
			defer func() { s.metrics.Route(route).Rejected(http.StatusMethodNotAllowed, time.Since(start)) }()
		}
		writeProblem(w, r, newProblem(tapi.ErrMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on this path; allowed: %s", r.Method, strings.Join(allow, ", "))).
			withHeader("Allow", strings.Join(allow, ", ")))
		return
	}
	writeProblem(w, r, newProblem(tapi.ErrNotFound, "no route or endpoint at this path"))
}

// recoverer turns a panic in a handler into a logged 500 problem. It is
// defence in depth: bad input must be answered with a 4xx long before.
func (s *server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic in http handler", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rw.wrote {
				writeProblem(rw, r, newProblem(tapi.ErrInternal, "internal error"))
			}
		}()
		h.ServeHTTP(rw, r)
	})
}

// trackingWriter remembers whether the header went out.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

// WriteHeader notes that the header went out.
func (t *trackingWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		t.wrote = true
	}
	t.ResponseWriter.WriteHeader(code)
}

// Write notes that the header went out.
func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the wrapper.
func (t *trackingWriter) Flush() {
	t.wrote = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the wrapped writer to http.ResponseController.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// routePattern turns a route's method and path into an exact ServeMux
// pattern. Braces are escaped so they are not taken as wildcards, and a
// trailing slash gets {$} so it does not match a whole subtree.
func routePattern(method, path string) (string, error) {
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("route path %q must start with /", path)
	}
	if method == "" {
		method = http.MethodPost
	}
	if strings.ContainsAny(method, " \t/") {
		return "", fmt.Errorf("route method %q is not a method", method)
	}
	u, err := url.Parse(path)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("route path %q is not a plain path", path)
	}
	escaped := strings.NewReplacer("{", "%7B", "}", "%7D").Replace(u.EscapedPath())
	if strings.HasSuffix(escaped, "/") {
		escaped += "{$}"
	}
	return strings.ToUpper(method) + " " + escaped, nil
}
