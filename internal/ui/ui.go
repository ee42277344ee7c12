package ui

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/events"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the dashboard.
type Options struct {
	// Engine runs the routes; its store is read. Required.
	Engine *engine.Engine
	// Admin gives the admin API's views and actions. Required.
	Admin *api.Admin
	// Hub and Stream serve the live updates; without them pages do not
	// update by themselves.
	Hub    *events.Hub
	Stream *api.EventStream
	// Gatherer is read for the targets' latency percentiles (the
	// tandem_attempt_duration_seconds histogram). Optional.
	Gatherer prometheus.Gatherer
	// TraceLink is a link template for trace ids: "{trace_id}" is
	// replaced by the id (e.g. "http://jaeger:16686/trace/{trace_id}").
	// Empty: the id is shown without a link.
	TraceLink string
	// Logger for internal errors. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// SessionTTL is how long a login lasts. Default 12h.
	SessionTTL time.Duration
}

// UI is the dashboard's http.Handler.
type UI struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	keys     bool // auth.keys configured: a login is needed
}

// New returns the dashboard, to be served at /ui/.
func New(opts Options) (*UI, error) {
	if opts.Engine == nil || opts.Admin == nil {
		return nil, errors.New("ui: an engine and the admin operations are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	u := &UI{
		opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		sessions: newSessions(opts.Now, opts.SessionTTL),
		keys:     opts.Admin.KeysConfigured(),
	}
	if err := u.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /ui/{$}":                     u.page(u.overview),
		"GET /ui/messages":                u.page(u.messages),
		"GET /ui/messages/{id}":           u.page(u.message),
		"GET /ui/dead-letters":            u.page(u.deadLetters),
		"POST /ui/dead-letters/confirm":   u.action(u.confirmDeadLetters),
		"POST /ui/dead-letters/replay":    u.action(u.replayDeadLetters),
		"POST /ui/dead-letters/purge":     u.action(u.purgeDeadLetters),
		"POST /ui/deliveries/{id}/replay": u.action(u.replayDelivery),
		"GET /ui/targets":                 u.page(u.targets),
		"GET /ui/login":                   u.loginPage,
		"POST /ui/login":                  u.login,
		"POST /ui/logout":                 u.action(u.logout),
		"GET /ui/events":                  u.stream(false),
		"GET /ui/messages/{id}/events":    u.stream(true),
		"GET /ui/static/": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		},
		"/ui/": u.notFound,
	} {
		u.mux.HandleFunc(pattern, h)
	}
	return u, nil
}

// ServeHTTP serves the dashboard with its security headers.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !u.keys && !isLoopback(r.RemoteAddr) {
		u.fail(w, r, nil, http.StatusForbidden, "With no auth keys configured, the dashboard answers loopback clients only.")
		return
	}
	u.mux.ServeHTTP(w, r)
}

// page wraps a GET page: it needs a session (a login with keys), and
// renders what fn returns.
func (u *UI) page(fn func(r *http.Request, sess *session) (*view, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := u.session(w, r)
		if !ok {
			return
		}
		v, err := fn(r, sess)
		if err != nil {
			u.failErr(w, r, sess, err)
			return
		}
		u.render(w, r, sess, v)
	}
}

// action wraps a POST: it needs a session and the session's CSRF token.
func (u *UI) action(fn func(w http.ResponseWriter, r *http.Request, sess *session) (*view, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := u.session(w, r)
		if !ok {
			return
		}
		if !u.sameOrigin(r) || !sess.checkCSRF(r.PostFormValue("csrf")) {
			u.fail(w, r, sess, http.StatusForbidden, "The form's security token is missing or stale: go back, reload the page and try again.")
			return
		}
		v, err := fn(w, r, sess)
		if err != nil {
			u.failErr(w, r, sess, err)
			return
		}
		if v != nil {
			u.render(w, r, sess, v)
		}
	}
}

// sameOrigin refuses a browser request another site started.
func (u *UI) sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// stream serves the event streams under the page's session.
func (u *UI) stream(one bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := u.lookup(r); !ok {
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if u.opts.Stream == nil {
			http.Error(w, "live events are not enabled", http.StatusServiceUnavailable)
			return
		}
		if one {
			u.opts.Stream.Message(w, r)
			return
		}
		u.opts.Stream.All(w, r)
	}
}

func (u *UI) notFound(w http.ResponseWriter, r *http.Request) {
	sess, ok := u.session(w, r)
	if !ok {
		return
	}
	u.fail(w, r, sess, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}

// isLoopback reports whether a RemoteAddr is 127.0.0.0/8 or ::1.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// safeNext returns next when it is a dashboard path, else /ui/.
func safeNext(next string) string {
	if strings.HasPrefix(next, "/ui/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/ui/"
}
