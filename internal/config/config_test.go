package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// envOf returns a lookup over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// mustParse parses src or fails the test.
func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	cfg, err := parse([]byte(src), "t.yaml", envOf(env))
	if err != nil {
		t.Fatalf("parse: unexpected error:\n%v", err)
	}
	return cfg
}

// parseErrors parses src and returns its error lines.
func parseErrors(t *testing.T, src string) []string {
	t.Helper()
	cfg, err := parse([]byte(src), "t.yaml", noEnv)
	if err == nil {
		t.Fatalf("parse: no error, want one")
	}
	if cfg != nil {
		t.Errorf("parse: got a config along with an error")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	return strings.Split(err.Error(), "\n")
}

// minimal is the smallest valid config; tests add to it.
const minimal = `targets:
  pay: {url: "http://127.0.0.1:9/pay"}
routes:
  - name: r
    path: /r
    steps:
      - {name: a, target: pay}
`

func TestParseDesignExample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parse(data, "testdata/full.yaml", envOf(map[string]string{"PAYMENTS_TOKEN": "s3cret"}))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	pay := cfg.Targets["payments"]
	if pay.Name != "payments" || pay.Auth.Bearer != "s3cret" || pay.RateLimit.Burst != 20 || pay.RateLimit.PerSecond != 100 {
		t.Errorf("payments = %+v", pay)
	}
	if cfg.Targets["refunds"].Name != "refunds" {
		t.Errorf("refunds name = %q", cfg.Targets["refunds"].Name)
	}
	r := cfg.Routes[0]
	if r.Name != "place-order" || r.Path != "/orders" || r.Method != "POST" || !r.Saga || r.Respond.Mode != RespondAccepted || !r.IsDurable() {
		t.Errorf("route = %+v", r)
	}
	charge, reserve := r.Steps[0], r.Steps[1]
	body, ok := charge.Body.(map[string]any)
	if !ok || body["amount"] != "{{ request.body.total }}" {
		t.Errorf("charge body = %#v", charge.Body)
	}
	if charge.Compensate == nil || charge.Compensate.Target != "refunds" {
		t.Errorf("compensate = %+v", charge.Compensate)
	}
	if !reflect.DeepEqual(reserve.After, []string{"charge"}) || !reserve.IsRequired() || reserve.Method != "POST" {
		t.Errorf("reserve = %+v", reserve)
	}
	if len(cfg.Auth.Keys) != 2 || cfg.Auth.Keys[1].Scopes[0] != "admin" {
		t.Errorf("keys = %+v", cfg.Auth.Keys)
	}
	if cfg.File != "testdata/full.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, minimal, nil)
	want := Config{
		Server: Server{Listen: ":8080", MaxBody: 1 << 20, ShutdownGrace: Duration(30 * time.Second)},
		Store:  Store{Driver: "sqlite", DSN: "file:tandem.db"},
		Log:    Log{Format: "text", Level: "info"},
	}
	if !reflect.DeepEqual(cfg.Server, want.Server) || cfg.Store != want.Store || cfg.Log != want.Log {
		t.Errorf("server/store/log = %+v %+v %+v", cfg.Server, cfg.Store, cfg.Log)
	}
	wantTarget := &Target{
		Name: "pay", URL: "http://127.0.0.1:9/pay", Method: "POST",
		Balance: "round_robin", Eject: Eject{Failures: 5, CoolOff: Duration(30 * time.Second)},
		Timeout: Timeout{Connect: Duration(2 * time.Second), Total: Duration(10 * time.Second)},
		Retry: Retry{MaxAttempts: 8, Initial: Duration(500 * time.Millisecond), Max: Duration(5 * time.Minute),
			Multiplier: 2, MaxAge: Duration(24 * time.Hour), MaxRetryAfter: Duration(5 * time.Minute)},
		Breaker: Breaker{FailureRatio: 0.5, MinRequests: 20, Window: Duration(time.Minute),
			OpenFor: Duration(30 * time.Second), HalfOpenProbes: 1},
		Concurrency:     32,
		MaxResponseBody: 64 << 10,
	}
	if got := cfg.Targets["pay"]; !reflect.DeepEqual(got, wantTarget) {
		t.Errorf("target =\n%+v\nwant\n%+v", got, wantTarget)
	}
	r := cfg.Routes[0]
	if r.Method != "POST" || r.Respond.Mode != RespondAccepted || r.Durable == nil || !*r.Durable ||
		r.Deadline != Duration(30*time.Second) || r.Saga {
		t.Errorf("route = %+v", r)
	}
	s := r.Steps[0]
	if s.Required == nil || !*s.Required || s.Method != "POST" || s.Body != nil {
		t.Errorf("step = %+v", s)
	}
}

