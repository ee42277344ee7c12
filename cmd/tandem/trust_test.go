package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tandem-run/tandem/internal/certfile/certtest"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// trustSecrets are distinct secrets, one for every place a secret can go.
// The redaction test greps every output for each of them.
type trustSecrets struct {
	bearer, basicPass, headerFromFile, oauthClient, whsec1, whsec2, hmac, jwtHS256, apiKey, pgPassword string
}

func newTrustSecrets() trustSecrets {
	return trustSecrets{
		bearer:         "SECRETbearer1a2b3c",
		basicPass:      "SECRETbasicpw4d5e6f",
		headerFromFile: "SECRETfromfile7g8h9i",
		oauthClient:    "SECREToauthclient0j1k",
		whsec1:         "whsec_" + base64.StdEncoding.EncodeToString([]byte("SECRETwhsecone2l3m4n")),
		whsec2:         "whsec_" + base64.StdEncoding.EncodeToString([]byte("SECRETwhsectwo5o6p7q")),
		hmac:           "SECREThmackey8r9s0t",
		jwtHS256:       "SECRETjwths256u1v2w3-thirty-two-bytes",
		apiKey:         "SECRETapikeyx4y5z6",
		pgPassword:     "SECRETpgpw7a8b9c",
	}
}

// all lists each secret with a name, plus the forms it may take on the way
// (the base64 inside a whsec_, the API key's hash).
func (s trustSecrets) all() map[string]string {
	sum := sha256.Sum256([]byte(s.apiKey))
	return map[string]string{
		"bearer": s.bearer, "basic password": s.basicPass, "${file:} header": s.headerFromFile,
		"oauth2 client_secret": s.oauthClient, "whsec 1": s.whsec1, "whsec 2": s.whsec2,
		"whsec 1 key": strings.TrimPrefix(s.whsec1, "whsec_"), "whsec 2 key": strings.TrimPrefix(s.whsec2, "whsec_"),
		"whsec 1 raw": "SECRETwhsecone", "hmac secret": s.hmac, "jwt hs256": s.jwtHS256, "api key": s.apiKey,
		"api key hash": hex.EncodeToString(sum[:]), "pg password": s.pgPassword,
	}
}

// trustWorld is the targets, token endpoint and certificates of one run.
type trustWorld struct {
	dir                string
	sec                trustSecrets
	listenerCA, client *certtest.CA
	callerCert         *certtest.Pair
	tokenRequests      atomic.Int64
	mu                 sync.Mutex
	signedIDs          map[string][]string // webhook-id → the timestamps seen
	yaml               string
}

