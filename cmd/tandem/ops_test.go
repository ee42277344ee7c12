package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/config"
)

// opsGateway runs tandem in-process with one route /r: step a reaches a
// target that answers 201, step b one that answers 404 {"error":"unknown
// sku"}, so every message leaves one dead letter.
func opsGateway(t *testing.T) string {
	t.Helper()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"ok_1"}`)
	}))
	t.Cleanup(ok.Close)
	nope := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"unknown sku"}`)
	}))
	t.Cleanup(nope.Close)
	yaml := fmt.Sprintf(`server: { listen: "127.0.0.1:0", shutdown_grace: 2s }
store: { driver: sqlite, dsn: %q }
log: { level: error }
targets:
  ok: { url: %q }
  nope: { url: %q, retry: { max_attempts: 1 } }
routes:
  - name: r
    path: /r
    steps:
      - { name: a, target: ok }
      - { name: b, target: nope }
`, filepath.Join(t.TempDir(), "ops.db"), ok.URL, nope.URL)
	cfg, err := config.Parse([]byte(yaml), "ops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.stop() })
	return "http://" + srv.addr.String()
}

// sendDead sends n messages to /r and waits until each has its dead letter.
func sendDead(t *testing.T, base string, n int) []string {
	t.Helper()
	c := client.New(base, "")
	ctx := context.Background()
	var ids []string
	for i := range n {
		res, err := c.Send(ctx, "/r", []byte(fmt.Sprintf(`{"n":%d}`, i)), "application/json", "")
		if err != nil || res.StatusCode != http.StatusAccepted {
			t.Fatalf("send: %v %+v", err, res)
		}
		var a struct{ ID string }
		_ = json.Unmarshal(res.Body, &a)
		ids = append(ids, a.ID)
	}
	waitFor(t, 10*time.Second, "messages settled", func() bool {
		for _, id := range ids {
			m, err := c.Message(ctx, id)
			if err != nil || !m.Terminal() {
				return false
			}
		}
		return true
	})
	return ids
}

func deadIDs(t *testing.T, base string) []string {
	t.Helper()
	ds, _, err := client.New(base, "").DeadLetters(context.Background(), client.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// TestCLIReplayByID: `dlq replay --id ID` replays that dead letter (it
// used to send the default --limit with the ids and always get 422), and
// --json is honoured.
func TestCLIReplayByID(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	sendDead(t, base, 2)
	dead := deadIDs(t, base)
	if len(dead) != 2 {
		t.Fatalf("dead letters %v", dead)
	}
	env := map[string]string{"TANDEM_SERVER": base}
	out, _, err := runCLI(t, env, "dlq", "replay", "--id", dead[0])
	if err != nil || strings.TrimSpace(out) != "replayed 1" {
		t.Fatalf("replay --id: %q %v", out, err)
	}
	waitFor(t, 10*time.Second, "the replayed delivery dead again", func() bool { return len(deadIDs(t, base)) == 2 })
	out, _, err = runCLI(t, env, "dlq", "replay", "--id", dead[1], "--json")
	var got struct {
		Replayed int      `json:"replayed"`
		IDs      []string `json:"ids"`
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Replayed != 1 || len(got.IDs) != 1 || got.IDs[0] != dead[1] {
		t.Fatalf("replay --json: %q %v", out, err)
	}
	_, _, err = runCLI(t, env, "dlq", "replay", "--id", dead[0], "--limit", "5")
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--limit") {
		t.Errorf("--id with --limit: %v (exit %d)", err, exitCode(err))
	}
}

// TestCLIExitCodes: --help exits 0 everywhere, a wrong command line 2, a
// command that fails 1; flags may follow the message id.
func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	ids := sendDead(t, base, 1)
	env := map[string]string{"TANDEM_SERVER": base}
	for _, args := range [][]string{
		{"messages", "show", "--help"}, {"messages", "--help"}, {"dlq", "replay", "--help"},
		{"dlq", "purge", "--help"}, {"migrate", "--help"}, {"help"},
	} {
		out, _, err := runCLI(t, env, args...)
		if exitCode(err) != exitOK || !strings.Contains(out, "Usage: tandem") {
			t.Errorf("%v: exit %d, %q, %v", args, exitCode(err), out, err)
		}
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"messages", "show"}, {"messages", "show", "a", "b"}, {"messages", "frob"},
		{"serve", "--nope"}, {"dlq", "replay"}, {"send"}, {"migrate"}, {"demo", "--serve"},
	} {
		_, _, err := runCLI(t, env, args...)
		if exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, exitCode(err), err, exitUsage)
		}
	}
	if _, _, err := runCLI(t, env, "messages", "show", "no-such-message"); exitCode(err) != exitFailure {
		t.Errorf("unknown message: exit %d (%v)", exitCode(err), err)
	}
	// Flags after the id.
	out, _, err := runCLI(t, nil, "messages", "show", ids[0], "--json", "--server", base)
	var m struct{ ID string }
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || m.ID != ids[0] {
		t.Errorf("show ID --json --server: %q %v", out, err)
	}
}

