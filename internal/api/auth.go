package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
)

// Scopes a key or a JWT may hold, beside those routes name under
// auth.scopes.
const (
	scopeAdmin     = "admin"
	scopeIngestAll = "ingest:*"
	scopeIngest    = "ingest:" // + route name
)

// Kinds of callers (callerIdentity.Kind).
const (
	callerKey = "key" // an API key from auth.keys
	callerJWT = "jwt" // a bearer JWT checked against auth.jwt
)

// apiKey is one configured key: the sha256 of its secret and its scopes.
type apiKey struct {
	name   string
	hash   [sha256.Size]byte
	scopes map[string]bool
}

// callerIdentity is who sent a request, as the auth check found it. It is
// in the request's context (callerIdentityFrom) once the check passed
// with auth enabled.
type callerIdentity struct {
	// Kind is callerKey or callerJWT.
	Kind string
	// Name is the key's name, or the JWT's subject (sub).
	Name string
	// Issuer is the JWT's iss; "" for a key.
	Issuer string
	// Scopes are the key's scopes, or those of the JWT's scopes claim.
	Scopes map[string]bool
}

// Namespace names the caller for per-caller state such as the
// Idempotency-Key namespace: "key:<name>" or "jwt:<iss>:<sub>" ("" for a
// nil identity: no auth configured). Two callers never share one.
func (c *callerIdentity) Namespace() string {
	switch {
	case c == nil:
		return ""
	case c.Kind == callerJWT:
		return "jwt:" + c.Issuer + ":" + c.Name
	}
	return c.Kind + ":" + c.Name
}

type callerKeyType struct{}

// withCallerIdentity returns ctx carrying id.
func withCallerIdentity(ctx context.Context, id *callerIdentity) context.Context {
	return context.WithValue(ctx, callerKeyType{}, id)
}

// callerIdentityFrom returns the identity the auth check put in ctx; nil
// when auth is off (no keys, no JWT) or the request was not checked.
func callerIdentityFrom(ctx context.Context) *callerIdentity {
	id, _ := ctx.Value(callerKeyType{}).(*callerIdentity)
	return id
}

// authenticator decides who may call what. With no keys and no JWT, the
// admin API answers loopback clients only and ingest is open.
type authenticator struct {
	keys []apiKey
	jwt  *jwtVerifier // nil without auth.jwt
	// routeScopes are the scopes each route accepts beside ingest:<route>
	// (routes[].auth.scopes).
	routeScopes map[string][]string
}

// newAuthenticator parses the configured key hashes ("sha256:<hex>") and
// builds the JWT verifier.
func newAuthenticator(cfg *config.Config, jo jwtOptions) (*authenticator, error) {
	a := &authenticator{routeScopes: map[string][]string{}}
	for i, k := range cfg.Auth.Keys {
		hexHash, ok := strings.CutPrefix(k.Hash, "sha256:")
		if !ok {
			return nil, fmt.Errorf("auth key %d (%s): hash must start with sha256:", i, k.Name)
		}
		raw, err := hex.DecodeString(hexHash)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth key %d (%s): hash must be 64 hex digits", i, k.Name)
		}
		ak := apiKey{name: k.Name, scopes: make(map[string]bool, len(k.Scopes))}
		copy(ak.hash[:], raw)
		for _, s := range k.Scopes {
			ak.scopes[s] = true
		}
		a.keys = append(a.keys, ak)
	}
	if cfg.Auth.JWT != nil {
		v, err := newJWTVerifier(cfg.Auth.JWT, jo)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	for _, r := range cfg.Routes {
		if r != nil && r.Auth != nil {
			a.routeScopes[r.Name] = r.Auth.Scopes
		}
	}
	return a, nil
}

// enabled reports whether keys or JWTs are configured.
func (a *authenticator) enabled() bool { return len(a.keys) > 0 || a.jwt != nil }

