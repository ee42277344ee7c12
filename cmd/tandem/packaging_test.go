package main

import (
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

var (
	releaseOnce sync.Once
	releasePath string
	releaseErr  error
)

// releaseVersion is what the tests stamp into the release build.
const releaseVersion = "v0.0.0-packaging-test"

// releaseBinary builds tandem with the Dockerfile's own go build line (the
// release build of docs/operations.md): CGO_ENABLED=0, -trimpath, the
// version stamped.
func releaseBinary(t *testing.T) string {
	t.Helper()
	releaseOnce.Do(func() {
		df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
		if err != nil {
			releaseErr = err
			return
		}
		m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*)$`).FindSubmatch(df)
		if m == nil {
			releaseErr = fmt.Errorf("the Dockerfile has no RUN CGO_ENABLED=0 go build line")
			return
		}
		dir, err := os.MkdirTemp("", "tandem-release-")
		if err != nil {
			releaseErr = err
			return
		}
		releasePath = filepath.Join(dir, "tandem")
		line := strings.ReplaceAll(string(m[1]), "${VERSION}", releaseVersion)
		line = strings.ReplaceAll(line, "/out/tandem", releasePath)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			releaseErr = fmt.Errorf("%s: %v\n%s", line, err, out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releasePath
}

// TestReleaseBuild: the Dockerfile's build makes a static binary that
// knows its version, serves, and answers its own HEALTHCHECK.
func TestReleaseBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := releaseBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (it has an interpreter)")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v", libs)
	}
	f.Close()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tandem "+releaseVersion+" (") {
		t.Errorf("version: %q %v", out, err)
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USER nonroot", "HEALTHCHECK", `"health"`, "-trimpath", "FROM golang:", " AS build"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}

	// Serve as the image does (TANDEM_CONFIG, the working directory holding
	// the SQLite file), then run the HEALTHCHECK's command.
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "tandem.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`server: { listen: %q, shutdown_grace: 2s }
targets: { a: { url: "http://127.0.0.1:9/a" } }
routes: [{ name: r, path: /r, steps: [{ name: s, target: a }] }]
`, addr)), 0o600)
	serve := exec.Command(bin, "serve")
	serve.Dir = dir
	serve.Env = append(os.Environ(), "TANDEM_CONFIG="+cfg)
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
	}()
	health := func(args ...string) error {
		return exec.Command(bin, append([]string{"health", "--server", "http://" + addr}, args...)...).Run()
	}
	waitFor(t, 20*time.Second, "the HEALTHCHECK passes", func() bool { return health() == nil })
	if err := health("--ready"); err != nil {
		t.Errorf("health --ready: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tandem.db")); err != nil {
		t.Errorf("no store in the working directory: %v", err)
	}
	_ = serve.Process.Signal(os.Interrupt)
	_ = serve.Wait()
	var ee *exec.ExitError
	if err := health(); err == nil || !asExit(err, &ee) || ee.ExitCode() != exitFailure {
		t.Errorf("health of a stopped server: %v", err)
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

// TestCompose: compose.yaml runs tandem (built from the Dockerfile) beside
// PostgreSQL, and the config it mounts is valid.
func TestCompose(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       map[string]any    `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(src, &c); err != nil {
		t.Fatal(err)
	}
	pg, td := c.Services["postgres"], c.Services["tandem"]
	if !strings.HasPrefix(pg.Image, "postgres:") || td.Build["context"] != "." || len(td.Ports) == 0 {
		t.Fatalf("services: %+v", c.Services)
	}
	mount := ""
	for _, v := range td.Volumes {
		if host, ctr, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(ctr, td.Environment["TANDEM_CONFIG"]) {
			mount = host
		}
	}
	if mount == "" {
		t.Fatalf("no volume mounts the config at %s", td.Environment["TANDEM_CONFIG"])
	}
	t.Setenv("TANDEM_PG_DSN", td.Environment["TANDEM_PG_DSN"])
	out, stderr, err := runCLI(t, nil, "validate", "-c", filepath.Join("..", "..", mount))
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("the compose config: %v %s", err, stderr)
	}
}