// TestCLIConnectionHint: a server that does not answer names --server and
// TANDEM_SERVER.
func TestCLIConnectionHint(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{{"messages", "list"}, {"dlq", "list"}, {"send", "--path", "/r"}, {"messages", "show", "x"}} {
		_, _, err := runCLI(t, map[string]string{"TANDEM_SERVER": closed}, args...)
		if exitCode(err) != exitFailure || err == nil || !strings.Contains(err.Error(), "--server") ||
			!strings.Contains(err.Error(), "TANDEM_SERVER") || !strings.Contains(err.Error(), closed) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestCLISend: --method and --header reach the server, --data with --file
// is refused, and an idempotent repeat says so.
func TestCLISend(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got *http.Request
	var gotBody string
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, gotBody = r, string(b)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{}`)
	}))
	defer rec.Close()
	_, _, err := runCLI(t, nil, "send", "--server", rec.URL, "--path", "/x", "--method", "put",
		"--header", "X-Tenant: acme", "--header", "X-Trace:  t1 ", "--data", `{"a":1}`)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if got.Method != http.MethodPut || got.Header.Get("X-Tenant") != "acme" || got.Header.Get("X-Trace") != "t1" ||
		got.Header.Get("Content-Type") != "application/json" || gotBody != `{"a":1}` {
		t.Errorf("request: %s %v %q", got.Method, got.Header, gotBody)
	}
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(file, []byte(`{"f":1}`), 0o600)
	if _, _, err := runCLI(t, nil, "send", "--server", rec.URL, "--path", "/x", "--data", "{}", "--file", file); exitCode(err) != exitUsage {
		t.Errorf("--data and --file: %v", err)
	}
	if _, _, err := runCLI(t, nil, "send", "--server", rec.URL, "--path", "/x", "--header", "nocolon"); exitCode(err) != exitUsage {
		t.Errorf("bad --header: %v", err)
	}

	base := opsGateway(t)
	env := map[string]string{"TANDEM_SERVER": base}
	first, _, err := runCLI(t, env, "send", "--path", "/r", "--data", `{"k":1}`, "--idempotency-key", "k-1")
	if err != nil || strings.Contains(first, "repeat") {
		t.Fatalf("first: %q %v", first, err)
	}
	again, _, err := runCLI(t, env, "send", "--path", "/r", "--data", `{"k":1}`, "--idempotency-key", "k-1")
	if err != nil || !strings.Contains(again, "idempotent repeat") {
		t.Errorf("repeat: %q %v", again, err)
	}
}

// TestCLIPaging: a list prints how to get the next page, and --cursor gets
// it.
func TestCLIPaging(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	ids := sendDead(t, base, 2)
	env := map[string]string{"TANDEM_SERVER": base}
	for _, cmd := range []string{"messages", "dlq"} {
		out, _, err := runCLI(t, env, cmd, "list", "--limit", "1")
		_, cursor, found := strings.Cut(out, "more: add --cursor ")
		if err != nil || !found {
			t.Fatalf("%s page 1: %q %v", cmd, out, err)
		}
		out2, _, err := runCLI(t, env, cmd, "list", "--limit", "1", "--cursor", strings.TrimSpace(cursor))
		if err != nil || strings.Contains(out2, "more:") {
			t.Fatalf("%s page 2: %q %v", cmd, out2, err)
		}
		if cmd == "messages" && (!strings.Contains(out, ids[1]) || !strings.Contains(out2, ids[0])) {
			t.Errorf("pages:\n%s\n%s", out, out2)
		}
	}
}

// TestMigrateStatusReadsOnly: `migrate status` in an empty folder lists the
// migrations as pending and creates nothing; `migrate up` applies them; a
// bare `migrate` is a usage error.
func TestMigrateStatusReadsOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "tandem.db")
	cfgPath := filepath.Join(dir, "tandem.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`store: { dsn: "file:%s" }
targets: { a: { url: "http://127.0.0.1:9/a" } }
routes: [{ name: r, path: /r, steps: [{ name: s, target: a }] }]
`, db)), 0o600)
	out, _, err := runCLI(t, nil, "migrate", "status", "-c", cfgPath)
	if err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("status: %q %v", out, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("status created files: %v", entries)
	}
	if _, stderr, err := runCLI(t, nil, "migrate", "-c", cfgPath); exitCode(err) != exitUsage || !strings.Contains(stderr, "Usage") {
		t.Errorf("bare migrate: %v %q", err, stderr)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("bare migrate created the database")
	}
	if out, _, err := runCLI(t, nil, "migrate", "up", "-c", cfgPath); err != nil || strings.Contains(out, "pending") {
		t.Fatalf("up: %q %v", out, err)
	}
	out, _, err = runCLI(t, nil, "migrate", "status", "-c", cfgPath)
	if err != nil || strings.Contains(out, "pending") || !strings.Contains(out, "init") {
		t.Errorf("status after up: %q %v", out, err)
	}
}

// TestDemoExampleKeep: demo --example keeps its store with --keep.
func TestDemoExampleKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kept")
	for _, env := range []string{"PAYMENTS_URL", "INVENTORY_URL"} {
		t.Setenv(env, "")
	}
	out, _, err := runCLI(t, nil, "demo", "--example", "order", "--keep", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(dir, "order.db")); err != nil || st.Size() == 0 {
		t.Fatalf("no kept store: %v", err)
	}
	if !strings.Contains(out, filepath.Join(dir, "order.db")) {
		t.Errorf("output does not say where the store is:\n%s", out)
	}
}

// freeBase finds n consecutive free loopback ports and returns the first.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestDemoExampleServe: `demo --example order --serve` serves the example
// and its sample APIs on fixed ports until interrupted; an order sent with
// `tandem send` from "another terminal" is delivered.
func TestDemoExampleServe(t *testing.T) {
	for _, env := range []string{"PAYMENTS_URL", "INVENTORY_URL"} {
		t.Setenv(env, "")
	}
	base := freeBase(t, 3)
	gw := fmt.Sprintf("127.0.0.1:%d", base+2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		m := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
		done <- m.Run(ctx, []string{"demo", "--example", "order", "--serve", "--listen", gw, "--base-port", fmt.Sprint(base)})
	}()
	waitFor(t, 10*time.Second, "the example served", func() bool { return strings.Contains(out.String(), "Serving until Ctrl-C") })
	if !strings.Contains(out.String(), fmt.Sprintf("payments on http://127.0.0.1:%d", base)) {
		t.Errorf("payments not on the fixed port:\n%s", out.String())
	}
	env := map[string]string{"TANDEM_SERVER": "http://" + gw}
	sent, _, err := runCLI(t, env, "send", "--path", "/orders", "--data", exampleRequests["order"][0].body)
	if err != nil || !strings.HasPrefix(sent, "202 /v1/messages/") {
		t.Fatalf("send: %q %v", sent, err)
	}
	id := strings.TrimPrefix(strings.Fields(sent)[1], "/v1/messages/")
	waitFor(t, 10*time.Second, "the order delivered", func() bool {
		m, err := client.New("http://"+gw, "").Message(context.Background(), id)
		return err == nil && m.Status == "succeeded"
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--serve did not stop")
	}
}

// TestSampleTargets: sample-targets serves every sample API on its fixed
// port and prints the environment for the example configs.
func TestSampleTargets(t *testing.T) {
	t.Parallel()
	base := freeBase(t, 10) // every sample API, events included
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		m := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
		done <- m.Run(ctx, []string{"sample-targets", "--base-port", fmt.Sprint(base)})
	}()
	waitFor(t, 10*time.Second, "the sample APIs served", func() bool { return strings.Contains(out.String(), "Serving until Ctrl-C") })
	if want := fmt.Sprintf("PAYMENTS_URL=http://127.0.0.1:%d INVENTORY_URL=http://127.0.0.1:%d", base, base+1); !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/charges", base), "application/json", strings.NewReader(`{"amount": 5}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("payments: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(fmt.Sprintf("http://127.0.0.1:%d/articles", base+5), "application/json", strings.NewReader(`{"title": "x"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("articles: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestVersionFromBuildInfo: the version comes from the module version and
// the VCS stamps Go embeds; -ldflags -X main.version overrides it.
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tandem-run/tandem", Version: "v0.3.1"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "3f2c1ab4d5e6f7a8b9c0"}, {Key: "vcs.time", Value: "2026-12-01T20:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := buildInfoFrom(bi, "").String(), "tandem v0.3.1 (3f2c1ab4d5e6, 2026-12-01T20:00:00Z, modified, go1.26.8)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := buildInfoFrom(bi, "v1.0.0").Version; got != "v1.0.0" {
		t.Errorf("override: %q", got)
	}
	if got := buildInfoFrom(nil, "").String(); !strings.HasPrefix(got, "tandem (devel) (go") {
		t.Errorf("no build info: %q", got)
	}
	out, _, err := runCLI(t, nil, "version", "--json")
	var v buildInfo
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.GoVersion == "" || v.Version == "" {
		t.Errorf("version --json: %q %v", out, err)
	}
	if out, _, err := runCLI(t, nil, "version"); err != nil || strings.Contains(out, "tandem dev\n") {
		t.Errorf("version: %q", out)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIPurge: `dlq purge` takes dead letters out by id and by filter, in
// batches, and they can no longer be replayed.
func TestCLIPurge(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	sendDead(t, base, 5)
	dead := deadIDs(t, base)
	env := map[string]string{"TANDEM_SERVER": base}
	out, _, err := runCLI(t, env, "dlq", "purge", "--id", dead[0], "--json")
	var got struct {
		Purged int      `json:"purged"`
		IDs    []string `json:"ids"`
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Purged != 1 || got.IDs[0] != dead[0] {
		t.Fatalf("purge --id: %q %v", out, err)
	}
	if out, _, err := runCLI(t, env, "dlq", "replay", "--id", dead[0]); err != nil || !strings.HasPrefix(out, "replayed 0\n") || !strings.Contains(out, "skipped "+dead[0]+": not dead") {
		t.Errorf("replay of a purged letter: %q %v", out, err)
	}
	// Four left; purge them all two per call.
	var stdout, stderr strings.Builder
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }, batch: 2}
	if err := m.Run(context.Background(), []string{"dlq", "purge", "--target", "nope"}); err != nil || strings.TrimSpace(stdout.String()) != "purged 4" {
		t.Fatalf("purge --target: %q %v", stdout.String(), err)
	}
	if left := deadIDs(t, base); len(left) != 0 {
		t.Errorf("dead letters left: %v", left)
	}
	if stderr.Len() != 0 {
		t.Errorf("a progress bar outside a terminal: %q", stderr.String())
	}
}

// TestProgressBar draws the bar a long purge or replay shows on a terminal.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	p := newProgress(&b, "replayed", 4000, true)
	p.add(1000)
	p.add(1000)
	p.end()
	if !strings.Contains(b.String(), "\rreplayed 2000/4000 [===============               ]  50%") || !strings.HasSuffix(b.String(), "\n") {
		t.Errorf("bar: %q", b.String())
	}
	var quiet strings.Builder
	q := newProgress(&quiet, "purged", 10, false)
	q.add(10)
	q.end()
	if quiet.Len() != 0 {
		t.Errorf("off bar drew %q", quiet.String())
	}
}

// TestCLIMessageShowReply: `messages show` prints the target's reply (a
// 404's {"error":"unknown sku"}), and --json carries response, timeline,
// compensates and compensation.
func TestCLIMessageShowReply(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	ids := sendDead(t, base, 1)
	env := map[string]string{"TANDEM_SERVER": base}
	out, _, err := runCLI(t, env, "messages", "show", ids[0])
	if err != nil || !strings.Contains(out, `reply: HTTP 404 {"error":"unknown sku"}`) || !strings.Contains(out, `reply: HTTP 201 {"id":"ok_1"}`) {
		t.Fatalf("show: %q %v", out, err)
	}
	out, _, err = runCLI(t, env, "messages", "show", ids[0], "--json")
	var m struct {
		Deliveries []map[string]json.RawMessage `json:"deliveries"`
		Timeline   []map[string]any             `json:"timeline"`
	}
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || len(m.Deliveries) != 2 || len(m.Timeline) == 0 {
		t.Fatalf("show --json: %q %v", out, err)
	}
	for _, d := range m.Deliveries {
		for _, k := range []string{"response", "compensates", "compensation"} {
			if _, ok := d[k]; !ok {
				t.Errorf("a delivery lacks %q: %s", k, out)
			}
		}
	}
	if !strings.Contains(out, `"unknown sku"`) {
		t.Errorf("--json lacks the reply: %s", out)
	}
}

// TestCLIFieldErrors: the API's field errors reach the terminal.
func TestCLIFieldErrors(t *testing.T) {
	t.Parallel()
	base := opsGateway(t)
	_, _, err := runCLI(t, map[string]string{"TANDEM_SERVER": base}, "messages", "list", "--status", "bogus")
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "query.status") || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("messages list --status bogus: %v", err)
	}
}
