package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tandem-run/tandem/internal/config"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "tandem-gateway"
	testHS256    = "hs256-secret-that-is-32-bytes-long!"
)

// signingKey is a private key with its kid and JWS alg.
type signingKey struct {
	kid, alg string
	method   jwt.SigningMethod
	priv     crypto.Signer
}

// sharedRSA is made once: RSA key generation is slow.
var sharedRSA = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func testRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := sharedRSA()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeys(t *testing.T) map[string]*signingKey {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*signingKey{
		"RS256": {kid: "rsa-1", alg: "RS256", method: jwt.SigningMethodRS256, priv: testRSA(t)},
		"ES256": {kid: "ec-1", alg: "ES256", method: jwt.SigningMethodES256, priv: ec},
		"EdDSA": {kid: "ed-1", alg: "EdDSA", method: jwt.SigningMethodEdDSA, priv: ed},
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk writes a public key as a JWK, by hand from RFC 7517/7518/8037, so
// the test does not trust the library under test to write what it reads.
func jwk(k *signingKey) map[string]string {
	out := map[string]string{"kid": k.kid, "alg": k.alg, "use": "sig"}
	switch p := k.priv.Public().(type) {
	case *rsa.PublicKey:
		out["kty"], out["n"], out["e"] = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		ecdh, _ := p.ECDH()
		raw := ecdh.Bytes() // 0x04 || X || Y
		out["kty"], out["crv"], out["x"], out["y"] = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	case ed25519.PublicKey:
		out["kty"], out["crv"], out["x"] = "OKP", "Ed25519", b64(p)
	}
	return out
}

func jwks(keys ...*signingKey) []byte {
	set := map[string]any{"keys": []any{}}
	for _, k := range keys {
		set["keys"] = append(set["keys"].([]any), jwk(k))
	}
	b, _ := json.Marshal(set)
	return b
}

// jwksServer is a real JWKS endpoint whose set and status a test changes.
type jwksServer struct {
	srv     *httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, set []byte) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	js.body.Store(&set)
	js.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		if s := js.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*js.body.Load())
	}))
	t.Cleanup(js.srv.Close)
	return js
}

func (js *jwksServer) serve(set []byte) { js.body.Store(&set) }

// claims are valid ones for the test issuer and audience, changed by fn.
func claims(scope any, fn func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "user-1",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scope": scope,
	}
	if fn != nil {
		fn(c)
	}
	return c
}

