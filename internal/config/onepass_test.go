package config

import (
	"os"
	"strings"
	"testing"
)

// TestOnePass: every error comes back from one parse, sorted by line.
// testdata/seven.yaml holds seven mistakes of different kinds: a shape
// error the schema walk finds (respond), value checks (URL, name, reserved
// path), a template error, and two step-graph errors.
func TestOnePass(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/seven.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantErrors(t, string(src), []string{
		`t.yaml:3: targets.pay.url: URL "http//127.0.0.1:9/pay" must be absolute, with scheme http or https`,
		`t.yaml:7: routes[0].name: invalid route name "place order": use letters, digits, "-" and "_"`,
		`t.yaml:8: routes[0].path: path "/v1/orders" is reserved for the admin API (/v1/...)`,
		`t.yaml:9: routes[0].respond: respond must be "accepted", "all" or a list of step names; got "sometimes"`,
		`t.yaml:13: routes[0].steps[0].body.total: {{ request.bdy.total }}: request has no field "bdy"`,
		`t.yaml:14: routes[0].steps[1].name: duplicate step name "charge" (also steps[0])`,
		`t.yaml:18: routes[0].steps[2].after[0]: step "ship" cannot wait on itself`,
	})
}

// wantErrors parses src and checks its errors against want, one to one,
// each error starting with its entry.
func wantErrors(t *testing.T, src string, want []string) {
	t.Helper()
	got := parseErrors(t, src)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d =\n  %s\nwant prefix\n  %s", i, got[i], want[i])
		}
	}
}

// TestOnePassNoEcho: a value the schema walk reported is not reported
// again by the checks that run after it.
func TestOnePassNoEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"a bad respond is not also 'needs respond: all'",
			strings.Replace(minimal, "path: /r", "path: /r\n    respond: sometimes\n    durable: false\n    response: {status: '200'}", 1),
			[]string{`t.yaml:6: routes[0].respond: respond must be`}},
		{"a misspelt key is not also missing", strings.Replace(minimal, "{name: a, target: pay}", "{name: a, taget: pay}", 1),
			[]string{`t.yaml:7: routes[0].steps[0]: unknown key "taget" (did you mean "target"?)`}},
		{"a misspelt key beside the real one is still checked", strings.Replace(minimal, "{name: a, target: pay}", "{name: a, taget: x, target: nope}", 1),
			[]string{`t.yaml:7: routes[0].steps[0]: unknown key "taget"`, `t.yaml:7: routes[0].steps[0].target: unknown target "nope"`}},
		{"targets of the wrong shape do not make every target unknown", "targets: [pay]\n" + minimal[strings.Index(minimal, "routes:"):],
			[]string{`t.yaml:1: targets: expected a mapping, got a list`}},
		{"a bad list item keeps the later items' paths", strings.Replace(minimal, "      - {name: a, target: pay}\n", "      - 7\n      - {name: a, target: nope}\n", 1),
			[]string{`t.yaml:7: routes[0].steps[0]: expected a mapping, got an integer`, `t.yaml:8: routes[0].steps[1].target: unknown target "nope"`}},
		{"a bad duration and a bad URL", withTarget("{url: 'ftp://h', timeout: {total: soon}}"),
			[]string{`t.yaml:2: targets.pay.url: URL "ftp://h" must be absolute`, `t.yaml:2: targets.pay.timeout.total: invalid duration "soon"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantErrors(t, tt.src, tt.want)
		})
	}
}