func newTrustWorld(t *testing.T, sec trustSecrets, dsn, logFormat string) *trustWorld {
	t.Helper()
	w := &trustWorld{dir: t.TempDir(), sec: sec, signedIDs: map[string][]string{}}
	dir := w.dir
	w.listenerCA = certtest.NewCA(t, dir, "listener")
	w.client = certtest.NewCA(t, dir, "callers")
	listenerCert := w.listenerCA.Server(t, dir, "tandem", "127.0.0.1")
	w.callerCert = w.client.Client(t, dir, "caller", "shop")
	targetCA := certtest.NewCA(t, dir, "targets")
	targetCert := targetCA.Server(t, dir, "mtls-target", "127.0.0.1")
	tandemCert := w.client.Client(t, dir, "tandem-client", "tandem")

	serve := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	refuse := func(rw http.ResponseWriter, ok bool) bool {
		if !ok {
			rw.WriteHeader(http.StatusUnauthorized)
		}
		return ok
	}
	plain := serve(func(rw http.ResponseWriter, r *http.Request) {
		if refuse(rw, r.Header.Get("Authorization") == "Bearer "+sec.bearer) {
			_, _ = io.WriteString(rw, `{"ok":"bearer"}`)
		}
	})
	basic := serve(func(rw http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		if refuse(rw, u == "tandem" && p == sec.basicPass) {
			_, _ = io.WriteString(rw, `{"ok":"basic"}`)
		}
	})
	header := serve(func(rw http.ResponseWriter, r *http.Request) {
		if refuse(rw, r.Header.Get("X-Api-Key") == sec.headerFromFile) {
			_, _ = io.WriteString(rw, `{"ok":"header"}`)
		}
	})
	var issued sync.Map
	token := serve(func(rw http.ResponseWriter, r *http.Request) {
		n := w.tokenRequests.Add(1)
		id, secret, _ := r.BasicAuth()
		_ = r.ParseForm()
		rw.Header().Set("Content-Type", "application/json")
		if id != "tandem" || secret != sec.oauthClient || r.PostForm.Get("grant_type") != "client_credentials" {
			rw.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(rw, `{"error":"invalid_client"}`)
			return
		}
		tok := fmt.Sprintf("access-%d", n)
		issued.Store(tok, true)
		_ = json.NewEncoder(rw).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	oauth := serve(func(rw http.ResponseWriter, r *http.Request) {
		_, ok := issued.Load(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if refuse(rw, ok) {
			_, _ = io.WriteString(rw, `{"ok":"oauth2"}`)
		}
	})
	verify := func(sec string) *standardwebhooks.Webhook {
		wh, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			t.Fatal(err)
		}
		return wh
	}
	wh1, wh2 := verify(sec.whsec1), verify(sec.whsec2)
	signed := serve(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmacHex(sec.hmac, body)
		// The spec authors' library checks tandem's signature, with either
		// secret (rotation).
		if wh1.Verify(body, r.Header) != nil || wh2.Verify(body, r.Header) != nil || r.Header.Get("X-Hub-Signature-256") != "sha256="+mac {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("webhook-id")
		w.mu.Lock()
		w.signedIDs[id] = append(w.signedIDs[id], r.Header.Get("webhook-timestamp"))
		first := len(w.signedIDs[id]) == 1
		w.mu.Unlock()
		if first && strings.HasSuffix(id, ".signed") {
			rw.WriteHeader(http.StatusServiceUnavailable) // the retry is signed anew
			return
		}
		_, _ = io.WriteString(rw, `{"ok":"signed"}`)
	})
	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(rw, `{"ok":"`+r.TLS.PeerCertificates[0].Subject.CommonName+`"}`)
	}))
	mtls.TLS = &tls.Config{Certificates: []tls.Certificate{targetCert.TLS}, ClientCAs: w.client.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	mtls.Config.ErrorLog = log.New(io.Discard, "", 0)
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	broken := serve(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusInternalServerError) })

	secretFile := filepath.Join(dir, "header.secret")
	if err := os.WriteFile(secretFile, []byte(sec.headerFromFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(sec.apiKey))
	w.yaml = fmt.Sprintf(`
server:
  listen: "127.0.0.1:0"
  shutdown_grace: 2s
  tls: { cert_file: %q, key_file: %q, client_ca_file: %q }
store: { driver: %s, dsn: %q }
log: { format: %s, level: debug }
auth:
  keys:
    - { name: ops, hash: "sha256:%x", scopes: [admin] }
  jwt: { issuer: "https://id.test", audience: tandem, hs256_secret: "${env:TRUST_JWT_SECRET}" }
targets:
  plain:  { url: %q, auth: { bearer: "${env:TRUST_BEARER}" } }
  basic:  { url: %q, auth: { basic: { username: tandem, password: %q } } }
  header: { url: %q, auth: { header: { name: X-Api-Key, value: "${file:header.secret}" } } }
  oauth:
    url: %q
    auth: { oauth2: { token_url: %q, client_id: tandem, client_secret: %q, scopes: [orders] } }
  signed:
    url: %q
    retry: { initial: 10ms, max: 50ms }
    sign:
      standard_webhooks: { secrets: [%q, %q] }
      hmac: { secret: %q, header: X-Hub-Signature-256, prefix: "sha256=" }
  mtls:
    url: %q
    tls: { ca_file: %q, cert_file: %q, key_file: %q }
  broken: { url: %q, retry: { max_attempts: 2, initial: 10ms, max: 20ms } }
  tokendown:
    url: %q
    retry: { max_attempts: 2, initial: 10ms, max: 20ms }
    auth: { oauth2: { token_url: %q, client_id: tandem, client_secret: %q } }
routes:
  - name: fan
    path: /fan
    respond: [plain, basic, header, oauth, signed, mtls]
    auth: { scopes: ["fan:send"] }
    steps:
      - { name: plain, target: plain }
      - { name: basic, target: basic }
      - { name: header, target: header }
      - { name: oauth, target: oauth }
      - { name: signed, target: signed }
      - { name: mtls, target: mtls }
      - { name: broken, target: broken, required: false }
      - { name: tokendown, target: tokendown, required: false }
  - name: quick
    path: /quick
    respond: all
    durable: false
    steps:
      - { name: signed, target: signed }
      - { name: oauth, target: oauth }
`, listenerCert.CertFile, listenerCert.KeyFile, w.client.File, driverOf(dsn), dsn, logFormat, sum,
		plain, basic, sec.basicPass, header, oauth, token+"/token", sec.oauthClient,
		signed, sec.whsec1, sec.whsec2, sec.hmac, mtls.URL, targetCA.File, tandemCert.CertFile, tandemCert.KeyFile, broken,
		plain, closedURL(t)+"/token", sec.oauthClient)
	return w
}