// identify returns who sent the request's bearer token: a key whose hash
// matches, else a JWT that verifies. It returns a 401 problem when the
// token is missing or neither.
func (a *authenticator) identify(r *http.Request) (*callerIdentity, *Problem) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" {
		return nil, unauthorized("missing bearer token", "")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, unauthorized("the Authorization header must be \"Bearer <token>\"", "invalid_request")
	}
	sum := sha256.Sum256([]byte(token))
	// Compare against every key without stopping early, so the time taken
	// does not tell which key (if any) came close.
	var found *apiKey
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].hash[:]) == 1 && found == nil {
			found = &a.keys[i]
		}
	}
	if found != nil {
		return &callerIdentity{Kind: callerKey, Name: found.name, Scopes: found.scopes}, nil
	}
	if a.jwt != nil && looksLikeJWT(token) {
		c, err := a.jwt.verify(r.Context(), token)
		if err != nil {
			return nil, unauthorized("invalid bearer token: "+err.Error(), "invalid_token", err.Error())
		}
		return &callerIdentity{Kind: callerJWT, Name: c.subject, Issuer: c.issuer, Scopes: c.scopes}, nil
	}
	return nil, unauthorized("invalid bearer token", "invalid_token")
}

// unauthorized is a 401 problem with the challenge RFC 6750 §3 asks for:
// an error code and, when given, an error_description.
func unauthorized(detail, code string, description ...string) *Problem {
	challenge := `Bearer realm="tandem"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	if len(description) > 0 {
		challenge += `, error_description="` + challengeText(description[0]) + `"`
	}
	return newProblem(tapi.ErrUnauthorized, detail).withHeader("WWW-Authenticate", challenge)
}

// insufficientScope is a 403 problem with the RFC 6750 challenge naming
// the scopes that would do.
func insufficientScope(detail string, scopes []string) *Problem {
	challenge := `Bearer realm="tandem", error="insufficient_scope", scope="` + challengeText(strings.Join(scopes, " ")) + `"`
	return newProblem(tapi.ErrForbidden, detail).withHeader("WWW-Authenticate", challenge)
}

// challengeText keeps what RFC 6750 allows inside a quoted parameter:
// printable ASCII without '"' and '\'.
func challengeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// admin checks a request to the admin API, /metrics or /openapi.json. On
// success with auth enabled, the returned request carries the caller's
// identity (callerIdentityFrom).
func (a *authenticator) admin(r *http.Request) (*http.Request, *Problem) {
	if !a.enabled() {
		if isLoopback(r.RemoteAddr) {
			return r, nil
		}
		return r, newProblem(tapi.ErrForbidden, "with no auth keys configured, the admin API answers loopback clients only")
	}
	id, p := a.identify(r)
	if p != nil {
		return r, p
	}
	if !id.Scopes[scopeAdmin] {
		return r, insufficientScope("this "+callerWord(id)+" lacks the admin scope", []string{scopeAdmin})
	}
	return r.WithContext(withCallerIdentity(r.Context(), id)), nil
}

// ingest checks a request to the route named route. On success with auth
// enabled, the returned request carries the caller's identity.
func (a *authenticator) ingest(r *http.Request, route string) (*http.Request, *Problem) {
	if !a.enabled() {
		return r, nil
	}
	id, p := a.identify(r)
	if p != nil {
		return r, p
	}
	grants := append([]string{scopeIngest + route, scopeIngestAll, scopeAdmin}, a.routeScopes[route]...)
	if !slices.ContainsFunc(grants, func(s string) bool { return id.Scopes[s] }) {
		return r, insufficientScope("this "+callerWord(id)+" may not send to route "+route, grants)
	}
	return r.WithContext(withCallerIdentity(r.Context(), id)), nil
}

func callerWord(id *callerIdentity) string {
	if id.Kind == callerJWT {
		return "token"
	}
	return "key"
}

// isLoopback reports whether a RemoteAddr ("host:port") is 127.0.0.0/8 or
// ::1 (also as an IPv4-mapped IPv6 address).
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}
