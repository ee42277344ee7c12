package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/typo"
)

// validate checks the defaulted config and records every problem in c.
func validate(cfg *Config, c *collector) {
	v := validator{cfg: cfg, c: c}
	v.server()
	v.store()
	v.log()
	v.tracing()
	v.auth()
	names := make([]string, 0, len(cfg.Targets))
	for name := range cfg.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v.target(joinKey("targets", name), cfg.Targets[name])
	}
	v.sources()
	v.routes()
	v.trust()
}

type validator struct {
	cfg *Config
	c   *collector
}

func (v *validator) errf(path, format string, args ...any) { v.c.errf(path, format, args...) }

func (v *validator) server() {
	s := v.cfg.Server
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || port == "" {
		v.errf("server.listen", "invalid listen address %s: write host:port, e.g. \":8080\" or \"127.0.0.1:8080\"", v.c.quote("server.listen", s.Listen))
	}
	v.cors(s.CORS)
	v.callbackHosts()
}

func (v *validator) store() {
	s := v.cfg.Store
	switch s.Driver {
	case "sqlite":
	case "postgres":
		if s.DSN == "" {
			v.errf("store.dsn", "dsn is required for the postgres driver (e.g. \"postgres://user@host/db\")")
		}
	default:
		v.errf("store.driver", "unknown driver %s: use sqlite or postgres", v.c.quote("store.driver", s.Driver))
	}
}

func (v *validator) log() {
	l := v.cfg.Log
	if l.Format != "text" && l.Format != "json" {
		v.errf("log.format", "unknown format %s: use text or json", v.c.quote("log.format", l.Format))
	}
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errf("log.level", "unknown level %s: use debug, info, warn or error", v.c.quote("log.level", l.Level))
	}
}

func (v *validator) tracing() {
	t := v.cfg.Telemetry.Tracing
	const p = "telemetry.tracing"
	switch t.Exporter {
	case "", TracingOTLP, TracingNone:
	default:
		v.errf(p+".exporter", "unknown exporter %s: use otlp or none", v.c.quote(p+".exporter", t.Exporter))
	}
	switch t.Protocol {
	case "", TracingGRPC, TracingHTTPProtobuf:
	default:
		v.errf(p+".protocol", "unknown protocol %s: use grpc or http/protobuf", v.c.quote(p+".protocol", t.Protocol))
	}
	if r := t.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		v.errf(p+".sample_ratio", "sample_ratio %v is not between 0 and 1", *r)
	}
	if e := t.Endpoint; strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errf(p+".endpoint", "endpoint %s is not an http or https URL with a host", v.c.quote(p+".endpoint", e))
		}
	} else if e != "" {
		if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			v.errf(p+".endpoint", "endpoint %s: write host:port (e.g. \"127.0.0.1:4317\") or a URL", v.c.quote(p+".endpoint", e))
		}
	}
	if l := t.Link; l != "" {
		u, err := url.Parse(strings.ReplaceAll(l, "{trace_id}", "0"))
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.errf(p+".link", "link %s is not an http or https URL", v.c.quote(p+".link", l))
		case !strings.Contains(l, "{trace_id}"):
			v.errf(p+".link", "link %s has no {trace_id} to put the trace id in", v.c.quote(p+".link", l))
		}
	}
	v.headers(p+".headers", t.Headers, true)
}

func (v *validator) auth() {
	seen := map[string]bool{}
	routes := map[string]bool{}
	custom := v.routeScopes()
	for _, r := range v.cfg.Routes {
		if r != nil {
			routes[r.Name] = true
		}
	}
	for i, k := range v.cfg.Auth.Keys {
		p := joinIndex("auth.keys", i)
		v.name(joinKey(p, "name"), k.Name, "key")
		if k.Name != "" && seen[k.Name] {
			v.errf(joinKey(p, "name"), "duplicate key name %q", k.Name)
		}
		seen[k.Name] = true
		if !validHash(k.Hash) {
			v.errf(joinKey(p, "hash"), "hash must be \"sha256:\" followed by 64 hex digits (sha256 of the key)")
		}
		if len(k.Scopes) == 0 {
			v.errf(joinKey(p, "scopes"), "at least one scope is required: \"admin\", \"ingest:*\" or \"ingest:<route>\"")
		}
		for j, s := range k.Scopes {
			sp := joinIndex(joinKey(p, "scopes"), j)
			route, isIngest := strings.CutPrefix(s, "ingest:")
			switch {
			case s == "admin", s == "ingest:*":
			case isIngest && route != "" && !routes[route]:
				msg := fmt.Sprintf("scope %q names an unknown route %q", s, route)
				v.errf(sp, "%s", withHint(msg, route, sortedKeys(routes)))
			case isIngest && route != "":
			case custom[s]:
			default:
				v.errf(sp, "unknown scope %s: use \"admin\", \"ingest:*\", \"ingest:<route>\" or a scope a route names under auth.scopes", v.c.quote(sp, s))
			}
		}
	}
}

