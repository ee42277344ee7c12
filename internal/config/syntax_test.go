package config

import (
	"strings"
	"testing"
)

// TestSyntaxErrors: a YAML syntax error names the line that holds the
// mistake and says what is likely wrong. Each want is the whole error.
func TestSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"a key indented deeper than its sibling", "targets:\n  pay:\n    url: \"http://x\"\n    headers:\n      X-A: a\n       X-B: b\n",
			`t.yaml:6: unexpected ":": this line is indented deeper than the key on line 5, so it reads as the rest of that value; indent it like its sibling keys`},
		{"a colon inside a plain value", "targets:\n  pay:\n    url: http://x\n    method: POST: x\n",
			`t.yaml:4: unexpected ":" after "POST": quote the whole value if it holds ": ", or start a nested mapping on its own, indented line`},
		{"a missing }", "targets:\n  pay: {url: \"http://127.0.0.1:9/pay\"\nroutes:\n  - name: r\n",
			`t.yaml:2: missing "}": the "{" on line 2 is not closed (or a "," is missing before line 3)`},
		{"a missing } after a closed inner one", "targets:\n  pay: {url: \"http://x\", headers: {A: b}\n  stock: {url: \"http://y\"}\n",
			`t.yaml:2: missing "}": the "{" on line 2 is not closed (or a "," is missing before line 3)`},
		{"a missing } over lines and a comment", "targets:\n  pay: {\n    url: \"http://x\",\n    method: GET\n    # note\nroutes: []\n",
			`t.yaml:4: missing "}": the "{" on line 2 is not closed (or a "," is missing before line 6)`},
		{"a missing ]", "routes:\n  - name: r\n    steps: [{name: a, target: pay}\n  - name: s\n",
			`t.yaml:3: missing "]": the "[" on line 3 is not closed (or a "," is missing before line 4)`},
		{"a key indented less than its sibling", "targets:\n  stock:\n     url: http://x\n    method: GET\n",
			`t.yaml:4: this key is not indented like the key above it (line 3): the keys of one mapping must line up`},
		{"a key under a complete value", "targets:\n  pay:\n    url: \"http://x\"\n      method: GET\n",
			`t.yaml:4: unexpected key "method": it is indented deeper than the key on line 3, whose value is complete; indent it like its sibling keys`},
		{"a key after a quoted value", "targets:\n  pay:\n    url: \"http://x\" method: GET\n",
			`t.yaml:3: unexpected key "method" after a complete value: put it on its own line, indented like its sibling keys`},
		{"a key without its colon", "targets:\n  pay:\n    url: http://x\n    method GET\n    concurrency: 2\n",
			`t.yaml:4: "method GET" is not a key and value: is a ":" missing after the key?`},
		{"a mapping key without its colon", "targets:\n  pay\n    url: http://x\n",
			`t.yaml:2: is a ":" missing after "pay"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseErrors(t, tt.src)
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), tt.want)
			}
		})
	}
}

// TestURLSchemeHint: a URL written without a scheme says to add one.
func TestURLSchemeHint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want string // "" for no error
	}{
		{"127.0.0.1:9001/x", `t.yaml:2: targets.pay.url: invalid URL "127.0.0.1:9001/x": add a scheme, e.g. "http://127.0.0.1:9001/x"`},
		{"localhost:9001/x", `t.yaml:2: targets.pay.url: URL "localhost:9001/x" must be absolute, with scheme http or https: add a scheme, e.g. "http://localhost:9001/x"`},
		{"api.example.com/orders", `t.yaml:2: targets.pay.url: URL "api.example.com/orders" must be absolute, with scheme http or https: add a scheme, e.g. "http://api.example.com/orders"`},
		{"/pay", `t.yaml:2: targets.pay.url: URL "/pay" must be absolute, with scheme http or https`},
		{"http//h/pay", `t.yaml:2: targets.pay.url: URL "http//h/pay" must be absolute, with scheme http or https`},
		{"ftp://h/x", `t.yaml:2: targets.pay.url: URL "ftp://h/x" must be absolute, with scheme http or https`},
		{"http://127.0.0.1:9001/x", ""},
	}
	for _, tt := range tests {
		src := withTarget("{url: '" + tt.url + "'}")
		if tt.want == "" {
			mustParse(t, src, nil)
			continue
		}
		if got := parseErrors(t, src); len(got) != 1 || got[0] != tt.want {
			t.Errorf("url %s:\n  %s\nwant\n  %s", tt.url, strings.Join(got, "\n  "), tt.want)
		}
	}
	// A URL from a secret is never shown, not even in the hint.
	_, err := parse([]byte(withTarget("{url: '${env:URL}'}")), "t.yaml", envOf(map[string]string{"URL": "10.0.0.7:9001/x"}))
	if err == nil || strings.Contains(err.Error(), "10.0.0.7") || !strings.Contains(err.Error(), "add a scheme, e.g. http://...") {
		t.Errorf("secret url: %v", err)
	}
}
