package api

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOgenClientDecodesAnswers generates a Go client from the server's
// /openapi.json with ogen (a strict generator: a field typed non-null
// that comes as null, a missing required field or an undeclared status
// fails its decoding), builds testdata/ogencheck with it and runs it
// against the real server: every answer must decode as its declared type.
// It needs the go command and the module proxy (or a warm module cache);
// it is skipped in -short mode.
func TestOgenClientDecodesAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a generated client; skipped in -short mode")
	}
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the go command is needed in CI")
		}
		t.Skip("no go command")
	}
	r := newRig(t, "")
	okID, failID, deadID, doneID := conformanceData(t, r, "")
	resp, spec := r.do(t, "GET", "/openapi.json", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("openapi.json: %d", resp.StatusCode)
	}
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "ogencheck", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gen := run("tool", "ogen", "--target", "client", "--package", "client", "--clean", "openapi.json")
	for _, line := range strings.Split(gen, "\n") {
		if strings.Contains(line, "ERROR") {
			t.Errorf("ogen: %s", line)
		}
	}
	out := run("run", ".", r.srv.URL, okID, failID, deadID, doneID)
	t.Logf("ogencheck:\n%s", out)
}
