package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/config"
)

// reloadTarget answers every call with 200 and the path it was called on.
func reloadTarget(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// reloadConfig is a config with one in-memory route per name in routes.
func reloadConfig(target, extra string, routes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server: { listen: \"127.0.0.1:0\", shutdown_grace: 2s%s }\nlog: { format: json, level: info }\ntargets:\n  t: { url: %q }\nroutes:\n", extra, target)
	for _, r := range routes {
		fmt.Fprintf(&b, "  - name: %s\n    path: /%s\n    respond: all\n    durable: false\n    steps:\n      - { name: s, target: t }\n", r, r)
	}
	return b.String()
}

// writeFile replaces path as an editor does: a temporary file renamed over it.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startFile(t *testing.T, path string) *server {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.stop() })
	return srv
}

type configView struct {
	Version   int64     `json:"version"`
	Hash      string    `json:"hash"`
	LoadedAt  time.Time `json:"loaded_at"`
	Unchanged bool      `json:"unchanged"`
	Routes    *struct {
		Added, Changed, Removed []string
	} `json:"routes"`
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func status(t *testing.T, method, url string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReloadEndpoint(t *testing.T) {
	t.Parallel()
	target := reloadTarget(t)
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	writeFile(t, path, reloadConfig(target, "", "one"))
	srv := startFile(t, path)
	base := "http://" + srv.addr.String()

	var v configView
	getJSON(t, base+"/v1/config", &v)
	if v.Version != 1 || v.Hash != fileHash(t, path) || v.LoadedAt.IsZero() {
		t.Fatalf("GET /v1/config %+v", v)
	}

	// A bad file changes nothing; every error comes back, with its line.
	writeFile(t, path, reloadConfig(target, "", "one")+"  - name: two\n    path: /two\n    steps:\n      - { name: s, target: nope }\n      - { name: s, target: t }\n")
	code, h, body := postJSON(t, base+"/v1/config/reload", `{}`)
	if code != http.StatusUnprocessableEntity || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("bad file: %d %s %s", code, h.Get("Content-Type"), body)
	}
	var p struct {
		Detail string `json:"detail"`
		Errors []struct {
			Message, Location string
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Errors) < 2 || !strings.Contains(p.Errors[0].Message, "tandem.yaml:15: routes[1].steps[0].target: unknown target \"nope\"") {
		t.Fatalf("problem %s", body)
	}
	getJSON(t, base+"/v1/config", &v)
	if v.Version != 1 {
		t.Errorf("a bad file changed the version to %d", v.Version)
	}
	if code := status(t, http.MethodPost, base+"/one"); code != http.StatusOK {
		t.Errorf("route one after a bad reload: %d", code)
	}

	// A file that changes the listen address needs a restart: refused.
	writeFile(t, path, strings.Replace(reloadConfig(target, "", "one"), "127.0.0.1:0", "127.0.0.1:1", 1))
	code, _, body = postJSON(t, base+"/v1/config/reload", `{}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "changing server needs a restart") {
		t.Fatalf("restart needed: %d %s", code, body)
	}

	// A good file: route one goes, route two comes, at once.
	writeFile(t, path, reloadConfig(target, "", "two"))
	code, _, body = postJSON(t, base+"/v1/config/reload", `{}`)
	if code != http.StatusOK {
		t.Fatalf("good file: %d %s", code, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != 2 || v.Hash != fileHash(t, path) || v.Routes == nil || len(v.Routes.Added) != 1 || v.Routes.Added[0] != "two" || len(v.Routes.Removed) != 1 {
		t.Fatalf("reload answer %s", body)
	}
	if code := status(t, http.MethodPost, base+"/two"); code != http.StatusOK {
		t.Errorf("new route two: %d", code)
	}
	if code := status(t, http.MethodPost, base+"/one"); code != http.StatusNotFound {
		t.Errorf("removed route one: %d", code)
	}
	// Both endpoints are in the OpenAPI document.
	var doc struct{ Paths map[string]any }
	getJSON(t, base+"/openapi.json", &doc)
	if doc.Paths["/v1/config"] == nil || doc.Paths["/v1/config/reload"] == nil {
		t.Error("/openapi.json lacks the config endpoints")
	}
	// The Go client sees the same.
	cl := client.New(base, "")
	if info, err := cl.Config(context.Background()); err != nil || info.Version != 2 || info.Hash != v.Hash {
		t.Errorf("client Config: %+v %v", info, err)
	}
	writeFile(t, path, "routes: 7\n")
	if _, err := cl.ReloadConfig(context.Background()); !errors.Is(err, client.ErrValidation) {
		t.Errorf("client ReloadConfig of a bad file: %v", err)
	}
	writeFile(t, path, reloadConfig(target, "", "two"))
	// The same file again: nothing to do.
	code, _, body = postJSON(t, base+"/v1/config/reload", `{}`)
	if err := json.Unmarshal(body, &v); err != nil || code != http.StatusOK || !v.Unchanged || v.Version != 2 {
		t.Errorf("same file: %d %s", code, body)
	}
}

func TestReloadWatchConfig(t *testing.T) {
	t.Parallel()
	target := reloadTarget(t)
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	writeFile(t, path, reloadConfig(target, ", watch_config: true", "one"))
	srv := startFile(t, path)
	base := "http://" + srv.addr.String()
	writeFile(t, path, reloadConfig(target, ", watch_config: true", "one", "two"))
	waitFor(t, 20*time.Second, "the watched file to be reloaded", func() bool {
		var v configView
		getJSON(t, base+"/v1/config", &v)
		return v.Version == 2
	})
	if code := status(t, http.MethodPost, base+"/two"); code != http.StatusOK {
		t.Errorf("route two after the watch reload: %d", code)
	}
	// A bad file is refused and logged; the config in force stays.
	writeFile(t, path, "targets: [\n")
	waitFor(t, 20*time.Second, "the bad watched file to be refused", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `tandem_config_reloads_total{result="error"} 1`)
	})
	var v configView
	getJSON(t, base+"/v1/config", &v)
	if v.Version != 2 {
		t.Errorf("a bad watched file changed the version to %d", v.Version)
	}
}

func TestReloadSIGHUP(t *testing.T) {
	t.Parallel()
	target := reloadTarget(t)
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	writeFile(t, path, strings.Replace(reloadConfig(target, "", "one"), "server: { listen: \"127.0.0.1:0\", ", "server: { ", 1))
	p := startServe(t, path)
	writeFile(t, path, strings.Replace(reloadConfig(target, "", "one", "two"), "server: { listen: \"127.0.0.1:0\", ", "server: { ", 1))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "SIGHUP to reload the config", func() bool {
		var v configView
		getJSON(t, p.base+"/v1/config", &v)
		return v.Version == 2
	})
	if code := status(t, http.MethodPost, p.base+"/two"); code != http.StatusOK {
		t.Errorf("route two after SIGHUP: %d", code)
	}
	p.stop(t, 10*time.Second)
}
