package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// The crash test runs `tandem serve` under load and kills it with SIGKILL
// three times, restarting it on the same SQLite file each time. Clients
// retry every POST that failed with a connection error, with the same
// Idempotency-Key, until they get a 202. At the end every acknowledged
// message must have reached both targets, and after a success a target may
// see the same key again only when the success fell into a generation that
// was then killed (the call was made, its record was not committed).

// crashEvent is one request a crash target received.
type crashEvent struct {
	gen  int32 // generation of tandem serving when it arrived
	code int
	at   time.Time
}

// crashTarget records every request by Idempotency-Key with the generation
// of tandem that was running.
type crashTarget struct {
	gen     *atomic.Int32
	failPct int // percent of requests answered 503, at random

	mu      sync.Mutex
	events  map[string][]crashEvent
	missing int
}

func newCrashTarget(gen *atomic.Int32, failPct int) *crashTarget {
	return &crashTarget{gen: gen, failPct: failPct, events: map[string][]crashEvent{}}
}

func (c *crashTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	code := http.StatusOK
	if c.failPct > 0 && rand.IntN(100) < c.failPct {
		code = http.StatusServiceUnavailable
	}
	c.mu.Lock()
	if key == "" {
		c.missing++
	}
	c.events[key] = append(c.events[key], crashEvent{gen: c.gen.Load(), code: code, at: time.Now()})
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"key":%q}`, key)
}

// succeeded counts the keys that got at least one 2xx.
func (c *crashTarget) succeeded(keys []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range keys {
		for _, e := range c.events[k] {
			if e.code < 300 {
				n++
				break
			}
		}
	}
	return n
}

func (c *crashTarget) snapshot() (map[string][]crashEvent, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]crashEvent, len(c.events))
	for k, v := range c.events {
		out[k] = append([]crashEvent(nil), v...)
	}
	return out, c.missing
}

// crashClients send paced POSTs with Idempotency-Keys and retry each one
// until it is acknowledged.
type crashClients struct {
	base     string
	client   *http.Client
	mu       sync.Mutex
	acked    map[string]string // client key → message id
	retried  atomic.Int64      // messages whose POST was sent again after a connection error
	replayed atomic.Int64      // of those, how many were answered with Idempotent-Replayed
	bad      atomic.Int64      // answers that were neither 202 nor a connection error
	badText  atomic.Value
}

// run sends one message every interval until stop closes, then finishes
// the message in hand (it keeps retrying until it is acknowledged or hard
// ends).
func (cc *crashClients) run(id int, interval time.Duration, stop, hard <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		key := fmt.Sprintf("c%d-%d", id, n)
		body := fmt.Sprintf(`{"client":%d,"n":%d}`, id, n)
		for try := 0; ; try++ {
			if try == 1 {
				cc.retried.Add(1)
			}
			msgID, repeat, err := cc.post(key, body)
			if err == nil && repeat && try == 0 {
				err = &crashBadAnswer{code: http.StatusAccepted, body: "a new key answered as a repeat"}
			}
			if err == nil {
				cc.mu.Lock()
				cc.acked[key] = msgID
				cc.mu.Unlock()
				if repeat {
					cc.replayed.Add(1)
				}
				break
			}
			var bad *crashBadAnswer
			if errors.As(err, &bad) {
				cc.bad.Add(1)
				cc.badText.Store(err.Error())
				break
			}
			// A connection error: the server is down or was killed mid
			// request. Try again shortly with the same key.
			select {
			case <-hard:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// crashBadAnswer is an answer that is neither a 202 nor a connection error.
type crashBadAnswer struct {
	code int
	body string
}

func (b *crashBadAnswer) Error() string { return fmt.Sprintf("status %d: %s", b.code, b.body) }

func (cc *crashClients) post(key, body string) (id string, repeat bool, err error) {
	req, err := http.NewRequest(http.MethodPost, cc.base+"/orders", strings.NewReader(body))
	if err != nil {
		return "", false, &crashBadAnswer{body: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := cc.client.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, err // cut off mid answer: retry
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return "", false, errors.New("503: " + string(b)) // shutting down or store away: retry
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", false, &crashBadAnswer{code: resp.StatusCode, body: string(b)}
	}
	loc := resp.Header.Get("Location")
	id = strings.TrimPrefix(loc, "/v1/messages/")
	if id == "" || id == loc {
		return "", false, &crashBadAnswer{code: resp.StatusCode, body: "no Location: " + string(b)}
	}
	return id, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

func (cc *crashClients) ackedIDs() map[string]string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	out := make(map[string]string, len(cc.acked))
	for k, v := range cc.acked {
		out[k] = v
	}
	return out
}

// crashBinary builds tandem without the race detector into a temp dir:
// the race build reaches only about 110 messages/s on a 2-core machine, and
// this test needs the production speed. Races in serve are the business of
// the end-to-end and in-process tests, which run under -race.
func crashBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tandem")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// crashFreeAddr returns a loopback address that was free a moment ago.
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// crashLaunch starts `tandem serve` on a fixed address and waits until
// /readyz answers 200.
func crashLaunch(t *testing.T, bin, configPath, listen string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", configPath, "--listen", listen)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, base: "http://" + listen, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		<-scanned
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		// A passing test has stopped or killed every process it started;
		// a failing one may have left this one running.
		if t.Failed() {
			_ = cmd.Process.Kill()
			t.Logf("logs of tandem serve (pid %d):\n%s", cmd.Process.Pid, p.crashLogs())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("tandem serve exited at start: %v\n%s", err, p.crashLogs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tandem serve not ready after 30s\n%s", p.crashLogs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *process) crashLogs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// crashKill sends SIGKILL and waits for the process to be gone.
func (p *process) crashKill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("tandem serve still running 10s after SIGKILL")
	}
}

// TestCrashNothingLost is the crash-safety test (docs/guarantees.md).
func TestCrashNothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: builds the binary and runs it for about 20s")
	}
	// Part of its time is spent waiting for the killed generation's leases
	// (timeout.total + lease_margin = 7s) to run out; other tests can use
	// that time.
	t.Parallel()
	const (
		clients  = 6
		interval = 20 * time.Millisecond // 6 × 50/s = 300 messages/s offered
		crashes  = 3
	)
	var gen atomic.Int32
	steady := newCrashTarget(&gen, 0)
	flaky := newCrashTarget(&gen, 20)
	ts1 := httptest.NewServer(steady)
	defer ts1.Close()
	ts2 := httptest.NewServer(flaky)
	defer ts2.Close()

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "tandem.db")
	cfg := fmt.Sprintf(`
