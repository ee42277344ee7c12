package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const trustYAML = `server:
  tls: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.pem }
auth:
  keys: [{ name: shop, hash: "sha256:%s", scopes: ["orders:write"] }]
  jwt: { issuer: "https://id.test", audience: tandem, jwks_file: jwks.json, hs256_secret: "${env:HS}" }
targets:
  pay:
    url: "https://127.0.0.1:9/pay"
    auth: { oauth2: { token_url: "http://127.0.0.1:9/token", client_id: tandem, client_secret: "${env:CS}", scopes: [pay], audience: aud, endpoint_params: { resource: r } } }
    sign:
      standard_webhooks: { secret: "%s", secrets: ["%s"] }
      hmac: { secret: "${env:HM}", header: X-Hub-Signature-256, prefix: "sha256=" }
    tls: { ca_file: ca.pem, cert_file: tls.crt, key_file: tls.key, server_name: pay.internal }
routes:
  - name: r
    path: /r
    auth: { scopes: ["orders:write"] }
    steps:
      - {name: a, target: pay}
`

// writeTrustFiles writes a real certificate pair, CA file and JWK Set into
// dir (relative paths in trustYAML are relative to the config file).
func writeTrustFiles(t *testing.T, dir string) {
	t.Helper()
	newTestCA(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTrustKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTrustFiles(t, dir)
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	src := strings.Replace(trustYAML, "%s", strings.Repeat("ab", 32), 1)
	src = strings.Replace(src, "%s", whsec, 2)
	file := filepath.Join(dir, "tandem.yaml")
	cfg, err := parse([]byte(src), file, envOf(map[string]string{"HS": strings.Repeat("h", 32), "CS": "client-secret", "HM": "hmac-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.TLS.CertFile != filepath.Join(dir, "tls.crt") || cfg.Server.TLS.ClientAuth != ClientAuthRequire {
		t.Errorf("server.tls %+v", cfg.Server.TLS)
	}
	j := cfg.Auth.JWT
	if j.JWKSFile != filepath.Join(dir, "jwks.json") || j.ScopesClaim != "scope" || j.Leeway.D() != 30*time.Second ||
		j.JWKSRefresh.D() != time.Hour || j.JWKSMinRefresh.D() != 30*time.Second {
		t.Errorf("auth.jwt defaults %+v", j)
	}
	pay := cfg.Targets["pay"]
	if got := pay.Sign.StandardWebhooks.All(); len(got) != 2 {
		t.Errorf("secrets %d", len(got))
	}
	if h := pay.Sign.HMAC; h.Algorithm != "sha256" || h.Encoding != "hex" || h.Format != "plain" {
		t.Errorf("hmac defaults %+v", h)
	}
	if pay.TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("tls %+v", pay.TLS)
	}
	// Redacted hides every secret of these keys.
	r := cfg.Redacted()
	for _, s := range []string{r.Auth.JWT.HS256Secret, r.Targets["pay"].Auth.OAuth2.ClientSecret, r.Targets["pay"].Sign.HMAC.Secret,
		r.Targets["pay"].Sign.StandardWebhooks.Secret, r.Targets["pay"].Sign.StandardWebhooks.Secrets[0]} {
		if s != RedactedValue {
			t.Errorf("not redacted: %q", s)
		}
	}
}

func TestTrustErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTrustFiles(t, dir)
	file := filepath.Join(dir, "t.yaml")
	tests := []struct {
		name, src, want string
	}{
		{"jwt without keys", "auth: { jwt: { issuer: i, audience: a } }", "set jwks_file, jwks_url or hs256_secret"},
		{"jwt without issuer", "auth: { jwt: { audience: a, hs256_secret: " + strings.Repeat("x", 32) + " } }", "issuer is required"},
		{"short hs256", "auth: { jwt: { issuer: i, audience: a, hs256_secret: short } }", "at least 32 bytes"},
		{"both jwks", "auth: { jwt: { issuer: i, audience: a, jwks_file: jwks.json, jwks_url: \"http://127.0.0.1:1/j\" } }", "not both"},
		{"jwks file missing", "auth: { jwt: { issuer: i, audience: a, jwks_file: nope.json } }", "cannot read the JWK Set"},
		{"jwks file not a set", "auth: { jwt: { issuer: i, audience: a, jwks_file: tls.crt } }", "is not a JWK Set"},
		{"leeway too long", "auth: { jwt: { issuer: i, audience: a, hs256_secret: " + strings.Repeat("x", 32) + ", leeway: 1h } }", "leeway must be between"},
		{"bad client_auth", "server: { tls: { cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.pem, client_auth: maybe } }", "unknown client_auth"},
		{"client_auth without CA", "server: { tls: { cert_file: tls.crt, key_file: tls.key, client_auth: require } }", "needs client_ca_file"},
		{"listener without key", "server: { tls: { cert_file: tls.crt } }", "key_file is required"},
		{"mismatched pair", "server: { tls: { cert_file: tls.crt, key_file: other.key } }", "do not load together"},
		{"route scope with space", "", "must be printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src + "\n" + minimal
			if tt.src == "" {
				src = strings.Replace(minimal, "    path: /r\n", "    path: /r\n    auth: { scopes: [\"a b\"] }\n", 1)
			}
			_, err := parse([]byte(src), file, noEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "t.yaml:") {
				t.Errorf("no file:line in %v", err)
			}
		})
	}
	targetCases := []struct{ name, target, want string }{
		{"whsec not base64", `{url: "http://127.0.0.1:9/pay", sign: { standard_webhooks: { secret: "whsec_!!" } } }`, `secret must be "whsec_" followed by base64`},
		{"whsec short", `{url: "http://127.0.0.1:9/pay", sign: { standard_webhooks: { secret: "whsec_c2hvcnQ=" } } }`, "use at least 16"},
		{"empty sign", `{url: "http://127.0.0.1:9/pay", sign: {} }`, "set standard_webhooks or hmac"},
		{"hmac algorithm", `{url: "http://127.0.0.1:9/pay", sign: { hmac: { secret: s, algorithm: md5 } } }`, "unknown algorithm"},
		{"hmac encoding", `{url: "http://127.0.0.1:9/pay", sign: { hmac: { secret: s, encoding: b32 } } }`, "unknown encoding"},
		{"hmac header", `{url: "http://127.0.0.1:9/pay", sign: { hmac: { secret: s, header: "a b" } } }`, "not a valid HTTP header name"},
		{"hmac secret", `{url: "http://127.0.0.1:9/pay", sign: { hmac: { header: X } } }`, "secret is required"},
		{"oauth2 fields", `{url: "http://127.0.0.1:9/pay", auth: { oauth2: { token_url: "x" } } }`, "client_id is required"},
		{"oauth2 and bearer", `{url: "http://127.0.0.1:9/pay", auth: { bearer: b, oauth2: { token_url: "http://127.0.0.1:9/t", client_id: c, client_secret: s } } }`, "use one kind of auth"},
		{"tls on http", `{url: "http://127.0.0.1:9/pay", tls: { ca_file: ca.pem } }`, "use https"},
		{"tls CA not PEM", `{url: "https://127.0.0.1:9/pay", tls: { ca_file: jwks.json } }`, "holds no PEM certificate"},
		{"tls cert without key", `{url: "https://127.0.0.1:9/pay", tls: { cert_file: tls.crt } }`, "key_file is required"},
		{"tls server name", `{url: "https://127.0.0.1:9/pay", tls: { server_name: "a/b" } }`, "server_name must be a host name"},
	}
	for _, tt := range targetCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(withTarget(tt.target)), file, noEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