func sign(t *testing.T, k *signingKey, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, c)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signHS(t *testing.T, secret []byte, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwtConfig is baseConfig with JWTs from url, a route scope on orders, and
// one API key.
func jwtConfig(url string) *config.Config {
	cfg := baseConfig()
	cfg.Auth.Keys = []config.Key{{Name: "ops", Hash: keyHash("admin-key"), Scopes: []string{"admin"}}}
	cfg.Auth.JWT = &config.JWT{Issuer: testIssuer, Audience: testAudience, JWKSURL: url, HS256Secret: testHS256, Leeway: config.Duration(30 * time.Second)}
	cfg.Routes[0].Auth = &config.RouteAuth{Scopes: []string{"orders:write"}}
	return cfg
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestJWTAuth(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["RS256"], keys["ES256"], keys["EdDSA"]))
	h := newHandler(t, jwtConfig(js.srv.URL))

	rsaPub, _ := x509.MarshalPKIXPublicKey(keys["RS256"].priv.Public())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	impostor := &signingKey{kid: "rsa-1", alg: "RS256", method: jwt.SigningMethodRS256, priv: otherRSA}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims("admin", nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	unknownKid := &signingKey{kid: "rsa-unknown", alg: "RS256", method: jwt.SigningMethodRS256, priv: otherRSA}

	tests := []struct {
		name, method, path, token string
		status                    int
		describe                  string // in error_description
	}{
		{"RS256 admin", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", nil)), 200, ""},
		{"ES256 admin", "GET", "/v1/targets", sign(t, keys["ES256"], claims("admin", nil)), 200, ""},
		{"EdDSA admin", "GET", "/v1/targets", sign(t, keys["EdDSA"], claims("admin", nil)), 200, ""},
		{"HS256 admin", "GET", "/v1/targets", signHS(t, []byte(testHS256), claims("admin", nil)), 200, ""},
		{"scopes as an array", "GET", "/v1/targets", sign(t, keys["ES256"], claims([]string{"read", "admin"}, nil)), 200, ""},
		{"space-separated scopes", "GET", "/v1/targets", sign(t, keys["ES256"], claims("read admin", nil)), 200, ""},
		{"audience in a list", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["aud"] = []string{"other", testAudience} })), 200, ""},
		{"expired within leeway", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })), 200, ""},
		{"ingest scope", "POST", "/orders", sign(t, keys["RS256"], claims("ingest:orders", nil)), 503, ""},
		{"route auth scope", "POST", "/orders", sign(t, keys["RS256"], claims("orders:write", nil)), 503, ""},
		{"ingest star", "PUT", "/refunds", sign(t, keys["RS256"], claims("ingest:*", nil)), 503, ""},
		{"route scope is per route", "PUT", "/refunds", sign(t, keys["RS256"], claims("orders:write", nil)), 403, ""},
		{"no scope for route", "POST", "/orders", sign(t, keys["RS256"], claims("read", nil)), 403, ""},
		{"ingest scope is not admin", "GET", "/v1/targets", sign(t, keys["RS256"], claims("ingest:* orders:write", nil)), 403, ""},
		{"no scope claim", "GET", "/v1/targets", sign(t, keys["RS256"], claims(nil, func(c jwt.MapClaims) { delete(c, "scope") })), 403, ""},
		{"API key still works", "GET", "/v1/targets", "admin-key", 200, ""},
		{"expired", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() })), 401, "expired"},
		{"not yet valid", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(2 * time.Minute).Unix() })), 401, "not valid yet"},
		{"issued in the future", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() })), 401, "future"},
		{"no exp", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { delete(c, "exp") })), 401, "exp"},
		{"wrong issuer", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), 401, "issuer"},
		{"wrong audience", "GET", "/v1/targets", sign(t, keys["RS256"], claims("admin", func(c jwt.MapClaims) { c["aud"] = "someone-else" })), 401, "audience"},
		{"alg none", "GET", "/v1/targets", none, 401, "algorithm"},
		{"alg confusion: RSA public key as HS256 secret", "GET", "/v1/targets", signHS(t, rsaPEM, claims("admin", nil)), 401, "signature"},
		{"signed by another key with the same kid", "GET", "/v1/targets", sign(t, impostor, claims("admin", nil)), 401, "signature"},
		{"unknown kid", "GET", "/v1/targets", sign(t, unknownKid, claims("admin", nil)), 401, "no configured key"},
		{"HS256 with a wrong secret", "GET", "/v1/targets", signHS(t, []byte("another-secret-that-is-32-bytes!!"), claims("admin", nil)), 401, "signature"},
		{"garbage three parts", "GET", "/v1/targets", "aaa.bbb.ccc", 401, "malformed"},
		{"empty parts", "POST", "/orders", "..", 401, "malformed"},
		{"not base64 header", "GET", "/v1/targets", "!!!.e30.sig", 401, "malformed"},
		{"header not an object", "GET", "/v1/targets", b64([]byte(`[1]`)) + ".e30.c2ln", 401, "malformed"},
		{"claims not an object", "GET", "/v1/targets", b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(`"x"`)) + ".c2ln", 401, "malformed"},
		{"huge token", "GET", "/v1/targets", strings.Repeat("a", 20000) + ".b.c", 401, "too long"},
		{"two parts", "GET", "/v1/targets", "aaa.bbb", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(t, h, tt.method, tt.path, "203.0.113.9:5000", []byte("{}"), bearer(tt.token))
			if w.Code >= 500 && tt.status < 500 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if tt.status >= 400 {
				problemOf(t, w, tt.status)
			} else if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			chal := w.Header().Get("WWW-Authenticate")
			switch tt.status {
			case 401:
				if !strings.Contains(chal, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q: want invalid_token", chal)
				}
				if tt.describe != "" && !strings.Contains(chal, "error_description=") || !strings.Contains(chal, tt.describe) {
					t.Errorf("WWW-Authenticate %q: want a description mentioning %q", chal, tt.describe)
				}
				if strings.Contains(chal, tt.token) || strings.Contains(w.Body.String(), tt.token) {
					t.Error("the answer echoes the token")
				}
			case 403:
				if !strings.Contains(chal, `error="insufficient_scope"`) {
					t.Errorf("WWW-Authenticate %q: want insufficient_scope", chal)
				}
			}
		})
	}
}

// TestJWTAlgConfusionWithoutHS256: with no hs256_secret, HS256 is refused
// outright, whatever key it is signed with.
func TestJWTAlgConfusionWithoutHS256(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["RS256"]))
	cfg := jwtConfig(js.srv.URL)
	cfg.Auth.JWT.HS256Secret = ""
	h := newHandler(t, cfg)
	rsaPub, _ := x509.MarshalPKIXPublicKey(keys["RS256"].priv.Public())
	for _, secret := range [][]byte{rsaPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub}), []byte(testHS256)} {
		w := call(t, h, "GET", "/v1/targets", "", nil, bearer(signHS(t, secret, claims("admin", nil))))
		problemOf(t, w, 401)
		if !strings.Contains(w.Header().Get("WWW-Authenticate"), "algorithm is not accepted") {
			t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
		}
	}
}