func validHash(h string) bool {
	hex, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, r := range hex {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

func (v *validator) target(p string, t *Target) {
	v.name(p, t.Name, "target")
	v.targetHosts(p, t) // url or urls, balance, eject, contract (strategies.go)
	v.method(joinKey(p, "method"), t.Method)
	v.headers(joinKey(p, "headers"), t.Headers, true)
	v.targetAuth(joinKey(p, "auth"), t.Auth)

	tp := joinKey(p, "timeout")
	if t.Timeout.Connect > t.Timeout.Total {
		v.errf(joinKey(tp, "connect"), "connect timeout %s is longer than total timeout %s", t.Timeout.Connect, t.Timeout.Total)
	}
	if m := t.Timeout.LeaseMargin; m != 0 && m.D() < time.Second {
		v.errf(joinKey(tp, "lease_margin"), "lease_margin must be at least 1s (it covers store round trips and clock skew), got %s", m)
	}

	rp := joinKey(p, "retry")
	r := t.Retry
	if r.MaxAttempts < 1 {
		v.errf(joinKey(rp, "max_attempts"), "max_attempts must be at least 1 (1 means no retries), got %d", r.MaxAttempts)
	}
	if r.Initial > r.Max {
		v.errf(joinKey(rp, "initial"), "initial backoff %s is longer than max %s", r.Initial, r.Max)
	}
	if !(r.Multiplier >= 1) || math.IsInf(r.Multiplier, 0) {
		v.errf(joinKey(rp, "multiplier"), "multiplier must be a finite number ≥ 1, got %g", r.Multiplier)
	}

	bp := joinKey(p, "breaker")
	b := t.Breaker
	if !(b.FailureRatio > 0 && b.FailureRatio <= 1) {
		v.errf(joinKey(bp, "failure_ratio"), "failure_ratio must be in (0, 1], got %g", b.FailureRatio)
	}
	if b.MinRequests < 1 {
		v.errf(joinKey(bp, "min_requests"), "min_requests must be at least 1, got %d", b.MinRequests)
	}
	if b.HalfOpenProbes < 1 {
		v.errf(joinKey(bp, "half_open_probes"), "half_open_probes must be at least 1, got %d", b.HalfOpenProbes)
	}

	lp := joinKey(p, "rate_limit")
	if rl := t.RateLimit; !(rl.PerSecond >= 0) || math.IsInf(rl.PerSecond, 0) {
		v.errf(joinKey(lp, "per_second"), "per_second must be a finite number ≥ 0 (0: no limit), got %g", rl.PerSecond)
	}
	if t.RateLimit.Burst < 0 {
		v.errf(joinKey(lp, "burst"), "burst must not be negative, got %d", t.RateLimit.Burst)
	}
	if t.Concurrency < 1 {
		v.errf(joinKey(p, "concurrency"), "concurrency must be at least 1, got %d", t.Concurrency)
	}
	for i, s := range t.SuccessStatus {
		if s < 100 || s > 599 {
			v.errf(joinIndex(joinKey(p, "success_status"), i), "status %d is not an HTTP status (100..599)", s)
		}
	}
}

func (v *validator) url(p, raw string) {
	if raw == "" {
		v.errf(p, "url is required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.errf(p, "invalid URL %s%s", v.c.quote(p, raw), v.schemeHint(p, raw))
	case u.Scheme != "http" && u.Scheme != "https":
		v.errf(p, "URL %s must be absolute, with scheme http or https%s", v.c.quote(p, raw), v.schemeHint(p, raw))
	case u.Host == "" || u.Hostname() == "":
		v.errf(p, "URL %s has no host", v.c.quote(p, raw))
	}
}

// schemeHint suggests a scheme for a URL written without one, such as
// "127.0.0.1:9001/x" or "localhost:9001/x"; "" when raw has one, or is a
// path.
func (v *validator) schemeHint(p, raw string) string {
	if strings.Contains(raw, "//") || strings.HasPrefix(raw, "/") {
		return ""
	}
	host, _, _ := strings.Cut(raw, "/")
	if name, port, err := net.SplitHostPort(host); err == nil && name != "" && port != "" || strings.Contains(host, ".") || host == "localhost" {
		if v.c.interpolated[p] {
			return ": add a scheme, e.g. http://..."
		}
		return fmt.Sprintf(": add a scheme, e.g. %q", "http://"+raw)
	}
	return ""
}

func (v *validator) targetAuth(p string, a TargetAuth) {
	kinds := 0
	if a.Bearer != "" {
		kinds++
		if !validHeaderValue(a.Bearer) {
			v.errf(joinKey(p, "bearer"), "bearer token contains control characters (a trailing newline?)")
		}
	}
	if a.Basic != nil {
		kinds++
		bp := joinKey(p, "basic")
		if a.Basic.Username == "" {
			v.errf(joinKey(bp, "username"), "username is required")
		}
		if strings.Contains(a.Basic.Username, ":") {
			v.errf(joinKey(bp, "username"), "username must not contain \":\"")
		}
		if !validHeaderValue(a.Basic.Username) || !validHeaderValue(a.Basic.Password) {
			v.errf(bp, "username or password contains control characters (a trailing newline?)")
		}
	}
	if a.Header != nil {
		kinds++
		hp := joinKey(p, "header")
		if !validToken(a.Header.Name) {
			v.errf(joinKey(hp, "name"), "header name %s is not a valid HTTP header name", v.c.quote(joinKey(hp, "name"), a.Header.Name))
		}
		if a.Header.Value == "" {
			v.errf(joinKey(hp, "value"), "value is required")
		} else if !validHeaderValue(a.Header.Value) {
			v.errf(joinKey(hp, "value"), "value contains control characters (a trailing newline?)")
		}
	}
	if a.OAuth2 != nil {
		kinds++
	}
	if kinds > 1 {
		v.errf(p, "use one kind of auth (bearer, basic, header or oauth2), not %d", kinds)
	}
}

// headers checks header names, and values when they are plain text (a
// step's header values are templates and are checked by the route compiler).
func (v *validator) headers(p string, h map[string]string, values bool) {
	for _, name := range sortedKeys(h) {
		hp := joinKey(p, name)
		if !validToken(name) {
			v.errf(hp, "%q is not a valid HTTP header name", name)
		}
		if values && !validHeaderValue(h[name]) {
			v.errf(hp, "header value contains control characters (a trailing newline?)")
		}
	}
}

func (v *validator) method(p, m string) {
	if !validToken(m) {
		v.errf(p, "invalid HTTP method %s", v.c.quote(p, m))
	}
}

// name checks an identifier used in paths, scopes, metrics and templates.
func (v *validator) name(p, n, what string) {
	if n == "" {
		v.errf(p, "%s name is required", what)
		return
	}
	if !validName(n) {
		v.errf(p, "invalid %s name %s: use letters, digits, \"-\" and \"_\", starting with a letter or digit, at most 64", what, v.c.quote(p, n))
	}
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i, r := range n {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '_') {
			return false
		}
	}
	return true
}

// validToken reports whether s is an RFC 9110 token (methods, header names).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (v *validator) routes() {
	if len(v.cfg.Routes) == 0 {
		v.errf("routes", "at least one route is required")
		return
	}
	names := map[string]int{}
	endpoints := map[string]int{}
	sourced := map[string]int{}
	for i, r := range v.cfg.Routes {
		p := joinIndex("routes", i)
		v.name(joinKey(p, "name"), r.Name, "route")
		if j, dup := names[r.Name]; dup && r.Name != "" {
			v.errf(joinKey(p, "name"), "duplicate route name %q (also routes[%d])", r.Name, j)
		} else {
			names[r.Name] = i
		}
		v.method(joinKey(p, "method"), r.Method)
		if r.Source != "" {
			v.routeSource(p, r, sourced, i)
		} else if v.routePath(joinKey(p, "path"), r.Path) {
			ep := r.Method + " " + r.Path
			if j, dup := endpoints[ep]; dup {
				v.errf(joinKey(p, "path"), "%s %s is already used by routes[%d]", r.Method, r.Path, j)
			} else {
				endpoints[ep] = i
			}
		}
		v.route(p, r)
	}
}

// routePath checks an inbound path and reports whether it is usable.
func (v *validator) routePath(p, rp string) bool {
	if rp == "" {
		v.errf(p, "path is required, e.g. /orders")
		return false
	}
	if !strings.HasPrefix(rp, "/") {
		v.errf(p, "path %s must start with \"/\"", v.c.quote(p, rp))
		return false
	}
	if strings.ContainsAny(rp, "?#{} \t\r\n") {
		v.errf(p, "path %s must be a plain path: no query, fragment, wildcard or spaces", v.c.quote(p, rp))
		return false
	}
	clean := path.Clean(rp)
	if strings.HasSuffix(rp, "/") && clean != "/" {
		clean += "/"
	}
	if clean != rp {
		v.errf(p, "path %s is not clean (write %q)", v.c.quote(p, rp), clean)
		return false
	}
	if reserved, ok := ReservedPath(rp); ok {
		if rp == reserved {
			v.errf(p, "path %s is reserved for the admin API", v.c.quote(p, rp))
		} else {
			v.errf(p, "path %s is reserved for the admin API (%s/...)", v.c.quote(p, rp), reserved)
		}
		return false
	}
	return true
}

func (v *validator) route(p string, r *Route) {
	// Names for the respond list; the step graph is route's to check.
	steps := map[string]bool{}
	for _, s := range r.Steps {
		if s.Name != "" {
			steps[s.Name] = true
		}
	}
	stepNames := sortedKeys(steps)
	if len(r.Steps) == 0 {
		v.errf(joinKey(p, "steps"), "at least one step is required")
	}
	hasCompensate := false
	for j, s := range r.Steps {
		sp := joinIndex(joinKey(p, "steps"), j)
		v.name(joinKey(sp, "name"), s.Name, "step")
		v.targetRef(joinKey(sp, "target"), s.Target)
		// A method inherited from the target is checked there.
		if t := v.cfg.Targets[s.Target]; s.Method != "" && (t == nil || s.Method != t.Method) {
			v.method(joinKey(sp, "method"), s.Method)
		}
		v.headers(joinKey(sp, "headers"), s.Headers, false)
		if s.Compensate != nil {
			hasCompensate = true
			cp := joinKey(sp, "compensate")
			v.targetRef(joinKey(cp, "target"), s.Compensate.Target)
			if m := s.Compensate.Method; m != "" {
				v.method(joinKey(cp, "method"), m)
			}
			v.headers(joinKey(cp, "headers"), s.Compensate.Headers, false)
		}
	}
	v.compileRoute(p, r)
	v.routeStrategies(p, r) // cache, contracts (strategies.go)

	rp := joinKey(p, "respond")
	if r.Respond.Mode == RespondSteps {
		if len(r.Respond.Steps) == 0 {
			v.errf(rp, "respond list is empty: name at least one step, or use accepted or all")
		}
		seen := map[string]bool{}
		for k, name := range r.Respond.Steps {
			ip := joinIndex(rp, k)
			if _, ok := steps[name]; !ok {
				v.errf(ip, "%s", withHint(fmt.Sprintf("unknown step %q", name), name, stepNames))
			} else if seen[name] {
				v.errf(ip, "step %q is listed twice", name)
			}
			seen[name] = true
		}
	}
	// A respond that failed to parse reads as accepted; checks on it wait.
	respondOK := !v.c.reported(rp)
	if r.Response != nil && r.Respond.Mode == RespondAccepted && respondOK {
		v.errf(joinKey(p, "response"), "response needs respond: all or a list of steps (respond: accepted always answers 202)")
	}
	if !r.IsDurable() {
		if r.Respond.Mode != RespondAll && respondOK {
			v.errf(joinKey(p, "durable"), "durable: false needs respond: all")
		}
		if r.Saga {
			v.errf(joinKey(p, "saga"), "saga needs a durable route (remove durable: false)")
		}
	}
	v.onComplete(p, r)
	if r.Saga && !hasCompensate {
		v.errf(joinKey(p, "saga"), "saga: true needs at least one step with compensate")
	}
}

func (v *validator) targetRef(p, name string) {
	if name == "" {
		v.errf(p, "target is required")
		return
	}
	if _, ok := v.cfg.Targets[name]; !ok && !v.c.reported("targets") {
		v.errf(p, "%s", withHint(fmt.Sprintf("unknown target %q", name), name, sortedKeys(v.cfg.Targets)))
	}
}

func withHint(msg, got string, candidates []string) string {
	if s := typo.Closest(got, candidates); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	return msg
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
