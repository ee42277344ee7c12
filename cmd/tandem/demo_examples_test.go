package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/examples/sampleapi"
)

// TestRunExample runs each example as `tandem demo --example NAME` would.
// runExample sets the examples' URL variables; t.Setenv restores them.
func TestRunExample(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"order", []string{
			"an order in stock", "→ 202",
			"charge.compensate    → refunds    succeeded",
			"reserve              → inventory  dead: permanent failure: status 409",
			": compensated",
			"request.body.total is missing",
		}},
		{"registration", []string{"a new user", "→ 201", `"email":"ann@example.com"`, "→ 409", "while the welcome email is still waiting", "welcome              → email      succeeded"}},
		{"publishing", []string{"→ 201", `"id":"art_1"`, "index                → search     succeeded", "notify               → subscribers succeeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svcs, err := sampleapi.Example(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			for env := range svcs {
				t.Setenv(env, "")
			}
			var out, errb bytes.Buffer
			m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := m.runExample(ctx, tt.name, exampleOptions{}); err != nil {
				t.Fatalf("run: %v\n%s\n%s", err, out.String(), errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		if err := m.runExample(context.Background(), "nope", exampleOptions{}); err == nil || !strings.Contains(err.Error(), "order") {
			t.Errorf("err %v", err)
		}
	})
}

// TestValidateGraphErrors: `tandem validate` names the steps of a cycle and
// an unknown step, in after and in a template, with their lines.
func TestValidateGraphErrors(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "graph.yaml")
	os.WriteFile(bad, []byte(`targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - name: r
    path: /r
    steps:
      - { name: charge, target: a, after: [ship] }
      - { name: reserve, target: a, after: [charge] }
      - { name: ship, target: a, after: [reserve] }
      - { name: notify, target: a, after: [shipp] }
      - { name: audit, target: a, body: { r: "{{ steps.reserv.body.id }}", s: "{{ steps.ship.status }}" } }
`), 0o600)
	_, stderr, err := runCLI(t, nil, "validate", "--config", bad)
	if err == nil {
		t.Fatal("config validated")
	}
	for _, want := range []string{
		"graph.yaml:8: routes[0].steps[1].after[0]: dependency cycle: charge -> ship -> reserve -> charge",
		`graph.yaml:10: routes[0].steps[3].after[0]: unknown step "shipp" (did you mean "ship"?)`,
		`graph.yaml:11: routes[0].steps[4].body.r: {{ steps.reserv.body.id }}: unknown step "reserv" (did you mean "reserve"?)`,
		`graph.yaml:11: routes[0].steps[4].body.s: {{ steps.ship.status }}: step "ship" is not in after`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("errors lack %q:\n%s", want, stderr)
		}
	}
}
