package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrorsHideSecrets: `tandem validate` shows an interpolated
// value's ${env:} reference, never the value, and `tandem serve` never
// prints the SQLite DSN's query (it may hold a key).
func TestCLIErrorsHideSecrets(t *testing.T) {
	t.Setenv("TANDEM_EDGE_TARGET", "secret-target-value")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: "${env:TANDEM_EDGE_TARGET}" }] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runCLI(t, nil, "validate", "--config", bad)
	if err == nil {
		t.Fatal("bad config validated")
	}
	if strings.Contains(stderr, "secret-target-value") || !strings.Contains(stderr, `unknown target "${env:TANDEM_EDGE_TARGET}"`) {
		t.Errorf("validate:\n%s", stderr)
	}

	dsn := "file:" + filepath.Join(dir, "no-such-dir", "t.db") + "?_pragma=key('s3cret-key')"
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfg, []byte(`server: { listen: "127.0.0.1:0" }
store: { dsn: "`+dsn+`" }
targets:
  a: { url: "http://127.0.0.1:9/a" }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: a }] }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = runCLI(t, nil, "serve", "--config", cfg)
	if err == nil {
		t.Fatal("serve started on a DSN in a missing directory")
	}
	all := stderr + err.Error()
	if strings.Contains(all, "s3cret-key") || !strings.Contains(all, "?xxxxx") {
		t.Errorf("serve: %v\n%s", err, stderr)
	}
}