func TestDefaultsDerived(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string
		check  func(*Target) bool
	}{
		{"burst from fractional rate", `{url: "http://h", rate_limit: {per_second: 2.5}}`,
			func(t *Target) bool { return t.RateLimit.Burst == 3 }},
		{"burst at least one", `{url: "http://h", rate_limit: {per_second: 0.1}}`,
			func(t *Target) bool { return t.RateLimit.Burst == 1 }},
		{"no rate, no burst", `{url: "http://h"}`,
			func(t *Target) bool { return t.RateLimit.Burst == 0 }},
		{"explicit burst kept", `{url: "http://h", rate_limit: {per_second: 100, burst: 5}}`,
			func(t *Target) bool { return t.RateLimit.Burst == 5 }},
		{"connect capped by short total", `{url: "http://h", timeout: {total: 1s}}`,
			func(t *Target) bool { return t.Timeout.Connect == Duration(time.Second) }},
		{"initial capped by short max", `{url: "http://h", retry: {max: 100ms}}`,
			func(t *Target) bool { return t.Retry.Initial == Duration(100*time.Millisecond) }},
		{"method upper-cased", `{url: "http://h", method: put}`,
			func(t *Target) bool { return t.Method == "PUT" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, strings.Replace(minimal, `{url: "http://127.0.0.1:9/pay"}`, tt.target, 1), nil)
			if got := cfg.Targets["pay"]; !tt.check(got) {
				t.Errorf("target = %+v", got)
			}
		})
	}
}

func TestStepMethodFromTarget(t *testing.T) {
	t.Parallel()
	src := strings.Replace(minimal, `{url: "http://127.0.0.1:9/pay"}`, `{url: "http://h", method: PUT}`, 1)
	src += "      - {name: b, target: pay, method: patch}\n"
	cfg := mustParse(t, src, nil)
	if a, b := cfg.Routes[0].Steps[0], cfg.Routes[0].Steps[1]; a.Method != "PUT" || b.Method != "PATCH" {
		t.Errorf("methods = %q, %q", a.Method, b.Method)
	}
}

