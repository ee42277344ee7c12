package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tok", "abc\n")
	write("two-newlines", "abc\n\n")
	write("crlf", "abc\r\n")
	write("none", "abc")
	write("yaml", "x: 1\n- y\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"A": "1", "EMPTY": "", "NESTED": "${env:A}", "DOLLAR": "$${x}"})
	tests := []struct {
		in, want, err string
		secret        bool
	}{
		{in: "plain", want: "plain"},
		{in: "${env:A}", want: "1", secret: true},
		{in: "a-${env:A}-b-${env:A}", want: "a-1-b-1", secret: true},
		{in: "${env:EMPTY}", want: "", secret: true},
		{in: "${env:NESTED}", want: "${env:A}", secret: true}, // never expanded twice
		{in: "${env:DOLLAR}", want: "$${x}", secret: true},
		{in: "$${env:A}", want: "${env:A}"},
		{in: "cost: $$5 and $${", want: "cost: $$5 and ${"},
		{in: "$$${env:A}", want: "$${env:A}"},
		{in: "{{ steps.a.body }}", want: "{{ steps.a.body }}"},
		{in: "${file:tok}", want: "abc", secret: true},
		{in: "${file:two-newlines}", want: "abc\n", secret: true},
		{in: "${file:crlf}", want: "abc", secret: true},
		{in: "${file:none}", want: "abc", secret: true},
		{in: "${file:" + filepath.Join(dir, "tok") + "}", want: "abc", secret: true},
		{in: "${file:yaml}", want: "x: 1\n- y", secret: true},
		{in: "${env:MISSING}", err: "${env:MISSING}: environment variable MISSING is not set"},
		{in: "${env:}", err: "${env:}: invalid environment variable name"},
		{in: "${env:A B}", err: "invalid environment variable name"},
		{in: "${file:}", err: "${file:}: empty path"},
		{in: "${file:nope}", err: "${file:nope}: no such file or directory"},
		{in: "${file:sub}", err: "${file:sub}: not a regular file"},
		{in: "${A}", err: "unknown reference ${A}"},
		{in: "x ${env:A", err: `unterminated "${"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, secret, err := expand(tt.in, dir, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || secret != tt.secret {
				t.Errorf("expand(%q) = %q, %v, %v; want %q, %v", tt.in, got, secret, err, tt.want, tt.secret)
			}
		})
	}
}

func TestInterpolateConfig(t *testing.T) {
	t.Parallel()
	src := `store: {driver: postgres, dsn: "${env:DSN}"}
targets:
  pay:
    url: "${env:PAY_URL}"
    headers: {X-Key: "${env:KEY}", X-Lit: "$${env:KEY}"}
    auth: {basic: {username: u, password: "${env:KEY}"}}
routes:
  - name: r
    path: /r
    steps:
      - name: a
        target: pay
        body:
          token: "${env:KEY}"
          yaml: "${env:YAML}"
          list: ["${env:KEY}", 3, "{{ request.body.x }}"]
          "${env:KEY}": keys are not interpolated
        query: {k: "${env:KEY}"}
`
	env := map[string]string{
		"DSN": "postgres://127.0.0.1/db", "PAY_URL": "http://127.0.0.1:9/pay", "KEY": "k-1",
		"YAML": "x: 1\n- a: [\n",
	}
	cfg := mustParse(t, src, env)
	p := cfg.Targets["pay"]
	if cfg.Store.DSN != env["DSN"] || p.URL != env["PAY_URL"] || p.Headers["X-Key"] != "k-1" || p.Headers["X-Lit"] != "${env:KEY}" {
		t.Errorf("target = %+v, dsn %q", p, cfg.Store.DSN)
	}
	if p.Auth.Basic.Password != "k-1" {
		t.Errorf("password = %q", p.Auth.Basic.Password)
	}
	st := cfg.Routes[0].Steps[0]
	body := st.Body.(map[string]any)
	if body["yaml"] != env["YAML"] {
		t.Errorf("body.yaml = %#v: a secret must stay one string", body["yaml"])
	}
	list := body["list"].([]any)
	if body["token"] != "k-1" || list[0] != "k-1" || list[1] != uint64(3) && list[1] != int64(3) && list[1] != 3 || list[2] != "{{ request.body.x }}" {
		t.Errorf("body = %#v", body)
	}
	if _, ok := body["${env:KEY}"]; !ok {
		t.Errorf("a body key was interpolated: %#v", body)
	}
	if st.Query["k"] != "k-1" {
		t.Errorf("query = %v", st.Query)
	}
}

func TestInterpolatedValuesAreNotQuoted(t *testing.T) {
	t.Parallel()
	src := withTarget(`{url: "${env:PAY_URL}", method: "${env:M}"}`)
	_, err := parse([]byte(src), "t.yaml", envOf(map[string]string{"PAY_URL": "ftp://user:hunter2@h/", "M": "bad method"}))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "bad method") {
		t.Errorf("error shows a secret:\n%s", msg)
	}
	// The key path and the reference, never the value.
	if !strings.Contains(msg, `t.yaml:2: targets.pay.url: URL "${env:PAY_URL}" must be absolute`) {
		t.Errorf("error = %s", msg)
	}
}

// TestInterpolatedNamesNotShown: the messages that quote names (duplicate
// key and route names, an unknown route in a scope, an unclean path, an
// unknown step or target) show an interpolated value's ${env:} reference
// and never its value, nor a hint derived from it.
func TestInterpolatedNamesNotShown(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"K1": "secret-key-name", "K2": "secret-key-name", "SCOPE": "ingest:secret-route",
		"R1": "secret-route-a", "R2": "secret-route-a", "P": "/secret//path/../x",
		"STEP": "secret-step", "TGT": "secret-target",
	}
	src := `targets:
  pay: { url: "http://127.0.0.1:9/pay" }
auth:
  keys:
    - { name: "${env:K1}", hash: "sha256:` + strings.Repeat("a", 64) + `", scopes: ["${env:SCOPE}"] }
    - { name: "${env:K2}", hash: "sha256:` + strings.Repeat("b", 64) + `", scopes: [admin] }
routes:
  - { name: "${env:R1}", path: /a, steps: [{ name: s, target: pay }] }
  - { name: "${env:R2}", path: "${env:P}", respond: ["${env:STEP}"], steps: [{ name: s, target: "${env:TGT}" }] }
`
	_, err := parse([]byte(src), "t.yaml", envOf(env))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, v := range env {
		if strings.Contains(msg, strings.TrimPrefix(v, "ingest:")) {
			t.Errorf("error shows %q:\n%s", v, msg)
		}
	}
	for _, want := range []string{
		`auth.keys[1].name: duplicate key name "${env:K2}"`,
		`auth.keys[0].scopes[0]: scope "${env:SCOPE}" names an unknown route`,
		`routes[1].name: duplicate route name "${env:R2}"`,
		`routes[1].path: path "${env:P}" is not clean`,
		`routes[1].respond[0]: unknown step "${env:STEP}"`,
		`routes[1].steps[0].target: unknown target "${env:TGT}"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestFailedInterpolationReportedOnce(t *testing.T) {
	t.Parallel()
	lines := parseErrors(t, withTarget(`{url: "${env:NOPE}"}`))
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "t.yaml:2: targets.pay.url: ${env:NOPE}: environment variable NOPE is not set") {
		t.Errorf("errors = %q", lines)
	}
}
