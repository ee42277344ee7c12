package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHostsKeys(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `targets:
  catalog:
    urls: ["http://127.0.0.1:9001/api", "http://127.0.0.1:9002/api"]
    balance: least_in_flight
    eject: { failures: 3, cool_off: 10s }
routes:
  - name: r
    path: /r
    steps:
      - {name: a, target: catalog}
`, nil)
	tc := cfg.Targets["catalog"]
	if len(tc.Hosts()) != 2 || tc.Balance != BalanceLeastInFlight || tc.Eject.Failures != 3 || tc.Eject.CoolOff.D() != 10*time.Second {
		t.Errorf("target %+v", tc)
	}
	tests := []struct {
		name, target, want string
	}{
		{"url and urls", `{url: "http://a:1/", urls: ["http://b:1/"]}`, "t.yaml:2: targets.pay.urls: set url or urls, not both"},
		{"neither", `{method: GET}`, "t.yaml:2: targets.pay.url: url is required"},
		{"a bad host", `{urls: ["http://a:1/", "ftp://b/"]}`, `targets.pay.urls[1]: URL "ftp://b/" must be absolute, with scheme http or https`},
		{"a host twice", `{urls: ["http://a:1/", "http://a:1/"]}`, `targets.pay.urls[1]: "http://a:1/" is listed twice`},
		{"unknown balance", `{url: "http://a:1/", balance: random}`, `targets.pay.balance: unknown balance "random": use round_robin or least_in_flight`},
		{"eject failures", `{url: "http://a:1/", eject: {failures: -1}}`, "targets.pay.eject.failures: failures must be at least 1, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(minimal, `{url: "http://127.0.0.1:9/pay"}`, tt.target, 1)
			lines := parseErrors(t, src)
			if !strings.Contains(strings.Join(lines, "\n"), tt.want) {
				t.Errorf("errors %q, want %q", lines, tt.want)
			}
		})
	}
}

const cachedRoute = `targets:
  catalog: {url: "http://127.0.0.1:9/p", method: GET}
routes:
  - name: r
    path: /r
    method: GET
    respond: all
    durable: false
    cache: { ttl: 30s }
    steps:
      - {name: a, target: catalog}
`

func TestCacheKeys(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, cachedRoute, nil)
	if c := cfg.Routes[0].Cache; c == nil || c.TTL.D() != 30*time.Second || c.MaxBytes != DefaultCacheMaxBytes || c.Shared {
		t.Errorf("cache %+v", c)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"durable", "    durable: false\n", "", "t.yaml:8: routes[0].cache: cache needs a durable: false route"},
		{"no ttl", "{ ttl: 30s }", "{ key: x }", "routes[0].cache.ttl: ttl is required"},
		{"a POST without key", "method: GET\n    respond", "method: POST\n    respond", "routes[0].cache.key: a POST route's answers depend on its body: set key"},
		{"bad key template", "{ ttl: 30s }", `{ ttl: 30s, key: "{{ request.nope }}" }`, "routes[0].cache.key: invalid key template"},
		{"tiny max_bytes", "{ ttl: 30s }", "{ ttl: 30s, max_bytes: 10 }", "max_bytes must be at least 1KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := strings.Replace(cachedRoute, tt.from, tt.to, 1)
			lines := parseErrors(t, src)
			if !strings.Contains(strings.Join(lines, "\n"), tt.want) {
				t.Errorf("errors %q, want %q", lines, tt.want)
			}
		})
	}
	// A POST route with a key is allowed.
	mustParse(t, strings.Replace(strings.Replace(cachedRoute, "method: GET\n    respond", "method: POST\n    respond", 1),
		"{ ttl: 30s }", `{ ttl: 30s, key: "{{ request.body.sku }}" }`, 1), nil)
}

// contractConfig writes a config beside a copy of the sample APIs'
// OpenAPI document, so contract.openapi is relative to the config file.
func contractConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "sampleapi", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "contracts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "contracts", "sample.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	src := `targets:
  payments:
    url: "http://127.0.0.1:9/charges"
    contract: { openapi: contracts/sample.yaml, operation: createCharge }
routes:
  - name: r
    path: /r
    steps:
      - name: charge
        target: payments
` + body
	file := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestContract(t *testing.T) {
	t.Parallel()
	cfg, err := Load(contractConfig(t, `        body: { amount: "{{ request.body.total }}", currency: EUR }
`))
	if err != nil {
		t.Fatal(err)
	}
	if op := cfg.Targets["payments"].Contract.Op(); op == nil || op.ID != "createCharge" {
		t.Fatalf("contract not loaded: %+v", cfg.Targets["payments"].Contract)
	}
	// The redacted copy (GET /v1/targets) drops the loaded document.
	if cfg.Redacted().Targets["payments"].Contract.Op() != nil {
		t.Error("Redacted copied the loaded operation")
	}
	tests := []struct {
		name, body string
		want       []string
	}{
		{"wrong types and a missing property", `        body: { amount: "ten", order: 7 }
`, []string{
			`tandem.yaml:11: routes[0].steps[0].body.amount: contract createCharge: the value "ten" is a string, but the contract wants a number`,
			`tandem.yaml:11: routes[0].steps[0].body: contract createCharge: required property "currency" is missing`,
			`tandem.yaml:11: routes[0].steps[0].body.order: contract createCharge: the value 7 is an integer, but the contract wants a string`,
		}},
		{"method", `        method: PUT
        body: { amount: 1, currency: EUR }
`, []string{`tandem.yaml:11: routes[0].steps[0].method: the contract's operation createCharge is POST /charges, and the step sends PUT`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(contractConfig(t, tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("errors:\n%v\nwant %q", err, w)
				}
			}
		})
	}
	t.Run("missing operation names file and line", func(t *testing.T) {
		t.Parallel()
		file := contractConfig(t, "")
		src, _ := os.ReadFile(file)
		_ = os.WriteFile(file, []byte(strings.Replace(string(src), "operation: createCharge", "operation: charge", 1)), 0o644)
		_, err := Load(file)
		if err == nil || !strings.Contains(err.Error(), `tandem.yaml:4: targets.payments.contract.operation: no such operation "charge" in sample.yaml (it has: createCharge, createRefund, createReservation)`) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("missing document", func(t *testing.T) {
		t.Parallel()
		file := contractConfig(t, "")
		src, _ := os.ReadFile(file)
		_ = os.WriteFile(file, []byte(strings.Replace(string(src), "contracts/sample.yaml", "contracts/none.yaml", 1)), 0o644)
		_, err := Load(file)
		if err == nil || !strings.Contains(err.Error(), "tandem.yaml:4: targets.payments.contract.openapi: read OpenAPI document none.yaml") {
			t.Errorf("err %v", err)
		}
	})
}

func TestSameTarget(t *testing.T) {
	t.Parallel()
	a, err := Load(contractConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(contractConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if !SameTarget(a.Targets["payments"], b.Targets["payments"]) {
		t.Error("the same target with the same contract document differs")
	}
	c := *b.Targets["payments"]
	c.Concurrency = 3
	if SameTarget(a.Targets["payments"], &c) {
		t.Error("a changed concurrency is the same target")
	}
}
