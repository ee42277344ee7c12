package config

import (
	"strings"
	"testing"
)

// withTarget puts target's flow mapping in place of minimal's pay target
// (line 2).
func withTarget(target string) string {
	return strings.Replace(minimal, `{url: "http://127.0.0.1:9/pay"}`, target, 1)
}

// minimalBlock is minimal with its step written as a block mapping, so
// tests can add keys to it from line 9 on.
var minimalBlock = strings.Replace(minimal, "      - {name: a, target: pay}\n", "      - name: a\n        target: pay\n", 1)

// TestErrorLines checks each kind of error and the exact line it names.
// Each want entry is the start of one error line; the errors must match
// the entries one to one, in order.
func TestErrorLines(t *testing.T) {
	t.Parallel()
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.want == nil {
				mustParse(t, tt.src, nil)
				return
			}
			got := parseErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("error %d =\n  %s\nwant prefix\n  %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// errorCases are configs and the errors they must give (nil: none).
var errorCases = []struct {
	name string
	src  string
	want []string
}{
	// YAML syntax and shape.
	{"syntax: unterminated quote", "routes:\n  - name: 'oops\n", []string{"t.yaml:2: could not find end character of single-quoted text"}},
	{"syntax: duplicate key", "log: {level: info}\nlog: {level: warn}\n", []string{`t.yaml:2: mapping key "log" already defined`}},
	{"syntax: bad indentation", "routes:\n  - name: a\n   path: /a\n", []string{"t.yaml:3: "}},
	{"two documents", minimal + "---\nlog: {}\n", []string{"t.yaml:9: only one YAML document is allowed"}},
	{"unknown top-level key with hint", "servr: {listen: ':1'}\n" + minimal, []string{`t.yaml:1: unknown key "servr" (did you mean "server"?)`}},
	{"unknown nested key with hint", withTarget("{url: 'http://h', retries: {max_attempts: 1}}"),
		[]string{`t.yaml:2: targets.pay: unknown key "retries" (did you mean "retry"?)`}},
	{"loader-set key is unknown", withTarget("{url: 'http://h', name: pay}"), []string{`t.yaml:2: targets.pay: unknown key "name"`}},
	{"every unknown key at once", "log: {lvl: x}\nstore: {drv: y}\n" + minimal,
		[]string{`t.yaml:1: log: unknown key "lvl"`, `t.yaml:2: store: unknown key "drv"`}},
	{"scalar for a mapping", "server: big\n" + minimal, []string{"t.yaml:1: server: expected a mapping, got a string"}},
	{"mapping for a list", "routes: {name: a}\n", []string{"t.yaml:1: routes: expected a list, got a mapping"}},
	{"top level is a list", "- a\n", []string{"t.yaml:1: expected a mapping, got a list"}},
	{"string for an integer", withTarget("{url: 'http://h', concurrency: many}"), []string{"t.yaml:2: targets.pay.concurrency: expected an integer, got a string"}},
	{"float for an integer", withTarget("{url: 'http://h', retry: {max_attempts: 2.5}}"), []string{"t.yaml:2: targets.pay.retry.max_attempts: expected an integer, got a number"}},
	{"integer overflow", withTarget("{url: 'http://h', concurrency: 99999999999999999999}"), []string{"t.yaml:2: targets.pay.concurrency: number "}},
	{"string for a bool", strings.Replace(minimal, "path: /r", "path: /r\n    saga: yes", 1), []string{"t.yaml:6: routes[0].saga: expected true or false, got a string"}},
	{"list for a string", withTarget("{url: [a]}"), []string{"t.yaml:2: targets.pay.url: expected a string, got a list"}},
	{"infinite number", withTarget("{url: 'http://h', retry: {multiplier: .inf}}"), []string{"t.yaml:2: targets.pay.retry.multiplier: expected a finite number"}},
	{"unknown alias", withTarget("{url: *nowhere}"), []string{"t.yaml:2: unknown alias *nowhere"}},
	{"self-referencing merge", withTarget("&a {url: 'http://h', <<: *a}"), []string{"t.yaml:2: merge key (<<) refers to a mapping that contains it"}},

	// Durations, sizes, respond.
	{"duration without unit", "server: {shutdown_grace: 30}\n" + minimal, []string{`t.yaml:1: server.shutdown_grace: duration "30" needs a unit, e.g. "30s"`}},
	{"negative duration", "server:\n  shutdown_grace: -5s\n" + minimal, []string{`t.yaml:2: server.shutdown_grace: duration "-5s" must not be negative`}},
	{"garbage duration", withTarget("{url: 'http://h', timeout: {total: soon}}"), []string{`t.yaml:2: targets.pay.timeout.total: invalid duration "soon"`}},
	{"a bad duration", withTarget("{url: 'http://h', retry: {max_age: 7days}}"), []string{`t.yaml:2: targets.pay.retry.max_age: invalid duration "7days"`}},
	{"duration from a mapping", withTarget("{url: 'http://h', timeout: {total: {s: 1}}}"), []string{`t.yaml:2: targets.pay.timeout.total: expected a duration such as "30s", got a mapping`}},
	{"garbage size", "server:\n  max_body: lots\n" + minimal, []string{`t.yaml:2: server.max_body: invalid size "lots"`}},
	{"negative size", "server:\n  max_body: -1\n" + minimal, []string{"t.yaml:2: server.max_body: size -1 must not be negative"}},
	{"size overflow", "server:\n  max_body: 9999999999GiB\n" + minimal, []string{`t.yaml:2: server.max_body: size "9999999999GiB" is too large`}},
	{"fractional size", "server:\n  max_body: 1.5MiB\n" + minimal, []string{`t.yaml:2: server.max_body: invalid size "1.5MiB": use a whole number`}},
	{"unknown size unit", "server:\n  max_body: 3 parsecs\n" + minimal, []string{`t.yaml:2: server.max_body: invalid size "3 parsecs": unknown unit "parsecs"`}},
	{"respond word", strings.Replace(minimal, "path: /r", "path: /r\n    respond: later", 1),
		[]string{`t.yaml:6: routes[0].respond: respond must be "accepted", "all" or a list of step names; got "later"`}},
	{"respond list item not a name", strings.Replace(minimal, "path: /r", "path: /r\n    respond:\n      - a\n      - {x: 1}", 1),
		[]string{"t.yaml:8: routes[0].respond[1]: respond list items must be step names, got a mapping"}},

	// Interpolation.
	{"missing env var", withTarget("{url: 'http://h', auth: {bearer: '${env:NOPE_TOKEN}'}}"),
		[]string{"t.yaml:2: targets.pay.auth.bearer: ${env:NOPE_TOKEN}: environment variable NOPE_TOKEN is not set"}},
	{"missing file", withTarget("{url: 'http://h', auth: {bearer: '${file:/nonexistent/tok}'}}"),
		[]string{"t.yaml:2: targets.pay.auth.bearer: ${file:/nonexistent/tok}: no such file or directory"}},
	{"unterminated reference", withTarget("{url: 'http://h', headers: {X-A: '${env:A'}}"), []string{`t.yaml:2: targets.pay.headers.X-A: unterminated "${"`}},
	{"unknown reference kind", withTarget("{url: 'http://h', headers: {X-A: '${vault:a}'}}"), []string{"t.yaml:2: targets.pay.headers.X-A: unknown reference ${vault:a}"}},
	{"reference in a body", minimalBlock + "        body: {a: [x, '${env:NOPE}']}\n",
		[]string{"t.yaml:9: routes[0].steps[0].body.a[1]: ${env:NOPE}: environment variable NOPE is not set"}},

	// Server, store, log, auth.
	{"bad listen", "server: {listen: 'nope'}\n" + minimal, []string{`t.yaml:1: server.listen: invalid listen address "nope"`}},
	{"unknown driver", "store:\n  driver: mysql\n" + minimal, []string{`t.yaml:2: store.driver: unknown driver "mysql": use sqlite or postgres`}},
	{"postgres without dsn", "store:\n  driver: postgres\n" + minimal, []string{"t.yaml:1: store.dsn: dsn is required for the postgres driver"}},
	{"log format and level", "log:\n  format: xml\n  level: loud\n" + minimal,
		[]string{`t.yaml:2: log.format: unknown format "xml"`, `t.yaml:3: log.level: unknown level "loud"`}},
	{"auth key problems", "auth:\n  keys:\n    - {name: a, hash: 'sha256:" + strings.Repeat("0", 64) + "', scopes: [admin]}\n" +
		"    - name: a\n      hash: 'md5:1234'\n      scopes: [root, 'ingest:nope', 'ingest:r', 'ingest:*', 'ingest:']\n" +
		"    - {name: 'b c', hash: 'sha256:" + strings.Repeat("g", 64) + "'}\n" + minimal,
		[]string{
			`t.yaml:4: auth.keys[1].name: duplicate key name "a"`,
			`t.yaml:5: auth.keys[1].hash: hash must be "sha256:" followed by 64 hex digits`,
			`t.yaml:6: auth.keys[1].scopes[0]: unknown scope "root"`,
			`t.yaml:6: auth.keys[1].scopes[1]: scope "ingest:nope" names an unknown route "nope"`,
			`t.yaml:6: auth.keys[1].scopes[4]: unknown scope "ingest:"`,
			`t.yaml:7: auth.keys[2].scopes: at least one scope is required`, // absent: placed at the item's "{"
			`t.yaml:7: auth.keys[2].name: invalid key name "b c"`,
			`t.yaml:7: auth.keys[2].hash: hash must be`,
		}},

	// Targets.
	{"url required", withTarget("{method: GET}"), []string{"t.yaml:2: targets.pay.url: url is required"}},
	{"url relative", withTarget("{url: /pay}"), []string{`t.yaml:2: targets.pay.url: URL "/pay" must be absolute, with scheme http or https`}},
	{"url scheme", withTarget("{url: 'ftp://h/x'}"), []string{`t.yaml:2: targets.pay.url: URL "ftp://h/x" must be absolute`}},
	{"url without host", withTarget("{url: 'http:///x'}"), []string{`t.yaml:2: targets.pay.url: URL "http:///x" has no host`}},
	{"null target", strings.Replace(minimal, `pay: {url: "http://127.0.0.1:9/pay"}`, "pay:", 1), []string{"t.yaml:2: targets.pay.url: url is required"}},
	{"bad method", withTarget("{url: 'http://h', method: 'GO ON'}"), []string{`t.yaml:2: targets.pay.method: invalid HTTP method "GO ON"`}},
	{"bad target name", strings.Replace(minimal, "pay:", "'pay ment':", 1) + "", []string{
		`t.yaml:2: targets["pay ment"]: invalid target name "pay ment"`,
		`t.yaml:7: routes[0].steps[0].target: unknown target "pay"`}},
	{"policy ranges", `targets:
  pay:
    url: "http://h"
    timeout: {connect: 5s, total: 1s}
    retry:
      max_attempts: -1
      initial: 10s
      max: 1s
      multiplier: 0.5
    breaker: {failure_ratio: 1.5, min_requests: -2, half_open_probes: -1}
    rate_limit: {per_second: -1, burst: -3}
    concurrency: -4
    success_status: [200, 700]
    headers: {"Bad Header": x, X-Ok: "a\nb"}
    auth: {bearer: t, header: {name: "X Key", value: ""}}
` + minimal[strings.Index(minimal, "routes:"):], []string{
		"t.yaml:4: targets.pay.timeout.connect: connect timeout 5s is longer than total timeout 1s",
		"t.yaml:6: targets.pay.retry.max_attempts: max_attempts must be at least 1",
		"t.yaml:7: targets.pay.retry.initial: initial backoff 10s is longer than max 1s",
		"t.yaml:9: targets.pay.retry.multiplier: multiplier must be a finite number ≥ 1, got 0.5",
		"t.yaml:10: targets.pay.breaker.failure_ratio: failure_ratio must be in (0, 1], got 1.5",
		"t.yaml:10: targets.pay.breaker.min_requests: min_requests must be at least 1, got -2",
		"t.yaml:10: targets.pay.breaker.half_open_probes: half_open_probes must be at least 1, got -1",
		"t.yaml:11: targets.pay.rate_limit.per_second: per_second must be a finite number ≥ 0",
		"t.yaml:11: targets.pay.rate_limit.burst: burst must not be negative, got -3",
		"t.yaml:12: targets.pay.concurrency: concurrency must be at least 1, got -4",
		"t.yaml:13: targets.pay.success_status[1]: status 700 is not an HTTP status",
		`t.yaml:14: targets.pay.headers["Bad Header"]: "Bad Header" is not a valid HTTP header name`,
		"t.yaml:14: targets.pay.headers.X-Ok: header value contains control characters",
		"t.yaml:15: targets.pay.auth: use one kind of auth (bearer, basic, header or oauth2), not 2",
		`t.yaml:15: targets.pay.auth.header.name: header name "X Key" is not a valid HTTP header name`,
		"t.yaml:15: targets.pay.auth.header.value: value is required",
	}},

	// Routes.
	{"no routes", "targets: {}\n", []string{"t.yaml:1: routes: at least one route is required"}},
	{"empty file", "", []string{"t.yaml:1: routes: at least one route is required"}},
	{"route name and path required", "routes:\n  - steps: [{name: a, target: pay}]\ntargets: {pay: {url: 'http://h'}}\n",
		[]string{"t.yaml:2: routes[0].name: route name is required", "t.yaml:2: routes[0].path: path is required"}},
	{"null route", "routes:\n  -\n" + minimal[:strings.Index(minimal, "routes:")],
		[]string{"t.yaml:2: routes[0].name: route name is required", "t.yaml:2: routes[0].path: path is required", "t.yaml:2: routes[0].steps: at least one step is required"}},
	{"duplicate route name and endpoint", minimal + "  - name: r\n    path: /r\n    steps: [{name: a, target: pay}]\n",
		[]string{`t.yaml:8: routes[1].name: duplicate route name "r" (also routes[0])`, "t.yaml:9: routes[1].path: POST /r is already used by routes[0]"}},
	{"same path, other method", minimal + "  - name: r2\n    path: /r\n    method: PUT\n    steps: [{name: a, target: pay}]\n", nil},
	{"path without slash", strings.Replace(minimal, "path: /r", "path: r", 1), []string{`t.yaml:5: routes[0].path: path "r" must start with "/"`}},
	{"path with query", strings.Replace(minimal, "path: /r", "path: /r?x=1", 1), []string{`t.yaml:5: routes[0].path: path "/r?x=1" must be a plain path`}},
	{"path not clean", strings.Replace(minimal, "path: /r", "path: /a//b/../c", 1), []string{`t.yaml:5: routes[0].path: path "/a//b/../c" is not clean (write "/a/c")`}},
	{"bad route method", strings.Replace(minimal, "path: /r", "path: /r\n    method: 'P(ST'", 1), []string{`t.yaml:6: routes[0].method: invalid HTTP method "P(ST"`}},
	{"no steps", strings.Replace(minimal, "      - {name: a, target: pay}\n", "", 1), []string{"t.yaml:6: routes[0].steps: at least one step is required"}},
	{"step problems", minimal + `      - {name: a, target: pay}
      - {target: paymnts, method: "x y", after: [a, a, c, ""]}
      - name: d
        target: pay
        after: [d]
        headers: {"a b": x}
`, []string{
		`t.yaml:8: routes[0].steps[1].name: duplicate step name "a" (also steps[0])`,
		"t.yaml:9: routes[0].steps[2].name: step name is required",
		`t.yaml:9: routes[0].steps[2].target: unknown target "paymnts"`,
		`t.yaml:9: routes[0].steps[2].method: invalid HTTP method "X Y"`,
		`t.yaml:9: routes[0].steps[2].after[1]: step "a" is listed twice`,
		`t.yaml:9: routes[0].steps[2].after[2]: unknown step "c"`,
		`t.yaml:9: routes[0].steps[2].after[3]: unknown step ""`,
		`t.yaml:12: routes[0].steps[3].after[0]: step "d" cannot wait on itself`,
		`t.yaml:13: routes[0].steps[3].headers["a b"]: "a b" is not a valid HTTP header name`,
	}},
	{"dependency cycle", minimal + `      - name: b
        target: pay
        after: [a, d]
      - {name: c, target: pay, after: [b]}
      - name: d
        target: pay
        after:
          - c
`, []string{"t.yaml:11: routes[0].steps[2].after[0]: dependency cycle: b -> d -> c -> b"}},
	{"two-step cycle", strings.Replace(minimal, "{name: a, target: pay}", "{name: a, target: pay, after: [b]}\n      - {name: b, target: pay, after: [a]}", 1),
		[]string{"t.yaml:8: routes[0].steps[1].after[0]: dependency cycle: a -> b -> a"}},
	{"respond names", strings.Replace(minimal, "path: /r", "path: /r\n    respond: [a, x, a]", 1), []string{
		`t.yaml:6: routes[0].respond[1]: unknown step "x"`,
		`t.yaml:6: routes[0].respond[2]: step "a" is listed twice`}},
	{"respond empty list", strings.Replace(minimal, "path: /r", "path: /r\n    respond: []", 1), []string{"t.yaml:6: routes[0].respond: respond list is empty"}},
	{"non-durable needs respond all", strings.Replace(minimal, "path: /r", "path: /r\n    durable: false", 1), []string{"t.yaml:6: routes[0].durable: durable: false needs respond: all"}},
	{"non-durable saga", strings.Replace(minimalBlock, "path: /r", "path: /r\n    respond: all\n    durable: false\n    saga: true", 1) + "        compensate: {target: pay}\n",
		[]string{"t.yaml:8: routes[0].saga: saga needs a durable route"}},
	{"saga without compensate", strings.Replace(minimal, "path: /r", "path: /r\n    saga: true", 1), []string{"t.yaml:6: routes[0].saga: saga: true needs at least one step with compensate"}},
	{"compensate target", minimalBlock + "        compensate:\n          target: refnd\n", []string{`t.yaml:10: routes[0].steps[0].compensate.target: unknown target "refnd"`}},
	{"compensate without target", minimalBlock + "        compensate: {body: {}}\n", []string{"t.yaml:9: routes[0].steps[0].compensate.target: target is required"}},
	{"response with respond accepted", minimal + "    response: {status: '200'}\n", []string{"t.yaml:8: routes[0].response: response needs respond: all or a list of steps"}},
	{"reserved paths", `targets: {pay: {url: "http://h"}}
routes:
  - {name: a, path: /v1/messages, steps: [{name: s, target: pay}]}
  - {name: b, path: /v1, steps: [{name: s, target: pay}]}
  - {name: c, path: /metrics, steps: [{name: s, target: pay}]}
  - {name: d, path: /healthz, steps: [{name: s, target: pay}]}
  - {name: e, path: /readyz, steps: [{name: s, target: pay}]}
  - {name: f, path: /openapi.json, steps: [{name: s, target: pay}]}
  - {name: g, path: /ui/x, steps: [{name: s, target: pay}]}
  - {name: h, path: /v1x, steps: [{name: s, target: pay}]}
`, []string{
		`t.yaml:3: routes[0].path: path "/v1/messages" is reserved for the admin API (/v1/...)`,
		`t.yaml:4: routes[1].path: path "/v1" is reserved for the admin API`,
		`t.yaml:5: routes[2].path: path "/metrics" is reserved`,
		`t.yaml:6: routes[3].path: path "/healthz" is reserved`,
		`t.yaml:7: routes[4].path: path "/readyz" is reserved`,
		`t.yaml:8: routes[5].path: path "/openapi.json" is reserved`,
		`t.yaml:9: routes[6].path: path "/ui/x" is reserved`,
	}},
}
