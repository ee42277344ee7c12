package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the tandem command once per test binary.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func tandemBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tandem-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "tandem")
		out, err := exec.Command("go", "build", "-race", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// recorder is a target that records every request's Idempotency-Key.
type recorder struct {
	mu      sync.Mutex
	seen    map[string]int // key → requests
	ok      map[string]int // key → 2xx answers
	missing int            // requests without an Idempotency-Key
	answer  func(key string, n int) int
}

func newRecorder(answer func(key string, n int) int) *recorder {
	return &recorder{seen: map[string]int{}, ok: map[string]int{}, answer: answer}
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	key := req.Header.Get("Idempotency-Key")
	r.mu.Lock()
	if key == "" {
		r.missing++
	}
	r.seen[key]++
	code := r.answer(key, r.seen[key])
	if code < 300 {
		r.ok[key]++
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"key":%q}`, key)
}

func (r *recorder) snapshot() (seen, ok map[string]int, missing int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen, ok = map[string]int{}, map[string]int{}
	for k, v := range r.seen {
		seen[k] = v
	}
	for k, v := range r.ok {
		ok[k] = v
	}
	return seen, ok, r.missing
}

// process is a running `tandem serve`.
type process struct {
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan error
}

// startServe starts `tandem serve` on config and waits for its address.
func startServe(t *testing.T, configPath string) *process {
	t.Helper()
	cmd := exec.Command(tandemBinary(t), "serve", "--config", configPath, "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "tandem serving" {
				addr <- rec.Addr
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("tandem logs:\n%s", p.logs.String())
			p.mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		p.base = "http://" + a
	case err := <-p.done:
		t.Fatalf("tandem serve exited: %v\n%s", err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("tandem serve did not start\n%s", p.logs.String())
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T, within time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("tandem serve exited with %v after SIGTERM", err)
		}
	case <-time.After(within):
		t.Fatalf("tandem serve did not exit within %v of SIGTERM", within)
	}
}

func postJSON(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeEndToEnd runs `tandem serve` as a real process against two real
// targets: one answers 503 twice per message before succeeding, the other
// answers 404 until it is fixed. It checks exactly-once-after-success,
// Idempotency-Keys, dead letters without retry, and replay.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	flaky := newRecorder(func(key string, n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var fixed sync.Mutex
	isFixed := false
	missingAPI := newRecorder(func(key string, n int) int {
		fixed.Lock()
		defer fixed.Unlock()
		if isFixed {
			return http.StatusCreated
		}
		return http.StatusNotFound
	})
	ts1 := httptest.NewServer(flaky)
	defer ts1.Close()
	ts2 := httptest.NewServer(missingAPI)
	defer ts2.Close()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`
server: { shutdown_grace: 10s }
store: { driver: sqlite, dsn: %q }
log: { format: json, level: info }
targets:
  flaky:
    url: %s/hook
    retry: { max_attempts: 5, initial: 5ms, max: 20ms }
    # Two failures in three calls would open a breaker; this test is
    # about retries, so the breaker is off.
    breaker: { disabled: true }
  missing:
    url: %s/hook
    retry: { max_attempts: 5, initial: 5ms, max: 20ms }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: flaky }
      - { name: b, target: missing }
`, filepath.Join(dir, "tandem.db"), ts1.URL, ts2.URL)
	cfgPath := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfgPath)

	const n = 200
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, hdr, body := postJSON(t, p.base+"/orders", fmt.Sprintf(`{"order":%d}`, i))
			if code != http.StatusAccepted {
				t.Errorf("message %d: got %d %s, want 202", i, code, body)
				return
			}
			var a struct{ ID, Status string }
			if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
				t.Errorf("message %d: bad answer %s", i, body)
				return
			}
			if hdr.Get("Location") != "/v1/messages/"+a.ID {
				t.Errorf("message %d: Location %q", i, hdr.Get("Location"))
			}
			ids[i] = a.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	waitFor(t, 60*time.Second, "every message delivered to flaky and dead-lettered on missing", func() bool {
		_, ok, _ := flaky.snapshot()
		seen, _, _ := missingAPI.snapshot()
		return len(ok) == n && len(seen) == n && deadCount(t, p.base) == n
	})
	seen1, ok1, miss1 := flaky.snapshot()
	seen2, _, miss2 := missingAPI.snapshot()
	if miss1+miss2 != 0 {
		t.Errorf("%d requests carried no Idempotency-Key", miss1+miss2)
	}
	for _, id := range ids {
		k1, k2 := id+".a", id+".b"
		if seen1[k1] != 3 || ok1[k1] != 1 {
			t.Errorf("flaky target saw %s %d times with %d successes, want 3 and 1", k1, seen1[k1], ok1[k1])
		}
		if seen2[k2] != 1 {
			t.Errorf("missing target saw %s %d times, want 1 (a 404 is not retried)", k2, seen2[k2])
		}
	}
	var m struct {
		Status     string
		Deliveries []struct {
			Step, Status string
			LastError    string `json:"last_error"`
			Attempts     []json.RawMessage
		}
	}
	getJSON(t, p.base+"/v1/messages/"+ids[0], &m)
	if m.Status != "partially_succeeded" {
		t.Errorf("message status %q, want partially_succeeded", m.Status)
	}

	// The CLI sees the same dead letters and messages.
	if out, _, err := runCLI(t, nil, "dlq", "list", "--server", p.base, "--limit", "1000"); err != nil || strings.Count(out, "permanent failure") != n {
		t.Errorf("dlq list: %v; %d rows", err, strings.Count(out, "permanent failure"))
	}
	if out, _, err := runCLI(t, nil, "messages", "show", ids[0], "--server", p.base); err != nil || !strings.Contains(out, "dead letter") {
		t.Errorf("messages show: %v\n%s", err, out)
	}

	// Fix the target and replay every dead letter.
	fixed.Lock()
	isFixed = true
	fixed.Unlock()
	code, _, body := postJSON(t, p.base+"/v1/dead-letters/replay", `{"all":true}`)
	if code != http.StatusOK {
		t.Fatalf("replay: %d %s", code, body)
	}
	var rep struct{ Replayed int }
	_ = json.Unmarshal(body, &rep)
	if rep.Replayed != n {
		t.Fatalf("replayed %d, want %d (%s)", rep.Replayed, n, body)
	}
	waitFor(t, 60*time.Second, "replayed deliveries to succeed", func() bool {
		_, ok, _ := missingAPI.snapshot()
		return len(ok) == n
	})
	seen2, ok2, _ := missingAPI.snapshot()
	for _, id := range ids {
		k := id + ".b"
		if seen2[k] != 2 || ok2[k] != 1 {
			t.Errorf("after replay the target saw %s %d times with %d successes, want 2 and 1", k, seen2[k], ok2[k])
		}
	}
	waitFor(t, 10*time.Second, "messages to succeed", func() bool {
		getJSON(t, p.base+"/v1/messages/"+ids[n-1], &m)
		return m.Status == "succeeded"
	})
	if deadCount(t, p.base) != 0 {
		t.Errorf("dead letters left after replay")
	}
	// Nothing is sent again after success.
	seenA, _, _ := flaky.snapshot()
	for _, id := range ids {
		if seenA[id+".a"] != 3 {
			t.Errorf("flaky target saw %s.a %d times after the replay, want 3", id, seenA[id+".a"])
		}
	}
	p.stop(t, 15*time.Second)
}

func deadCount(t *testing.T, base string) int {
	t.Helper()
	total := 0
	cursor := ""
	for {
		var page struct {
			DeadLetters []json.RawMessage `json:"dead_letters"`
			NextCursor  string            `json:"next_cursor"`
		}
		u := base + "/v1/dead-letters?limit=1000"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		getJSON(t, u, &page)
		total += len(page.DeadLetters)
		if page.NextCursor == "" {
			return total
		}
		cursor = page.NextCursor
	}
}