// closedURL is an http URL on a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

func driverOf(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func hmacHex(secret string, body []byte) string {
	s, _ := newHMACForTest(secret)
	return s(body)
}

// trustDSN is a PostgreSQL DSN with a password in it when the test database
// is there (trust auth ignores the password); else a SQLite file.
func trustDSN(t *testing.T, password string) string {
	t.Helper()
	if os.Getenv("TANDEM_TEST_POSTGRES") == "" && os.Getenv("CI") == "" {
		t.Log("TANDEM_TEST_POSTGRES is unset: SQLite store, the DSN password is not checked")
		return filepath.Join(t.TempDir(), "trust.db")
	}
	dsn, _ := pgSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// TestTrustEndToEnd runs a gateway with every trust feature at once —
// HTTPS with client certificates, API keys and JWTs with a route scope,
// targets with bearer, basic, header and OAuth2 auth, signed deliveries
// (durable and durable: false) checked by the Standard Webhooks library,
// a target behind mutual TLS — and then greps every log line, admin
// answer, /metrics and /openapi.json for each secret (in JSON and text
// logs).
func TestTrustEndToEnd(t *testing.T) {
	sec := newTrustSecrets()
	t.Setenv("TRUST_JWT_SECRET", sec.jwtHS256)
	t.Setenv("TRUST_BEARER", sec.bearer)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			w := newTrustWorld(t, sec, trustDSN(t, sec.pgPassword), format)
			cfgFile := filepath.Join(w.dir, "tandem.yaml")
			if err := os.WriteFile(cfgFile, []byte(w.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			logger, err := telemetry.NewLogger(logs, format, "debug")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := start(context.Background(), cfg, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			var stopOnce sync.Once
			stop := func() (err error) {
				stopOnce.Do(func() { err = srv.stop() })
				return err
			}
			defer func() { _ = stop() }()
			base := "https://" + srv.addr.String()
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: w.listenerCA.Pool, Certificates: []tls.Certificate{w.callerCert.TLS},
			}}}
			var answers bytes.Buffer
			do := func(method, path, auth, body string) (int, []byte) {
				t.Helper()
				req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				fmt.Fprintf(&answers, "%s %s %d %v\n%s\n", method, path, resp.StatusCode, resp.Header, b)
				return resp.StatusCode, b
			}

			// mTLS at the door: no client certificate, no connection.
			bare := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.listenerCA.Pool}}}
			if resp, err := bare.Get(base + "/healthz"); err == nil {
				resp.Body.Close()
				t.Fatal("a client without a certificate got through server.tls with client_ca_file")
			}

			jwtFor := func(scope string) string {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
					"iss": "https://id.test", "aud": "tandem", "sub": "shop-1", "scope": scope,
					"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(),
				}).SignedString([]byte(sec.jwtHS256))
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			if code, _ := do("POST", "/fan", jwtFor("other"), `{"n":0}`); code != 403 {
				t.Fatalf("JWT without the route's scope: %d", code)
			}
			if code, _ := do("POST", "/fan", jwtFor("fan:send")+"x", `{"n":0}`); code != 401 {
				t.Fatalf("tampered JWT: %d", code)
			}
			code, body := do("POST", "/fan", jwtFor("fan:send"), `{"n":1}`)
			var ans struct {
				ID    string
				Steps map[string]struct {
					Status string
					Error  string
				}
			}
			if err := json.Unmarshal(body, &ans); err != nil || code != 200 {
				t.Fatalf("POST /fan: %d %s", code, body)
			}
			for _, step := range []string{"plain", "basic", "header", "oauth", "signed", "mtls"} {
				if s := ans.Steps[step]; s.Status != "succeeded" {
					t.Errorf("step %s: %s %s", step, s.Status, s.Error)
				}
			}
			code, body = do("POST", "/quick", sec.apiKey, `{"n":2}`)
			if code != 200 || !strings.Contains(string(body), `"signed"`) {
				t.Fatalf("POST /quick (durable: false): %d %s", code, body)
			}
			var quick struct{ ID string }
			_ = json.Unmarshal(body, &quick)

			// Signed: the durable retry kept its webhook-id; the in-memory
			// call was signed too; one token served both routes.
			w.mu.Lock()
			if n := len(w.signedIDs[ans.ID+".signed"]); n != 2 {
				t.Errorf("webhook-id %s.signed seen %d times, want 2 (a 503, then the signed retry)", ans.ID, n)
			}
			if n := len(w.signedIDs[quick.ID+".signed"]); n != 2 {
				t.Errorf("durable: false webhook-id %s.signed seen %d times, want 2 (retried in memory, same id)", quick.ID, n)
			}
			w.mu.Unlock()
			if n := w.tokenRequests.Load(); n != 1 {
				t.Errorf("%d token requests, want 1 (cached)", n)
			}

			// Every admin answer, with the broken step dead.
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, b := do("GET", "/v1/dead-letters", sec.apiKey, "")
				if strings.Count(string(b), ans.ID) >= 2 { // broken and tokendown
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no dead letter for the broken step")
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, p := range []string{"/v1/targets", "/v1/routes", "/v1/messages", "/v1/messages/" + ans.ID, "/v1/sources", "/metrics", "/openapi.json", "/healthz", "/readyz", "/v1/nope"} {
				if code, b := do("GET", p, sec.apiKey, ""); code >= 500 && p != "/readyz" {
					t.Errorf("GET %s: %d %s", p, code, b)
				}
			}
			// The dashboard, logged in with the admin key (a real form
			// post with its CSRF token, the session in a cookie).
			jar, _ := cookiejar.New(nil)
			client.Jar = jar
			_, login := do("GET", "/ui/login", "", "")
			_, rest, ok := strings.Cut(string(login), `name="csrf" value="`)
			csrf, _, _ := strings.Cut(rest, `"`)
			if !ok || csrf == "" {
				t.Fatalf("no CSRF token on the login page:\n%s", login)
			}
			form := url.Values{"csrf": {csrf}, "key": {sec.apiKey}, "next": {"/ui/"}}
			req, _ := http.NewRequest("POST", base+"/ui/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers.Write(page)
			if resp.StatusCode != 200 {
				t.Fatalf("dashboard login: %d", resp.StatusCode)
			}
			for _, p := range []string{"/ui/", "/ui/messages", "/ui/messages/" + ans.ID, "/ui/messages/" + quick.ID, "/ui/dead-letters", "/ui/targets"} {
				if code, b := do("GET", p, "", ""); code != 200 && code != 404 {
					t.Errorf("GET %s: %d %.300s", p, code, b)
				}
			}
			if !strings.Contains(answers.String(), "<html") {
				t.Error("no dashboard page was read")
			}
			client.Jar = nil
			do("GET", "/v1/targets", "wrong-key", "")
			do("POST", "/v1/dead-letters/replay", sec.apiKey, `{"ids":["nope"]}`)
			if err := stop(); err != nil {
				t.Error(err)
			}

			if d := os.Getenv("TANDEM_TEST_DUMP"); d != "" {
				_ = os.WriteFile(filepath.Join(d, format+".log"), []byte(logs.String()), 0o600)
				_ = os.WriteFile(filepath.Join(d, format+".answers"), answers.Bytes(), 0o600)
			}
			for name, s := range sec.all() {
				if strings.Contains(logs.String(), s) {
					t.Errorf("the %s logs hold the %s secret", format, name)
				}
				if strings.Contains(answers.String(), s) {
					t.Errorf("an HTTP answer holds the %s secret", name)
				}
			}
			if !strings.Contains(answers.String(), "tandem_") || !strings.Contains(answers.String(), `"openapi"`) {
				t.Error("the sweep did not read /metrics and /openapi.json")
			}
			if format == "json" {
				for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("not a JSON log line: %s", line)
					}
				}
			}
		})
	}
}

