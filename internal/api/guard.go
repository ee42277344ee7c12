package api

import (
	"net"
	"net/http"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
)

// loopbackHosts are the Host names the admin API always answers.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// adminGuard refuses an admin request (the /v1 API, /metrics,
// /openapi.json) that a web page could have made on a user's behalf,
// before auth is checked:
//
//   - a Host that is neither a loopback name nor in server.hosts: 421. A
//     page that rebinds its own DNS name to 127.0.0.1 sends its own name
//     as Host, so it cannot read the admin API of a tandem on the user's
//     machine. 421 (Misdirected Request) says this server does not answer
//     for that name, which is the case, rather than that the caller lacks
//     a right (403).
//   - Sec-Fetch-Site: cross-site (a browser says the request comes from
//     another site), unless server.cors allows the request's Origin: 403.
//   - a POST, PUT, PATCH or DELETE without Content-Type: application/json:
//     415. A cross-site form or a no-cors fetch cannot send that type
//     without a CORS preflight, which tandem answers only for allowed
//     origins.
//
// Route ingest is not guarded this way: routes are the public gateway,
// served under whatever name a load balancer gives them, and a page that
// can post to a route needs no rebinding to do it.
func (s *server) adminGuard(r *http.Request) *Problem {
	if !s.hostAllowed(r.Host) {
		return newProblem(tapi.ErrMisdirected, "the admin API does not answer the Host "+clipHost(r.Host)+
			": use a loopback name (localhost, 127.0.0.1, [::1]) or add it to server.hosts")
	}
	if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") && !s.corsAllows(r.Header.Get("Origin")) {
		return newProblem(tapi.ErrForbidden, "cross-site requests to the admin API are refused (Sec-Fetch-Site: cross-site); allow the origin in server.cors to permit it")
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		if !isPlainJSON(r.Header.Get("Content-Type")) {
			return newProblem(tapi.ErrUnsupportedMediaType, "admin requests that change state must be sent with Content-Type: application/json")
		}
	}
	return nil
}

// hostAllowed reports whether the admin API answers host (a Host header:
// a name or address, with an optional port).
func (s *server) hostAllowed(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(strings.Trim(name, "[]")), ".")
	for _, h := range loopbackHosts {
		if name == h {
			return true
		}
	}
	for _, h := range s.cfg.Server.Hosts {
		if strings.EqualFold(strings.TrimSuffix(strings.Trim(h, "[]"), "."), name) {
			return true
		}
	}
	return false
}

// corsAllows reports whether server.cors allows origin.
func (s *server) corsAllows(origin string) bool {
	if origin == "" || !s.cfg.Server.CORS.Enabled() {
		return false
	}
	p := newCORS(s.cfg.Server.CORS)
	return p != nil && p.allowOrigin(origin) != ""
}

// isPlainJSON reports whether a Content-Type is application/json (any
// parameters).
func isPlainJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// clipHost quotes a Host for a message, cut to a sane length.
func clipHost(h string) string {
	if len(h) > 100 {
		h = h[:100] + "..."
	}
	return `"` + strings.ToValidUTF8(h, "?") + `"`
}

// pageGuard is the admin guard for the dashboard (/ui/): the Host check
// and the cross-site refusal, not the JSON rule (its forms post
// url-encoded, with a CSRF token of their own).
func (s *server) pageGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			writeProblem(w, r, newProblem(tapi.ErrMisdirected, "the dashboard does not answer the Host "+clipHost(r.Host)+
				": use a loopback name (localhost, 127.0.0.1, [::1]) or add it to server.hosts"))
			return
		}
		if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
			writeProblem(w, r, newProblem(tapi.ErrForbidden, "cross-site requests to the dashboard are refused (Sec-Fetch-Site: cross-site)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