// TestJWKSRotationAndOutage: a new kid is fetched on first sight; a failing
// JWKS endpoint keeps the last good set; unknown-kid refreshes are rate
// limited.
func TestJWKSRotationAndOutage(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	old, next := keys["RS256"], keys["ES256"]
	js := newJWKSServer(t, jwks(old))
	cfg := jwtConfig(js.srv.URL)
	cfg.Auth.JWT.JWKSMinRefresh = config.Duration(time.Millisecond)
	h := newHandler(t, cfg)
	admin := func(k *signingKey) int {
		return call(t, h, "GET", "/v1/targets", "", nil, bearer(sign(t, k, claims("admin", nil)))).Code
	}
	if code := admin(old); code != 200 {
		t.Fatalf("old key: %d", code)
	}
	start := js.fetches.Load()

	// Rotation: the issuer publishes the new key and signs with it.
	js.serve(jwks(old, next))
	if code := admin(next); code != 200 {
		t.Fatalf("rotated key: %d", code)
	}
	if js.fetches.Load() != start+1 {
		t.Fatalf("fetches %d → %d: the unknown kid should cause one fetch", start, js.fetches.Load())
	}

	// Outage: fetches fail; the keys already known go on working.
	js.status.Store(http.StatusInternalServerError)
	ghost := &signingKey{kid: "ghost", alg: "ES256", method: jwt.SigningMethodES256, priv: next.priv}
	if code := admin(ghost); code != 401 {
		t.Fatalf("unknown kid during the outage: %d", code)
	}
	if js.fetches.Load() < start+2 {
		t.Fatal("the unknown kid during the outage caused no fetch")
	}
	for _, k := range []*signingKey{old, next} {
		if code := admin(k); code != 200 {
			t.Fatalf("key %s during the JWKS outage: %d, want the last good set kept", k.kid, code)
		}
	}

	// Rate limit: with a long min interval, a flood of unknown kids makes
	// at most one fetch.
	js.status.Store(0)
	cfg2 := jwtConfig(js.srv.URL)
	cfg2.Auth.JWT.JWKSMinRefresh = config.Duration(time.Hour)
	h2 := newHandler(t, cfg2)
	before := js.fetches.Load()
	for range 20 {
		w := call(t, h2, "GET", "/v1/targets", "", nil, bearer(sign(t, ghost, claims("admin", nil))))
		if w.Code != 401 {
			t.Fatalf("ghost kid: %d", w.Code)
		}
	}
	if n := js.fetches.Load() - before; n > 2 { // the start-up fetch and one refresh
		t.Fatalf("%d JWKS fetches for 20 unknown kids, want at most 2", n)
	}
}