// lockedBuffer is a log sink for many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTrustCLIErrorsHideSecrets: validate and serve with broken configs
// that hold secrets in every place report the errors, never the secrets.
func TestTrustCLIErrorsHideSecrets(t *testing.T) {
	sec := newTrustSecrets()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "s.secret")
	if err := os.WriteFile(secretFile, []byte(sec.headerFromFile), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(sec.apiKey))
	broken := fmt.Sprintf(`
server: { tls: { cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem } }
store: { driver: postgres, dsn: "postgres://tandem:%s@127.0.0.1:1/x?sslmode=disable" }
auth:
  keys: [{ name: ops, hash: "sha256:%x", scopes: [nonsense] }]
  jwt: { issuer: "", audience: x, hs256_secret: %q, leeway: -1s }
targets:
  a:
    url: "http://127.0.0.1:9/a"
    auth: { bearer: %q, basic: { username: u, password: %q } }
    sign:
      standard_webhooks: { secrets: [%q, "whsec_%s!!"] }
      hmac: { secret: %q, algorithm: md5, prefix: "x" }
  b:
    url: "http://127.0.0.1:9/b"
    headers: { X-From-File: "${file:s.secret}" }
    auth: { header: { name: "bad header", value: "${file:s.secret}" }, oauth2: { token_url: "ftp://x", client_id: "", client_secret: %q } }
    tls: { ca_file: %q, cert_file: %q }
routes:
  - { name: r, path: /r, auth: { scopes: ["bad scope"] }, steps: [{ name: s, target: a }, { name: t, target: nope }] }
`, sec.pgPassword, sum, sec.jwtHS256[:20], sec.bearer, sec.basicPass, sec.whsec1, sec.whsec2[6:], sec.hmac, sec.oauthClient, secretFile, secretFile)
	file := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(file, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"validate", "serve"} {
		out, stderr, err := runCLI(t, nil, cmd, "--config", file)
		if err == nil {
			t.Fatalf("%s accepted the broken config", cmd)
		}
		all := out + stderr + err.Error()
		for _, want := range []string{"hs256_secret must be at least 32 bytes", "issuer is required", "algorithm", "use one kind of auth", "cannot read the certificate", "secret must be", "token_url", "client_id is required", "bad scope"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: no %q in\n%s", cmd, want, all)
			}
		}
		for name, s := range sec.all() {
			if strings.Contains(all, s) || (name == "jwt hs256" && strings.Contains(all, s[:20])) {
				t.Errorf("%s's errors hold the %s secret:\n%s", cmd, name, all)
			}
		}
	}
}
