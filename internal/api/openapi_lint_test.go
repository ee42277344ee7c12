package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// redoclyPath finds the Redocly CLI: $TANDEM_REDOCLY, or where .ci/run
// installs it (.ci/node).
func redoclyPath() string {
	if p := os.Getenv("TANDEM_REDOCLY"); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", ".ci", "node", "node_modules", ".bin", "redocly"))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("redocly"); err == nil {
		return p
	}
	return ""
}

// TestOpenAPILint lints the document of a server with routes of every
// kind (accepting, waiting, in memory, with a schema) and with auth keys,
// with Redocly CLI's recommended rules: zero errors. CI installs Redocly
// (.ci/run, ensure_redocly); elsewhere the test skips without it.
func TestOpenAPILint(t *testing.T) {
	t.Parallel()
	bin := redoclyPath()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Redocly CLI is missing: .ci/run installs it into .ci/node")
		}
		t.Skip("Redocly CLI not installed (npm install --prefix .ci/node @redocly/cli)")
	}
	tg := newTestTarget(t, 200)
	sum := sha256.Sum256([]byte("lint-key"))
	keys := fmt.Sprintf("auth:\n  keys:\n    - { name: ops, hash: \"sha256:%s\", scopes: [admin] }\n", hex.EncodeToString(sum[:]))
	for name, extra := range map[string]string{"no keys": "", "keys": keys} {
		t.Run(name, func(t *testing.T) {
			r := newEdgeRig(t, fmt.Sprintf(schemaYAML, tg.srv.URL)+extra, map[string]string{"schemas/order.json": orderSchema})
			resp, spec := r.do(t, "GET", "/openapi.json", nil, map[string]string{"Authorization": "Bearer lint-key"})
			if resp.StatusCode != 200 {
				t.Fatalf("openapi.json: %d %s", resp.StatusCode, spec)
			}
			path := filepath.Join(t.TempDir(), "openapi.json")
			if err := os.WriteFile(path, spec, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "lint", "--extends=recommended", path)
			cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("redocly lint: %v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
}
