package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of the trust keys (docs/config.md, "Trust at the edges").
const (
	DefaultScopesClaim    = "scope"
	DefaultJWTLeeway      = Duration(30 * time.Second)
	DefaultJWKSRefresh    = Duration(time.Hour)
	DefaultJWKSMinRefresh = Duration(30 * time.Second)
	DefaultHMACHeader     = "X-Signature"
	ClientAuthRequire     = "require"
	ClientAuthIfGiven     = "verify_if_given"
)

// ServerTLS serves HTTPS (server.tls). The certificate and the client CAs
// are reloaded when their files change: each new connection uses what the
// files hold then.
type ServerTLS struct {
	// CertFile is the server's certificate chain, PEM. Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the certificate's private key, PEM. Required.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs. Default none.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is require (a client without a valid certificate is
	// refused in the handshake) or verify_if_given (a client may come
	// without one; one that is given must verify). Default require; only
	// with client_ca_file.
	ClientAuth string `yaml:"client_auth"`
}

// JWT accepts bearer JWTs (auth.jwt) beside API keys. A valid token's
// scopes claim grants the same scopes as an API key.
type JWT struct {
	// Issuer must equal the token's iss claim. Required.
	Issuer string `yaml:"issuer"`
	// Audience must be in the token's aud claim. Required.
	Audience string `yaml:"audience"`
	// JWKSFile is a JWK Set file with the public keys (RS*, PS*, ES*,
	// EdDSA), read at start and again when it changes. Default none.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL serves the JWK Set; it is fetched at start, every
	// jwks_refresh, and when a token names an unknown kid (at most once per
	// jwks_min_refresh). A failed fetch keeps the last good set. Default
	// none.
	JWKSURL string `yaml:"jwks_url"`
	// HS256Secret verifies HS256 tokens: at least 32 bytes, from ${env:} or
	// ${file:}. Default none (HS256 refused).
	HS256Secret string `yaml:"hs256_secret"`
	// ScopesClaim names the claim holding the scopes: a space-separated
	// string or an array of strings. Default scope.
	ScopesClaim string `yaml:"scopes_claim"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s.
	Leeway Duration `yaml:"leeway"`
	// JWKSRefresh is how often jwks_url is fetched again. Default 1h.
	JWKSRefresh Duration `yaml:"jwks_refresh"`
	// JWKSMinRefresh is the least time between two fetches caused by
	// unknown kids. Default 30s.
	JWKSMinRefresh Duration `yaml:"jwks_min_refresh"`
}

// RouteAuth narrows who may send to a route (routes[].auth).
type RouteAuth struct {
	// Scopes grant sending to this route, beside "ingest:<route>",
	// "ingest:*" and "admin". Default none.
	Scopes []string `yaml:"scopes"`
}

// Sign signs every request to a target (targets.<name>.sign). Both kinds
// may be set; each adds its own headers.
type Sign struct {
	// StandardWebhooks signs as the Standard Webhooks spec: webhook-id,
	// webhook-timestamp, webhook-signature. Default none.
	StandardWebhooks *StandardWebhooksSign `yaml:"standard_webhooks"`
	// HMAC signs the body into one header (GitHub or Stripe style).
	// Default none.
	HMAC *HMACSign `yaml:"hmac"`
}

// StandardWebhooksSign holds the signing secrets, "whsec_<base64>".
type StandardWebhooksSign struct {
	// Secret is the signing secret. Required unless Secrets is set.
	Secret string `yaml:"secret"`
	// Secrets are several secrets (rotation): each gives a signature, in
	// one space-separated webhook-signature. Default none.
	Secrets []string `yaml:"secrets"`
}

// All returns Secret and Secrets, in that order.
func (s *StandardWebhooksSign) All() []string {
	var out []string
	if s.Secret != "" {
		out = append(out, s.Secret)
	}
	return append(out, s.Secrets...)
}

// HMACSign is an HMAC signature header.
type HMACSign struct {
	// Secret is the HMAC key. Required.
	Secret string `yaml:"secret"`
	// Header receives the signature, e.g. X-Hub-Signature-256. Default
	// X-Signature.
	Header string `yaml:"header"`
	// Algorithm is sha256 or sha512. Default sha256.
	Algorithm string `yaml:"algorithm"`
	// Encoding is hex or base64. Default hex.
	Encoding string `yaml:"encoding"`
	// Prefix goes before the signature, e.g. "sha256=". Default none.
	Prefix string `yaml:"prefix"`
	// Format is plain (HMAC of the body) or stripe ("t=<unix>,v1=<HMAC of
	// unix.body>"). Default plain.
	Format string `yaml:"format"`
}

// OAuth2Auth is the OAuth2 client-credentials grant: tandem fetches an
// access token, caches it until it expires, and sends it as a bearer token.
type OAuth2Auth struct {
	// TokenURL is the token endpoint, http or https. Required.
	TokenURL string `yaml:"token_url"`
	// ClientID identifies tandem at the token endpoint. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates tandem. Required.
	ClientSecret string `yaml:"client_secret"`
	// Scopes are asked for. Default none.
	Scopes []string `yaml:"scopes"`
	// Audience is sent as the audience parameter (Auth0 and others).
	// Default none.
	Audience string `yaml:"audience"`
	// EndpointParams are extra form parameters for the token request.
	// Default none.
	EndpointParams map[string]string `yaml:"endpoint_params"`
}

// TargetTLS is how tandem's TLS client meets a target (targets.<name>.tls).
type TargetTLS struct {
	// CAFile holds PEM CA certificates to trust instead of the system
	// roots. Default: system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile is a client certificate for mutual TLS, PEM. Default none.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's key. Required with cert_file.
	KeyFile string `yaml:"key_file"`
	// ServerName is the name checked in the target's certificate and sent
	// as SNI. Default the URL's host.
	ServerName string `yaml:"server_name"`
}

// resolveTrustPaths makes the trust keys' file paths relative to the
// config file's directory, as ${file:} paths are.
func resolveTrustPaths(cfg *Config, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if t := cfg.Server.TLS; t != nil {
		abs(&t.CertFile)
		abs(&t.KeyFile)
		abs(&t.ClientCAFile)
	}
	if j := cfg.Auth.JWT; j != nil {
		abs(&j.JWKSFile)
	}
	for _, t := range cfg.Targets {
		if t != nil && t.TLS != nil {
			abs(&t.TLS.CAFile)
			abs(&t.TLS.CertFile)
			abs(&t.TLS.KeyFile)
		}
	}
}

// trustDefaults fills the trust keys' defaults.
func trustDefaults(cfg *Config) {
	if t := cfg.Server.TLS; t != nil && t.ClientCAFile != "" {
		t.ClientAuth = or(t.ClientAuth, ClientAuthRequire)
	}
	if j := cfg.Auth.JWT; j != nil {
		j.ScopesClaim = or(j.ScopesClaim, DefaultScopesClaim)
		j.Leeway = or(j.Leeway, DefaultJWTLeeway)
		j.JWKSRefresh = or(j.JWKSRefresh, DefaultJWKSRefresh)
		j.JWKSMinRefresh = or(j.JWKSMinRefresh, DefaultJWKSMinRefresh)
	}
	for _, t := range cfg.Targets {
		if t == nil || t.Sign == nil || t.Sign.HMAC == nil {
			continue
		}
		h := t.Sign.HMAC
		h.Header = or(h.Header, DefaultHMACHeader)
		h.Algorithm = or(h.Algorithm, "sha256")
		h.Encoding = or(h.Encoding, "hex")
		h.Format = or(h.Format, "plain")
	}
}

// routeScopes are the scopes routes name under auth.scopes.
func (v *validator) routeScopes() map[string]bool {
	out := map[string]bool{}
	for _, r := range v.cfg.Routes {
		if r != nil && r.Auth != nil {
			for _, s := range r.Auth.Scopes {
				out[s] = true
			}
		}
	}
	return out
}

// trust checks the trust keys: server.tls, auth.jwt, routes' auth, and
// each target's sign, oauth2 and tls.
func (v *validator) trust() {
	if t := v.cfg.Server.TLS; t != nil {
		p := "server.tls"
		v.keyPair(p, t.CertFile, t.KeyFile, true)
		if t.ClientCAFile != "" {
			v.caFile(joinKey(p, "client_ca_file"), t.ClientCAFile)
		}
		switch t.ClientAuth {
		case "", ClientAuthRequire, ClientAuthIfGiven:
		default:
			v.errf(joinKey(p, "client_auth"), "unknown client_auth %s: use require or verify_if_given", v.c.quote(joinKey(p, "client_auth"), t.ClientAuth))
		}
		if t.ClientAuth != "" && t.ClientCAFile == "" {
			v.errf(joinKey(p, "client_auth"), "client_auth needs client_ca_file")
		}
	}
	if j := v.cfg.Auth.JWT; j != nil {
		v.jwt("auth.jwt", j)
	}
	for i, r := range v.cfg.Routes {
		if r == nil || r.Auth == nil {
			continue
		}
		for k, s := range r.Auth.Scopes {
			sp := joinIndex(joinKey(joinKey(joinIndex("routes", i), "auth"), "scopes"), k)
			if !validScope(s) {
				v.errf(sp, "scope %s must be printable ASCII without spaces or quotes", v.c.quote(sp, s))
			}
		}
	}
	for _, name := range sortedKeys(v.cfg.Targets) {
		t := v.cfg.Targets[name]
		if t == nil {
			continue
		}
		p := joinKey("targets", name)
		if t.Sign != nil {
			v.sign(joinKey(p, "sign"), t.Sign)
		}
		if t.Auth.OAuth2 != nil {
			v.oauth2(joinKey(joinKey(p, "auth"), "oauth2"), t.Auth.OAuth2)
		}
		if t.TLS != nil {
			tp := joinKey(p, "tls")
			if t.TLS.CAFile != "" {
				v.caFile(joinKey(tp, "ca_file"), t.TLS.CAFile)
			}
			if t.TLS.CertFile != "" || t.TLS.KeyFile != "" {
				v.keyPair(tp, t.TLS.CertFile, t.TLS.KeyFile, false)
			}
			if strings.ContainsAny(t.TLS.ServerName, " /:") {
				v.errf(joinKey(tp, "server_name"), "server_name must be a host name")
			}
			if u, err := url.Parse(t.URL); err == nil && u.Scheme == "http" {
				v.errf(tp, "tls is set but the url is http: use https")
			}
		}
	}
}

// validScope: a scope travels space-separated in a JWT and inside a quoted
// WWW-Authenticate parameter (RFC 6750 §3).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func (v *validator) jwt(p string, j *JWT) {
	if j.Issuer == "" {
		v.errf(joinKey(p, "issuer"), "issuer is required: the iss claim tokens must carry")
	}
	if j.Audience == "" {
		v.errf(joinKey(p, "audience"), "audience is required: a value the aud claim of tokens must hold")
	}
	if j.JWKSFile == "" && j.JWKSURL == "" && j.HS256Secret == "" {
		v.errf(p, "set jwks_file, jwks_url or hs256_secret: where the keys come from")
	}
	if j.JWKSFile != "" && j.JWKSURL != "" {
		v.errf(joinKey(p, "jwks_url"), "use jwks_file or jwks_url, not both")
	}
	if j.JWKSFile != "" {
		fp := joinKey(p, "jwks_file")
		if data, err := os.ReadFile(j.JWKSFile); err != nil {
			v.errf(fp, "cannot read the JWK Set: %s", pathErr(err))
		} else {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if json.Unmarshal(data, &set) != nil || len(set.Keys) == 0 {
				v.errf(fp, "%s is not a JWK Set (a JSON object with a non-empty \"keys\" array)", v.c.quote(fp, j.JWKSFile))
			}
		}
	}
	if j.JWKSURL != "" {
		v.url(joinKey(p, "jwks_url"), j.JWKSURL)
	}
	if j.HS256Secret != "" && len(j.HS256Secret) < 32 {
		v.errf(joinKey(p, "hs256_secret"), "hs256_secret must be at least 32 bytes (RFC 7518 §3.2), got %d", len(j.HS256Secret))
	}
	if j.Leeway < 0 || j.Leeway.D() > 10*time.Minute {
		v.errf(joinKey(p, "leeway"), "leeway must be between 0 and 10m, got %s", j.Leeway)
	}
	if j.JWKSMinRefresh.D() < time.Second {
		v.errf(joinKey(p, "jwks_min_refresh"), "jwks_min_refresh must be at least 1s, got %s", j.JWKSMinRefresh)
	}
	if j.JWKSRefresh.D() < time.Second {
		v.errf(joinKey(p, "jwks_refresh"), "jwks_refresh must be at least 1s, got %s", j.JWKSRefresh)
	}
}

func (v *validator) sign(p string, s *Sign) {
	if s.StandardWebhooks == nil && s.HMAC == nil {
		v.errf(p, "set standard_webhooks or hmac")
	}
	if sw := s.StandardWebhooks; sw != nil {
		sp := joinKey(p, "standard_webhooks")
		if len(sw.All()) == 0 {
			v.errf(joinKey(sp, "secret"), "secret is required (\"whsec_<base64>\")")
		}
		check := func(path, sec string) {
			key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
			switch {
			case err != nil:
				v.errf(path, "secret must be \"whsec_\" followed by base64")
			case len(key) < 16:
				v.errf(path, "secret's key is %d bytes; use at least 16 (24 to 64 is usual)", len(key))
			}
		}
		if sw.Secret != "" {
			check(joinKey(sp, "secret"), sw.Secret)
		}
		for i, sec := range sw.Secrets {
			check(joinIndex(joinKey(sp, "secrets"), i), sec)
		}
	}
	if h := s.HMAC; h != nil {
		hp := joinKey(p, "hmac")
		if h.Secret == "" {
			v.errf(joinKey(hp, "secret"), "secret is required")
		}
		if !validToken(h.Header) {
			v.errf(joinKey(hp, "header"), "header %s is not a valid HTTP header name", v.c.quote(joinKey(hp, "header"), h.Header))
		}
		if h.Algorithm != "sha256" && h.Algorithm != "sha512" {
			v.errf(joinKey(hp, "algorithm"), "unknown algorithm %s: use sha256 or sha512", v.c.quote(joinKey(hp, "algorithm"), h.Algorithm))
		}
		if h.Encoding != "hex" && h.Encoding != "base64" {
			v.errf(joinKey(hp, "encoding"), "unknown encoding %s: use hex or base64", v.c.quote(joinKey(hp, "encoding"), h.Encoding))
		}
		if h.Format != "plain" && h.Format != "stripe" {
			v.errf(joinKey(hp, "format"), "unknown format %s: use plain or stripe", v.c.quote(joinKey(hp, "format"), h.Format))
		}
		if !validHeaderValue(h.Prefix) {
			v.errf(joinKey(hp, "prefix"), "prefix contains control characters")
		}
	}
}

func (v *validator) oauth2(p string, o *OAuth2Auth) {
	v.url(joinKey(p, "token_url"), o.TokenURL)
	if o.ClientID == "" {
		v.errf(joinKey(p, "client_id"), "client_id is required")
	}
	if o.ClientSecret == "" {
		v.errf(joinKey(p, "client_secret"), "client_secret is required")
	}
	for i, s := range o.Scopes {
		if !validScope(s) {
			v.errf(joinIndex(joinKey(p, "scopes"), i), "scope must be printable ASCII without spaces or quotes")
		}
	}
}

// keyPair checks that a certificate and its key load together.
func (v *validator) keyPair(p, certFile, keyFile string, required bool) {
	cp, kp := joinKey(p, "cert_file"), joinKey(p, "key_file")
	switch {
	case certFile == "" && keyFile == "" && !required:
		return
	case certFile == "":
		v.errf(cp, "cert_file is required with key_file")
		return
	case keyFile == "":
		v.errf(kp, "key_file is required with cert_file")
		return
	}
	if _, err := os.Stat(certFile); err != nil {
		v.errf(cp, "cannot read the certificate: %s", pathErr(err))
		return
	}
	if _, err := os.Stat(keyFile); err != nil {
		v.errf(kp, "cannot read the key: %s", pathErr(err))
		return
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		// The error says what is wrong, never the key's bytes.
		v.errf(cp, "certificate and key do not load together: %v", err)
	}
}

func (v *validator) caFile(p, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		v.errf(p, "cannot read the CA file: %s", pathErr(err))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		v.errf(p, "%s holds no PEM certificate", v.c.quote(p, file))
	}
}

// pathErr is an *os.PathError's message: "open /x: no such file".
func pathErr(err error) string { return fmt.Sprint(err) }
