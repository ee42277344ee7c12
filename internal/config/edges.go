package config

import (
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of the listener's edges (server.*), as documented on the
// fields and in docs/config.md.
const (
	DefaultReadHeaderTimeout = Duration(10 * time.Second)
	DefaultReadTimeout       = Duration(30 * time.Second)
	DefaultIdleTimeout       = Duration(60 * time.Second)
	// DefaultWriteTimeoutMargin is added to the longest route deadline to
	// make the default write timeout (at least DefaultMinWriteTimeout).
	DefaultWriteTimeoutMargin = Duration(10 * time.Second)
	DefaultMinWriteTimeout    = Duration(30 * time.Second)
	DefaultMaxHeaderBytes     = Size(64 << 10)
	DefaultMaxWaiting         = 1024
)

// DefaultStoreHeaders are the inbound headers kept with a message when
// server.store_headers is not set.
var DefaultStoreHeaders = []string{
	"Content-Type", "Content-Encoding", "Accept", "User-Agent",
	"traceparent", "tracestate", "baggage",
	"X-Request-Id", "X-Correlation-Id", "Idempotency-Key",
}

// credentialHeaders are never stored, whatever store_headers says.
var credentialHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true,
	"X-Api-Key": true, "X-Auth-Token": true, "X-Access-Token": true, "X-Csrf-Token": true,
	"X-Amz-Security-Token": true,
}

