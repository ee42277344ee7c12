package config

import (
	"strings"
	"testing"
)

// twoSteps is a route with steps a and b, b after a; tests append keys to
// b from line 12 on.
const twoSteps = `targets:
  pay: {url: "http://127.0.0.1:9/pay"}
routes:
  - name: r
    path: /r
    respond: all
    steps:
      - name: a
        target: pay
      - name: b
        target: pay
        after: [a]
`

// TestTemplateErrors checks that templates are compiled at load and each
// problem is reported at the line of the string that holds it.
func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"valid templates", twoSteps + `        body: {x: "{{ steps.a.body.id }}", n: ["{{ request.body.n * 2 }}", "t {{ message.id }}"]}
        headers: {X-A: "{{ steps.a.headers['x-id'] }}"}
        query: {q: "{{ request.query.q }}"}
        path: "/{{ steps.a.body.id }}"
`, nil},
		{"syntax error", twoSteps + "        body:\n          x:\n            - 1\n            - \"{{ 1 + }}\"\n",
			[]string{`t.yaml:16: routes[0].steps[1].body.x[1]: {{ 1 + }}: unexpected token EOF`}},
		{"unknown step in a template", twoSteps + "        body: {x: \"{{ steps.aa.body }}\"}\n",
			[]string{`t.yaml:13: routes[0].steps[1].body.x: {{ steps.aa.body }}: unknown step "aa"`}},
		{"a step not in after", strings.Replace(twoSteps, "        target: pay\n      - name: b", "        target: pay\n        body: \"{{ steps.b.status }}\"\n      - name: b", 1),
			[]string{`t.yaml:10: routes[0].steps[0].body: {{ steps.b.status }}: step "b" is not in after (directly or through another step): a step reads only the steps in its after`}},
		{"transitively upstream is fine", twoSteps + "      - {name: c, target: pay, after: [b], body: \"{{ steps.a.body }}\"}\n", nil},
		{"header template", twoSteps + "        headers:\n          X-Id: \"{{ steps.a.bdy }}\"\n",
			[]string{`t.yaml:14: routes[0].steps[1].headers.X-Id: {{ steps.a.bdy }}: steps.a has no field "bdy"`}},
		{"literal header with a line break", twoSteps + "        headers:\n          X-Id: \"a\\r\\nb\"\n",
			[]string{`t.yaml:14: routes[0].steps[1].headers.X-Id: header value contains control characters`}},
		{"path with a query", twoSteps + "        path: \"/x?y={{ message.id }}\"\n",
			[]string{`t.yaml:13: routes[0].steps[1].path: path "/x?y={{ message.id }}" must not hold a query`}},
		{"compensation reads its own step", strings.Replace(twoSteps, "    respond: all\n", "    saga: true\n", 1) +
			"        compensate: {target: pay, method: delete, path: \"/{{ steps.b.body.id }}\", body: {a: \"{{ steps.a.body.id }}\"}}\n", nil},
		{"compensation reads a downstream step", strings.Replace(twoSteps, "    respond: all\n", "    saga: true\n", 1) +
			"        compensate: {target: pay}\n      - {name: c, target: pay, after: [b]}\n" +
			"      - name: d\n        target: pay\n        compensate: {target: pay, body: \"{{ steps.c.body }}\"}\n",
			[]string{`t.yaml:17: routes[0].steps[3].compensate.body: {{ steps.c.body }}: step "c" is not in after (directly or through another step): a compensation reads its own step`}},
		{"response reads every step", twoSteps + "    response:\n      status: \"{{ steps.b.status }}\"\n      body: {all: \"{{ steps }}\"}\n", nil},
		{"response status", twoSteps + "    response:\n      status: \"twohundred\"\n",
			[]string{`t.yaml:14: routes[0].response.status: status "twohundred" is not an HTTP status`}},
		{"response template", twoSteps + "    response:\n      body: {x: \"{{ steps.zz.body }}\"}\n",
			[]string{`t.yaml:14: routes[0].response.body.x: {{ steps.zz.body }}: unknown step "zz"`}},
	}
	for _, tt := range tests {
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

// TestTemplateSecretNotQuoted: a template error in a value that came from
// ${env:} never shows the value.
func TestTemplateSecretNotQuoted(t *testing.T) {
	t.Parallel()
	src := twoSteps + "        body: {token: \"${env:TOKEN}\"}\n"
	_, err := parse([]byte(src), "t.yaml", envOf(map[string]string{"TOKEN": "s3cr3t{{"}))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "interpolated value") {
		t.Errorf("err %v", err)
	}
}
