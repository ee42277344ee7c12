package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateOnePass: validate reports every kind of error at once, one
// "file:line: path: message" a line, sorted by line (the file holds seven
// mistakes of different kinds).
func TestValidateOnePass(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "seven.yaml")
	src, err := os.ReadFile("../../internal/config/testdata/seven.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runCLI(t, nil, "validate", "--config", file)
	if err == nil || !strings.Contains(err.Error(), "(7 errors)") {
		t.Errorf("err %v, want 7 errors", err)
	}
	want := []string{
		`:3: targets.pay.url: URL "http//127.0.0.1:9/pay" must be absolute`,
		`:7: routes[0].name: invalid route name "place order"`,
		`:8: routes[0].path: path "/v1/orders" is reserved for the admin API`,
		`:9: routes[0].respond: respond must be "accepted", "all" or a list of step names; got "sometimes"`,
		`:13: routes[0].steps[0].body.total: {{ request.bdy.total }}: request has no field "bdy"`,
		`:14: routes[0].steps[1].name: duplicate step name "charge"`,
		`:18: routes[0].steps[2].after[0]: step "ship" cannot wait on itself`,
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, file+want[i]) {
			t.Errorf("line %d = %s\nwant prefix %s%s", i, l, file, want[i])
		}
	}
}
