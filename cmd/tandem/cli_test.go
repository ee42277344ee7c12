package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	err = m.Run(context.Background(), args)
	return out.String(), errb.String(), err
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(`
targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: a }] }
`), 0o600)
	os.WriteFile(bad, []byte(`targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - name: r
    path: /r
    steps:
      - { name: s, target: paymnts }
      - { name: t, target: a, after: [u] }
`), 0o600)
	out, _, err := runCLI(t, nil, "validate", "--config", good)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("good config: %q, %v", out, err)
	}
	_, stderr, err := runCLI(t, nil, "validate", "-c", bad)
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"bad.yaml:7:", `unknown target "paymnts"`, "bad.yaml:8:", `"u"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("errors do not mention %q:\n%s", want, stderr)
		}
	}
	// The config path may come from the environment.
	if out, _, err := runCLI(t, map[string]string{"TANDEM_CONFIG": good}, "validate"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("TANDEM_CONFIG: %q %v", out, err)
	}
	if _, _, err := runCLI(t, nil, "validate", "--config", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file validated")
	}
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	if _, _, err := runCLI(t, nil); err == nil {
		t.Error("no command: want an error")
	}
	if _, _, err := runCLI(t, nil, "frobnicate"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("unknown command: %v", err)
	}
	for _, c := range commands() {
		out, _, err := runCLI(t, nil, c.name, "--help")
		if !errors.Is(err, errHelpShown) || !strings.Contains(out, "Usage: tandem "+c.name) {
			t.Errorf("%s --help: %q %v", c.name, out, err)
		}
	}
	out, _, err := runCLI(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "tandem ") {
		t.Errorf("version: %q %v", out, err)
	}
	if _, _, err := runCLI(t, nil, "serve", "--nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad flag: %v", err)
	}
}

// TestDemo runs the demo as a newcomer would, and checks that it tells the
// whole story: retries, the dead letter, the replay, the merged answer.
func TestDemo(t *testing.T) {
	out, _, err := runCLI(t, nil, "demo")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"HTTP 503", "attempt 3", "dead letter: permanent failure: status 404",
		"repeat: same message", "replayed 1", "payments true, inventory true", `"status": "succeeded"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}