// IsCredentialHeader reports whether a header carries a credential and
// must never be stored or logged: the well-known ones, and any name with
// "token", "secret", "password", "api-key"/"apikey", "auth" or
// "signature" in it.
func IsCredentialHeader(name string) bool {
	c := http.CanonicalHeaderKey(name)
	if credentialHeaders[c] {
		return true
	}
	l := strings.ToLower(name)
	for _, w := range []string{"token", "secret", "password", "passwd", "api-key", "apikey", "api_key", "auth", "signature", "session"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// StoredHeaders returns the canonical names of the inbound headers the
// route keeps with a message: its own store_headers, else the server's,
// else DefaultStoreHeaders, plus every header the route's templates name
// (request.headers["x-user"]); credentials are left out.
func (c *Config) StoredHeaders(r *Route) []string {
	if r != nil && r.storedHeaders != nil {
		return r.storedHeaders
	}
	return c.storedHeaders(r)
}

func (c *Config) storedHeaders(r *Route) []string {
	list := c.Server.StoreHeaders
	if r != nil && r.StoreHeaders != nil {
		list = r.StoreHeaders
	}
	if list == nil {
		list = DefaultStoreHeaders
	}
	if r != nil {
		list = append(slices.Clone(list), templateHeaders(r)...)
	}
	out := make([]string, 0, len(list))
	for _, h := range list {
		h = http.CanonicalHeaderKey(h)
		if !IsCredentialHeader(h) && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// headerRef finds request.headers["name"] (or ['name']) in a template.
var headerRef = regexp.MustCompile(`request\.headers\s*\[\s*["']([^"']+)["']\s*\]`)

// templateHeaders lists the inbound headers the route's templates read.
func templateHeaders(r *Route) []string {
	var out []string
	scan := func(s string) {
		for _, m := range headerRef.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			scan(x)
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]string:
			for _, e := range x {
				scan(e)
			}
		}
	}
	for _, st := range r.Steps {
		if st == nil {
			continue
		}
		walk(st.Body)
		walk(st.Headers)
		walk(st.Query)
		scan(st.Path)
		if cp := st.Compensate; cp != nil {
			walk(cp.Body)
			walk(cp.Headers)
			walk(cp.Query)
			scan(cp.Path)
		}
	}
	if r.Response != nil {
		scan(r.Response.Status)
		walk(r.Response.Body)
	}
	return out
}

// edgeDefaults fills the server's timeouts and caps. The write timeout
// covers the longest route deadline, so a waiting caller gets its answer.
func edgeDefaults(c *Config) {
	s := &c.Server
	s.ReadHeaderTimeout = or(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	s.ReadTimeout = or(s.ReadTimeout, DefaultReadTimeout)
	s.IdleTimeout = or(s.IdleTimeout, DefaultIdleTimeout)
	s.MaxHeaderBytes = or(s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	s.MaxWaiting = or(s.MaxWaiting, DefaultMaxWaiting)
	if s.WriteTimeout == 0 {
		s.WriteTimeout = max(c.LongestDeadline()+DefaultWriteTimeoutMargin, DefaultMinWriteTimeout)
	}
}

// LongestDeadline is the longest deadline of a route that answers after
// its steps (0 when none waits).
func (c *Config) LongestDeadline() Duration {
	var d Duration
	for _, r := range c.Routes {
		if r != nil && r.Respond.Mode != RespondAccepted && r.Deadline > d {
			d = r.Deadline
		}
	}
	return d
}

// edges checks the server's edge keys and each route's stored headers.
func (v *validator) edges() {
	s := v.cfg.Server
	for i, h := range s.Hosts {
		hp := joinIndex("server.hosts", i)
		if !validHostName(h) {
			v.errf(hp, "host %s must be a host name or address, without scheme, path or port (e.g. gateway.example.com)", v.c.quote(hp, h))
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"server.read_header_timeout", s.ReadHeaderTimeout}, {"server.read_timeout", s.ReadTimeout},
		{"server.write_timeout", s.WriteTimeout}, {"server.idle_timeout", s.IdleTimeout},
	} {
		if d.v < 0 {
			v.errf(d.key, "must not be negative")
		}
	}
	if longest := v.cfg.LongestDeadline(); s.WriteTimeout > 0 && s.WriteTimeout < longest {
		v.errf("server.write_timeout", "write_timeout %s is shorter than the longest route deadline (%s): a waiting caller would be cut off before its answer", s.WriteTimeout.D(), longest.D())
	}
	if s.MaxHeaderBytes < 0 {
		v.errf("server.max_header_bytes", "must not be negative")
	} else if s.MaxHeaderBytes > 0 && s.MaxHeaderBytes < 1024 {
		v.errf("server.max_header_bytes", "must be at least 1KiB")
	}
	if s.MaxWaiting < 0 {
		v.errf("server.max_waiting", "must not be negative")
	}
	v.headerList("server.store_headers", s.StoreHeaders)
	for i, r := range v.cfg.Routes {
		if r != nil {
			p := joinIndex("routes", i)
			v.headerList(joinKey(p, "store_headers"), r.StoreHeaders)
			v.routeSchema(p, r)
			r.storedHeaders = v.cfg.storedHeaders(r)
		}
	}
}

// headerList checks a list of header names.
func (v *validator) headerList(p string, names []string) {
	for i, n := range names {
		ip := joinIndex(p, i)
		if !validToken(n) {
			v.errf(ip, "%s is not a valid HTTP header name", v.c.quote(ip, n))
		} else if IsCredentialHeader(n) {
			v.errf(ip, "%s carries credentials and is never stored; remove it", v.c.quote(ip, n))
		}
	}
}

// validHostName reports whether h is a bare host name or IP address.
func validHostName(h string) bool {
	if h == "" || strings.ContainsAny(h, "/:@ \t?#") && net.ParseIP(strings.Trim(h, "[]")) == nil {
		return false
	}
	return true
}

// IsCredentialParam reports whether a query parameter carries a
// credential (token, access_token, api_key, key, secret, password, sig,
// signature, auth ...): such parameters are never stored.
func IsCredentialParam(name string) bool {
	l := strings.ToLower(name)
	switch l {
	case "key", "sig", "code", "jwt", "session", "sid", "pass", "pwd":
		return true
	}
	for _, w := range []string{"token", "secret", "password", "passwd", "apikey", "api_key", "api-key", "auth", "signature", "credential"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}
