package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
)

// Scopes a key may hold.
const (
	scopeAdmin     = "admin"
	scopeIngestAll = "ingest:*"
	scopeIngest    = "ingest:" // + route name
)

// apiKey is one configured key: the sha256 of its secret and its scopes.
type apiKey struct {
	name   string
	hash   [sha256.Size]byte
	scopes map[string]bool
}

// authenticator decides who may call what. With no keys, the admin API
// answers loopback clients only and ingest is open.
type authenticator struct {
	keys []apiKey
}

// newAuthenticator parses the configured key hashes ("sha256:<hex>").
func newAuthenticator(cfg config.Auth) (*authenticator, error) {
	a := &authenticator{}
	for i, k := range cfg.Keys {
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
	return a, nil
}

// enabled reports whether keys are configured.
func (a *authenticator) enabled() bool { return len(a.keys) > 0 }

// identify returns the key that matches the request's bearer token. It
// returns a 401 problem when the token is missing or matches no key.
func (a *authenticator) identify(r *http.Request) (*apiKey, *Problem) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" {
		return nil, unauthorized("missing bearer token", "")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, unauthorized("the Authorization header must be \"Bearer <key>\"", "invalid_request")
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
	if found == nil {
		return nil, unauthorized("invalid bearer token", "invalid_token")
	}
	return found, nil
}

// unauthorized is a 401 problem with the challenge RFC 6750 asks for.
func unauthorized(detail, code string) *Problem {
	challenge := `Bearer realm="tandem"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	return newProblem(tapi.ErrUnauthorized, detail).withHeader("WWW-Authenticate", challenge)
}

// admin checks a request to the admin API, /metrics or /openapi.json.
func (a *authenticator) admin(r *http.Request) *Problem {
	if !a.enabled() {
		if isLoopback(r.RemoteAddr) {
			return nil
		}
		return newProblem(tapi.ErrForbidden, "with no auth keys configured, the admin API answers loopback clients only")
	}
	k, p := a.identify(r)
	if p != nil {
		return p
	}
	if !k.scopes[scopeAdmin] {
		return newProblem(tapi.ErrForbidden, "this key lacks the admin scope")
	}
	return nil
}

// ingest checks a request to the route named route.
func (a *authenticator) ingest(r *http.Request, route string) *Problem {
	if !a.enabled() {
		return nil
	}
	k, p := a.identify(r)
	if p != nil {
		return p
	}
	if k.scopes[scopeAdmin] || k.scopes[scopeIngestAll] || k.scopes[scopeIngest+route] {
		return nil
	}
	return newProblem(tapi.ErrForbidden, "this key may not send to route "+route)
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