server: { shutdown_grace: 5s }
store: { driver: sqlite, dsn: %q }
log: { format: json, level: warn }
targets:
  steady:
    url: %s/hook
    timeout: { total: 2s, lease_margin: 5s }
    retry: { max_attempts: 30, initial: 10ms, max: 100ms }
  flaky:
    url: %s/hook
    timeout: { total: 2s, lease_margin: 5s }
    retry: { max_attempts: 30, initial: 10ms, max: 100ms }
    breaker: { disabled: true }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: steady }
      - { name: b, target: flaky }
`, dbPath, ts1.URL, ts2.URL)
	cfgPath := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := crashBinary(t)
	listen := crashFreeAddr(t)

	cc := &crashClients{
		base:   "http://" + listen,
		client: &http.Client{Timeout: 10 * time.Second},
		acked:  map[string]string{},
	}
	stop, hard := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	started := time.Now()

	gen.Store(1)
	p := crashLaunch(t, bin, cfgPath, listen)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc.run(c, interval, stop, hard)
		}()
	}
	killedAt := map[int32]time.Time{}
	for i := range crashes {
		time.Sleep(time.Second + rand.N(1500*time.Millisecond)) // load for 1–2.5s
		before := len(cc.ackedIDs())
		p.crashKill(t)
		killedAt[gen.Load()] = time.Now()
		t.Logf("crash %d: SIGKILL at %v, %d messages acknowledged so far", i+1, time.Since(started).Round(time.Millisecond), before)
		gen.Add(1)
		p = crashLaunch(t, bin, cfgPath, listen)
	}
	time.Sleep(time.Second) // one more second of load on the last generation
	close(stop)
	loadTime := time.Since(started)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		close(hard)
		<-finished
		t.Fatal("clients could not get their last messages acknowledged within 30s")
	}
	acked := cc.ackedIDs()
	if n := cc.bad.Load(); n > 0 {
		t.Fatalf("%d answers were neither 202 nor a connection error; last: %v", n, cc.badText.Load())
	}
	keys := make([]string, 0, 2*len(acked))
	for _, id := range acked {
		keys = append(keys, id+".a", id+".b")
	}
	// Deliveries a killed generation held are claimed again when their
	// lease (total timeout + lease_margin) runs out.
	waitFor(t, 50*time.Second, "every acknowledged message to reach both targets and settle", func() bool {
		return steady.succeeded(keys)+flaky.succeeded(keys) == len(keys) &&
			!crashAnyMessage(t, cc.base, "accepted") && !crashAnyMessage(t, cc.base, "running")
	})
	p.stop(t, 15*time.Second)
	elapsed := time.Since(started)

	// The store, read after the last generation stopped.
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: dbPath, Logger: crashQuietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := crashStoredMessages(t, st)

	rep := checkCrashRun(t, acked, stored, killedAt, map[string]*crashTarget{"a": steady, "b": flaky})
	rep.retried, rep.replayed = cc.retried.Load(), cc.replayed.Load()
	t.Logf("crash test: %d SIGKILLs over %v; %d clients offered %.0f msg/s, acknowledged %.0f msg/s over %v of load (restarts included); acknowledged %d, delivered %d (to both targets), lost %d; "+
		"re-delivered after a success %d (all in a crash window: %d); attempts made but not recorded %d; "+
		"POSTs retried after a connection error %d, of which %d found their message already committed; widest crash window %v",
		crashes, elapsed.Round(time.Millisecond), clients, float64(clients)*float64(time.Second)/float64(interval),
		float64(rep.acked)/loadTime.Seconds(), loadTime.Round(time.Millisecond), rep.acked, rep.delivered, rep.lost,
		rep.redelivered, rep.inWindow, rep.unrecorded, rep.retried, rep.replayed, rep.widest.Round(time.Microsecond))
}

// crashAnyMessage reports whether some message has the status.
func crashAnyMessage(t *testing.T, base, status string) bool {
	t.Helper()
	var page struct {
		Messages []json.RawMessage `json:"messages"`
	}
	getJSON(t, base+"/v1/messages?limit=1&status="+status, &page)
	return len(page.Messages) > 0
}

// crashReport holds the figures of one crash run.
type crashReport struct {
	acked, delivered, lost int
	redelivered, inWindow  int
	unrecorded             int
	retried, replayed      int64
	widest                 time.Duration // longest time from an unrecorded success to the kill
}

// crashStoredMessages reads every message, with deliveries and attempts.
func crashStoredMessages(t *testing.T, st store.Store) map[string]*record.MessageDetail {
	t.Helper()
	ctx := context.Background()
	out := map[string]*record.MessageDetail{}
	cursor := ""
	for {
		page, err := st.MessageList(ctx, &store.MessageListParams{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			md, err := st.MessageGet(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			out[m.ID] = md
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// checkCrashRun checks the invariants and counts the figures.
func checkCrashRun(t *testing.T, acked map[string]string, stored map[string]*record.MessageDetail,
	killedAt map[int32]time.Time, targets map[string]*crashTarget) crashReport {
	t.Helper()
	rep := crashReport{acked: len(acked)}
	byKey := map[string]string{}
	for id, md := range stored {
		if prev, dup := byKey[md.Message.IdempotencyKey]; dup {
			t.Errorf("two messages %s and %s for Idempotency-Key %q", prev, id, md.Message.IdempotencyKey)
		}
		byKey[md.Message.IdempotencyKey] = id
	}
	if len(stored) != len(acked) {
		t.Errorf("the store holds %d messages, the clients got %d acknowledged", len(stored), len(acked))
	}
	events := map[string]map[string][]crashEvent{}
	for step, tg := range targets {
		ev, missing := tg.snapshot()
		if missing > 0 {
			t.Errorf("target of step %s got %d requests without an Idempotency-Key", step, missing)
		}
		events[step] = ev
	}
	clientKeys := make([]string, 0, len(acked))
	for k := range acked {
		clientKeys = append(clientKeys, k)
	}
	sort.Strings(clientKeys)
	for _, ck := range clientKeys {
		id := acked[ck]
		md := stored[id]
		if md == nil {
			t.Errorf("acknowledged message %s (key %s) is not in the store", id, ck)
			rep.lost++
			continue
		}
		if byKey[ck] != id {
			t.Errorf("key %s: acknowledged as %s, stored as %s", ck, id, byKey[ck])
		}
		if md.Message.Status != record.MessageSucceeded {
			t.Errorf("message %s: status %s, want succeeded", id, md.Message.Status)
		}
		both := true
		for _, d := range md.Deliveries {
			ev := events[d.Step][id+"."+d.Step]
			if !crashCheckDelivery(t, id, d, md.Attempts[d.ID], ev, killedAt, &rep) {
				both = false
			}
		}
		if both && len(md.Deliveries) == len(targets) {
			rep.delivered++
		} else {
			rep.lost++
		}
	}
	if rep.lost != 0 {
		t.Errorf("lost %d acknowledged messages", rep.lost)
	}
	return rep
}

// crashCheckDelivery checks one delivery against what its target saw: it
// reached the target with a 2xx; every request after the first 2xx is
// explained by a kill of the generation that got that 2xx; the last
// request is the recorded success.
func crashCheckDelivery(t *testing.T, id string, d record.Delivery, atts []record.Attempt, ev []crashEvent,
	killedAt map[int32]time.Time, rep *crashReport) bool {
	t.Helper()
	key := id + "." + d.Step
	if d.Status != record.DeliverySucceeded {
		t.Errorf("delivery %s: status %s (%s), want succeeded", key, d.Status, d.LastError)
	}
	if len(atts) > len(ev) {
		t.Errorf("delivery %s: %d attempts recorded, the target saw only %d requests", key, len(atts), len(ev))
	}
	rep.unrecorded += max(0, len(ev)-len(atts))
	recordedOK := 0
	for _, a := range atts {
		if a.Outcome == record.OutcomeSuccess {
			recordedOK++
		}
	}
	if recordedOK != 1 {
		t.Errorf("delivery %s: %d successful attempts recorded, want 1", key, recordedOK)
	}
	last := -1
	for i, e := range ev {
		if e.code < 300 {
			last = i
		}
	}
	if last < 0 {
		t.Errorf("delivery %s never reached its target with a 2xx (%d requests)", key, len(ev))
		return false
	}
	if last != len(ev)-1 {
		t.Errorf("delivery %s: the target saw %d requests after the recorded success", key, len(ev)-1-last)
	}
	for _, e := range ev[:last] {
		if e.code >= 300 {
			continue
		}
		rep.redelivered++
		kill, ok := killedAt[e.gen]
		if !ok {
			t.Errorf("delivery %s: sent again after a 2xx in generation %d, which was not killed", key, e.gen)
			continue
		}
		rep.inWindow++
		rep.widest = max(rep.widest, kill.Sub(e.at))
	}
	return true
}

// crashQuietLog discards log lines of the store opened for checking.
func crashQuietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
