package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
)

// exposedHeaders are the answer headers a cross-origin page may read.
var exposedHeaders = strings.Join([]string{"Location", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate", "Allow", "Tandem-Cache", "Age"}, ", ")

// safelistedHeaders need no permission (the CORS-safelisted request
// headers a browser may still name in a preflight).
var safelistedHeaders = []string{"accept", "accept-language", "content-language"}

// corsPolicy answers preflights and marks cross-origin answers for the
// origins of server.cors. Without it (the default) nothing changes: no
// CORS headers, and OPTIONS is 405 like any unserved method.
type corsPolicy struct {
	anyOrigin                  bool
	origins                    []string // lower case
	methods                    []string
	anyHeader                  bool
	headers                    []string // lower case
	allowMethods, allowHeaders string
	maxAge                     string // seconds; "" for none
}

// newCORS returns the policy of c, or nil when CORS is off.
func newCORS(c *config.CORS) *corsPolicy {
	if !c.Enabled() {
		return nil
	}
	p := &corsPolicy{methods: c.AllowedMethods, allowMethods: strings.Join(c.AllowedMethods, ", ")}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			p.anyOrigin = true
		}
		p.origins = append(p.origins, strings.ToLower(o))
	}
	for _, h := range c.AllowedHeaders {
		if h == "*" {
			p.anyHeader = true
		}
		p.headers = append(p.headers, strings.ToLower(h))
	}
	p.allowHeaders = strings.Join(c.AllowedHeaders, ", ")
	if c.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(c.MaxAge.D().Seconds()), 10)
	}
	return p
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin,
// or "" when the origin may not call.
func (p *corsPolicy) allowOrigin(origin string) string {
	if p.anyOrigin {
		return "*"
	}
	if slices.Contains(p.origins, strings.ToLower(origin)) {
		return origin
	}
	return ""
}

// cors wraps h with the policy: a preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered here, before auth, since a
// browser sends no credentials with it; other requests from an allowed
// origin get Access-Control-Allow-Origin and pass on.
func (s *server) cors(h http.Handler) http.Handler {
	p := newCORS(s.cfg.Server.CORS)
	if p == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			s.preflight(w, r, p, origin)
			return
		}
		if allow := p.allowOrigin(origin); allow != "" {
			w.Header().Set("Access-Control-Allow-Origin", allow)
			w.Header().Set("Access-Control-Expose-Headers", exposedHeaders)
		}
		h.ServeHTTP(w, r)
	})
}

// preflight answers a CORS preflight: 204 with the policy when the origin,
// the method and every requested header are allowed and the path serves
// the method; else a problem that says which is not.
func (s *server) preflight(w http.ResponseWriter, r *http.Request, p *corsPolicy, origin string) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	allow := p.allowOrigin(origin)
	if allow == "" {
		writeProblem(w, r, newProblem(tapi.ErrForbidden, "origin "+origin+" is not in server.cors.allowed_origins"))
		return
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(p.methods, method) {
		writeProblem(w, r, newProblem(tapi.ErrForbidden, "method "+method+" is not in server.cors.allowed_methods"))
		return
	}
	var asked []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				asked = append(asked, name)
			}
		}
	}
	for _, name := range asked {
		if !p.anyHeader && !slices.Contains(p.headers, name) && !slices.Contains(safelistedHeaders, name) {
			writeProblem(w, r, newProblem(tapi.ErrForbidden, "header "+name+" is not in server.cors.allowed_headers"))
			return
		}
	}
	// The path must serve the method: else the same 404 or 405 that the
	// request itself would get.
	probe := r.Clone(r.Context())
	probe.Method = method
	if _, pattern := s.mux.Handler(probe); pattern == "" || pattern == "/" {
		s.notFound(w, probe)
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	h.Set("Access-Control-Allow-Methods", p.allowMethods)
	if p.anyHeader {
		// A literal "*" would not cover Authorization; name what was
		// asked instead.
		h.Set("Access-Control-Allow-Headers", strings.Join(asked, ", "))
	} else {
		h.Set("Access-Control-Allow-Headers", p.allowHeaders)
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}