// TestJWKSPeriodicRefresh: the set is fetched again on the interval, and
// an interval fetch that fails keeps the last good set.
func TestJWKSPeriodicRefresh(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["EdDSA"]))
	cfg := jwtConfig(js.srv.URL)
	cfg.Auth.JWT.JWKSRefresh = config.Duration(20 * time.Millisecond)
	cfg.Auth.JWT.JWKSMinRefresh = config.Duration(time.Hour)
	h := newHandler(t, cfg)
	js.status.Store(http.StatusBadGateway)
	base := js.fetches.Load()
	deadline := time.Now().Add(30 * time.Second)
	for js.fetches.Load() < base+3 {
		if time.Now().After(deadline) {
			t.Fatal("no periodic JWKS refresh")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := call(t, h, "GET", "/v1/targets", "", nil, bearer(sign(t, keys["EdDSA"], claims("admin", nil)))); w.Code != 200 {
		t.Fatalf("after failed refreshes: %d", w.Code)
	}
}

func TestJWKSFile(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwks(keys["ES256"], keys["EdDSA"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := jwtConfig("")
	cfg.Auth.JWT.JWKSURL, cfg.Auth.JWT.JWKSFile = "", file
	h := newHandler(t, cfg)
	for _, k := range []*signingKey{keys["ES256"], keys["EdDSA"]} {
		if w := call(t, h, "GET", "/v1/targets", "", nil, bearer(sign(t, k, claims("admin", nil)))); w.Code != 200 {
			t.Fatalf("%s from a JWKS file: %d %s", k.alg, w.Code, w.Body)
		}
	}
	if w := call(t, h, "GET", "/v1/targets", "", nil, bearer(sign(t, keys["RS256"], claims("admin", nil)))); w.Code != 401 {
		t.Fatalf("key not in the file: %d", w.Code)
	}
}

// TestJWKSFileReload: a rewritten JWKS file is read again (checked at most
// once a second on the verifier's clock); a broken rewrite keeps the set.
func TestJWKSFileReload(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	write := func(data []byte, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write(jwks(keys["ES256"]), base)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	cfg := jwtConfig("")
	cfg.Auth.JWT.JWKSURL, cfg.Auth.JWT.JWKSFile = "", file
	a, err := newAuthenticator(cfg, jwtOptions{Logger: quietLogger(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	check := func(k *signingKey) bool {
		r := httptest.NewRequest("GET", "/v1/targets", nil)
		r.Header.Set("Authorization", "Bearer "+sign(t, k, claims("admin", nil)))
		_, p := a.admin(r)
		return p == nil
	}
	if !check(keys["ES256"]) || check(keys["EdDSA"]) {
		t.Fatal("initial set")
	}
	write(jwks(keys["EdDSA"]), base.Add(time.Minute))
	clock.Add(int64(2 * time.Second))
	if !check(keys["EdDSA"]) || check(keys["ES256"]) {
		t.Fatal("the rewritten file was not read again")
	}
	write([]byte("{not json"), base.Add(2*time.Minute))
	clock.Add(int64(2 * time.Second))
	if !check(keys["EdDSA"]) {
		t.Fatal("a broken rewrite dropped the last good set")
	}
}

// TestCallerIdentity: the auth check puts who called in the context, for
// per-caller state (the Idempotency-Key namespace).
func TestCallerIdentity(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["RS256"]))
	cfg := jwtConfig(js.srv.URL)
	cfg.Auth.Keys = append(cfg.Auth.Keys, config.Key{Name: "shop", Hash: keyHash("shop-key"), Scopes: []string{"ingest:orders"}})
	a, err := newAuthenticator(cfg, jwtOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ token, want string }{
		{"shop-key", "key:shop"},
		{sign(t, keys["RS256"], claims("ingest:orders", nil)), "jwt:" + testIssuer + ":user-1"},
		{sign(t, keys["RS256"], claims("orders:write", func(c jwt.MapClaims) { c["sub"] = "user-2" })), "jwt:" + testIssuer + ":user-2"},
	} {
		r := httptest.NewRequest("POST", "/orders", nil)
		r.Header.Set("Authorization", "Bearer "+tt.token)
		r2, p := a.ingest(r, "orders")
		if p != nil {
			t.Fatalf("%s: %v", tt.want, p.Detail)
		}
		if got := callerIdentityFrom(r2.Context()).Namespace(); got != tt.want {
			t.Errorf("namespace %q, want %q", got, tt.want)
		}
	}
	if callerIdentityFrom(httptest.NewRequest("GET", "/", nil).Context()).Namespace() != "" {
		t.Error("an unchecked request has an identity")
	}
}

// TestBadJWTSweep sends malformed tokens through a real HTTP server:
// every answer is a 401 problem, never a 5xx, and the server goes on.
func TestBadJWTSweep(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	js := newJWKSServer(t, jwks(keys["RS256"], keys["ES256"]))
	srv := httptest.NewServer(newHandler(t, jwtConfig(js.srv.URL)))
	defer srv.Close()
	good := sign(t, keys["ES256"], claims("admin", nil))
	parts := strings.Split(good, ".")
	hdr := func(h string) string { return b64([]byte(h)) + "." + parts[1] + "." + parts[2] }
	bad := []string{
		"a.b.c", "..", "...", ".e30.", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		hdr(`{"alg":"ES256","kid":123}`), hdr(`{"alg":"ES256","kid":null}`), hdr(`{"alg":42}`), hdr(`{}`),
		hdr(`{"alg":"none"}`), hdr(`{"alg":"HS256","kid":"ec-1"}`), hdr(`{"alg":"RS256","kid":"ec-1"}`),
		hdr(`{"alg":"ES256","kid":"` + strings.Repeat("k", 5000) + `"}`), hdr(`{"alg":"ES256","crit":["x"]}`),
		hdr(`{"alg":"PS256","kid":"rsa-1"}`), hdr(`{"alg":"ES512","kid":"ec-1"}`),
		parts[0] + "." + b64([]byte(`{"exp":"tomorrow","iss":1,"aud":{}}`)) + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"exp":1e400}`)) + "." + parts[2],
		parts[0] + "." + b64([]byte(strings.Repeat("[", 10000))) + "." + parts[2],
		parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)),
		parts[0] + "." + parts[1] + "." + "%%%",
		good + ".extra", good[:len(good)-3], strings.ToUpper(good),
		"\u00e9.\u00e9.\u00e9", strings.Repeat(".", 100),
	}
	for _, path := range []string{"/v1/targets", "/orders", "/metrics"} {
		method := "GET"
		if path == "/orders" {
			method = "POST"
		}
		for i, tok := range bad {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("token %d: %v", i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s token %d (%.40q): %d %s", path, i, tok, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/targets", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the sweep a good token: %v %v", resp, err)
	}
	resp.Body.Close()
}