func TestNonDurableAndRespondSteps(t *testing.T) {
	t.Parallel()
	src := minimal + `      - {name: b, target: pay, after: [a], required: false}
  - name: agg
    path: /agg
    method: get
    respond: all
    durable: false
    deadline: 2s
    steps:
      - {name: x, target: pay}
  - name: reg
    path: /reg
    respond: [a]
    steps:
      - {name: a, target: pay}
      - {name: mail, target: pay}
    response: {status: "{{ steps.a.status }}", body: {id: "{{ steps.a.body.id }}"}}
`
	cfg := mustParse(t, src, nil)
	if s := cfg.Routes[0].Steps[1]; s.IsRequired() {
		t.Errorf("required: false not kept")
	}
	agg := cfg.Routes[1]
	if agg.IsDurable() || agg.Respond.Mode != RespondAll || agg.Method != "GET" || agg.Deadline != Duration(2*time.Second) {
		t.Errorf("agg = %+v", agg)
	}
	reg := cfg.Routes[2]
	if reg.Respond.Mode != RespondSteps || !reflect.DeepEqual(reg.Respond.Steps, []string{"a"}) ||
		!reg.Respond.WaitsFor("a") || reg.Respond.WaitsFor("mail") || reg.Response == nil {
		t.Errorf("reg = %+v", reg)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	t.Parallel()
	src := `targets:
  pay: &base
    url: "http://127.0.0.1:9/pay"
    retry: {max_attempts: 3, initial: &short 1s}
  refund:
    <<: *base
    url: "http://127.0.0.1:9/refund"
    timeout: {total: *short}
routes:
  - name: r
    path: /r
    steps:
      - {name: a, target: pay}
      - {name: b, target: refund}
`
	cfg := mustParse(t, src, nil)
	ref := cfg.Targets["refund"]
	if ref.URL != "http://127.0.0.1:9/refund" || ref.Retry.MaxAttempts != 3 || ref.Timeout.Total != Duration(time.Second) {
		t.Errorf("refund = %+v", ref)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(minimal, `{url: "http://127.0.0.1:9/pay"}`,
		`{url: "http://h", auth: {bearer: "${file:token}"}}`, 1)
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := cfg.Targets["pay"].Auth.Bearer; got != "from-file" {
		t.Errorf("bearer = %q, want from-file (relative to the config's directory)", got)
	}
	if cfg.File != path {
		t.Errorf("File = %q", cfg.File)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestErrorsAs(t *testing.T) {
	t.Parallel()
	_, err := parse([]byte("routes: []\nlog: {level: loud}\n"), "conf/tandem.yaml", noEnv)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("errors.As(Errors) = %v, %v", errs, err)
	}
	var one *Error
	if !errors.As(err, &one) {
		t.Fatalf("errors.As(*Error) failed")
	}
	if one.File != "conf/tandem.yaml" || one.Line != 1 || one.Path != "routes" {
		t.Errorf("first error = %+v", one)
	}
	if errs[1].Line != 2 || errs[1].Column == 0 || errs[1].Path != "log.level" {
		t.Errorf("second error = %+v", errs[1])
	}
	want := "conf/tandem.yaml:1: routes: at least one route is required\n" +
		`conf/tandem.yaml:2: log.level: unknown level "loud": use debug, info, warn or error`
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}

func TestErrorWithoutFileName(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("routes: []\n"), "")
	if err == nil || !strings.HasPrefix(err.Error(), "<input>:1: ") {
		t.Errorf("err = %v", err)
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	src := `store: {driver: postgres, dsn: "postgres://app:pw@127.0.0.1/db"}
auth:
  keys: [{name: k, hash: "sha256:` + strings.Repeat("ab", 32) + `", scopes: [admin]}]
targets:
  pay:
    url: "http://user:urlpw@127.0.0.1:9/pay"
    headers: {X-Tenant: "${env:TENANT}", X-Plain: plain}
    auth: {basic: {username: u, password: "p"}}
routes:
  - name: r
    path: /r
    steps:
      - {name: a, target: pay, body: {token: "${env:TENANT}"}}
`
	cfg := mustParse(t, src, map[string]string{"TENANT": "acme-secret"})
	red := cfg.Redacted()
	if got := red.Store.DSN; strings.Contains(got, "pw") {
		t.Errorf("dsn = %q", got)
	}
	p := red.Targets["pay"]
	if strings.Contains(p.URL, "urlpw") {
		t.Errorf("url = %q", p.URL)
	}
	if p.Headers["X-Tenant"] != RedactedValue || p.Headers["X-Plain"] != "plain" || p.Auth.Basic.Password != RedactedValue || p.Auth.Basic.Username != "u" {
		t.Errorf("redacted target = %+v", p)
	}
	if red.Auth.Keys[0].Hash != RedactedValue {
		t.Errorf("hash not redacted")
	}
	if b := red.Routes[0].Steps[0].Body.(map[string]any); b["token"] != RedactedValue {
		t.Errorf("body = %v", b)
	}
	// The original is untouched.
	if cfg.Targets["pay"].Headers["X-Tenant"] != "acme-secret" || cfg.Auth.Keys[0].Hash == RedactedValue ||
		cfg.Routes[0].Steps[0].Body.(map[string]any)["token"] != "acme-secret" {
		t.Errorf("Redacted changed the original")
	}
	if got := redactDSN("host=db user=app password='s e c' sslmode=disable"); strings.Contains(got, "s e c") {
		t.Errorf("key=value dsn = %q", got)
	}
}

// TestDocsExample keeps the example at the top of docs/config.md valid.
func TestDocsExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/config.md")
	}
	mustParse(t, example, map[string]string{"PAYMENTS_TOKEN": "t"})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	env := envOf(map[string]string{"PAYMENTS_TOKEN": "t"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parse(data, "full.yaml", env); err != nil {
			b.Fatal(err)
		}
	}
}
