package fanout_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

// crashMessages is how many messages the child commits before it dies.
const crashMessages = 40

// crashConfig is the config of both the child and the restarted outbox:
// short leases, so the attempts the child had in flight are claimed again
// soon after the restart.
func crashConfig(a, b string) fanout.Config {
	cfg := twoStepConfig(a, b)
	for i := range cfg.Targets {
		cfg.Targets[i].Timeout = 2 * time.Second
		cfg.Targets[i].LeaseMargin = time.Second
		cfg.Targets[i].Retry = fanout.Retry{MaxAttempts: 20, Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	return cfg
}

// TestOutboxCrashChild is the child process of TestOutboxCrash: it sends
// crashMessages into the outbox, prints each id once Send returned, and
// waits to be killed.
func TestOutboxCrashChild(t *testing.T) {
	path := os.Getenv("FANOUT_CRASH_CHILD")
	if path == "" {
		t.Skip("run by TestOutboxCrash")
	}
	ob, err := fanout.Open(path, crashConfig(os.Getenv("FANOUT_CRASH_A"), os.Getenv("FANOUT_CRASH_B")))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := range crashMessages {
		id, err := ob.Send(context.Background(), "both", fanout.Request{JSON: map[string]any{"n": i}})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("id", id)
	}
	fmt.Println("sent")
	select {} // until SIGKILL
}

// TestOutboxCrash: a child process commits messages into an outbox and is
// killed with SIGKILL while every attempt it made is still in flight
// (the targets hold their answers). Reopened on the same file, the outbox
// delivers every committed message to both targets, each Idempotency-Key
// succeeding exactly once.
func TestOutboxCrash(t *testing.T) {
	t.Parallel()
	var hold atomic.Bool
	hold.Store(true)
	release := make(chan struct{})
	gate := func(string, int) int { return http.StatusOK }
	holding := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hold.Load() {
				// Before the crash: never answer; the child dies with the
				// request in flight. (The body is read so that the server
				// notices the connection close and ends the context.)
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	a, b := newTargetWith(t, gate, holding), newTargetWith(t, gate, holding)

	path := filepath.Join(t.TempDir(), "outbox.db")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOutboxCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FANOUT_CRASH_CHILD="+path, "FANOUT_CRASH_A="+a.URL, "FANOUT_CRASH_B="+b.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "id "); ok {
			ids = append(ids, id)
		}
		if line == "sent" || strings.HasPrefix(line, "error") {
			break
		}
	}
	if len(ids) != crashMessages {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child committed %d messages, want %d", len(ids), crashMessages)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := len(a.oks()) + len(b.oks()); n != 0 {
		t.Fatalf("%d deliveries succeeded before the crash; the test needs none", n)
	}

	hold.Store(false)
	close(release)
	ob := openOutbox(t, path, crashConfig(a.URL, b.URL))
	for _, id := range ids {
		if res := waitDone(t, ob, id); !res.OK() {
			t.Errorf("message %s after the restart: %s %+v", id, res.Status, res.Steps)
		}
	}
	aok, bok := a.oks(), b.oks()
	for _, id := range ids {
		if aok[id+".a"] != 1 || bok[id+".b"] != 1 {
			t.Errorf("message %s: %s.a succeeded %d times, %s.b %d times; want exactly once each", id, id, aok[id+".a"], id, bok[id+".b"])
		}
	}
	if len(aok) != crashMessages || len(bok) != crashMessages {
		t.Errorf("keys delivered: a %d, b %d; want %d each", len(aok), len(bok), crashMessages)
	}
	t.Logf("after the restart the targets answered %d and %d requests; all %d messages delivered", a.requests(), b.requests(), len(ids))
}
