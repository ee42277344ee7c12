package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// Faults from a real proxy: toxiproxy sits between the engine and a real
// HTTP target and adds latency, resets, a black hole or a slow trickle.
// Toxics act per connection, so the target answers "Connection: close" and
// every attempt opens a connection of its own, which the toxic's toxicity
// picks or spares. Every accepted message must end succeeded or dead, a
// dead letter's reason must name the fault, and nothing may stay running.

// faultTarget is a real HTTP target that closes the connection after every
// answer and counts requests per Idempotency-Key.
type faultTarget struct {
	srv  *httptest.Server
	body string

	mu   sync.Mutex
	seen map[string]int
}

func newFaultTarget(t *testing.T, bodySize int) *faultTarget {
	t.Helper()
	ft := &faultTarget{seen: map[string]int{}, body: `{"ok":true,"pad":"` + strings.Repeat("x", bodySize) + `"}`}
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		ft.mu.Lock()
		ft.seen[r.Header.Get("Idempotency-Key")]++
		ft.mu.Unlock()
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, ft.body)
	}))
	t.Cleanup(ft.srv.Close)
	return ft
}

// requests returns how many requests carried key.
func (ft *faultTarget) requests(key string) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.seen[key]
}

// toxic is one toxiproxy toxic as its JSON API describes it.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"` // upstream (request) or downstream (answer)
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// faultProxy starts an in-process toxiproxy in front of upstream with the
// toxics, and returns its address. Toxics are added before any traffic.
func faultProxy(t *testing.T, upstream string, toxics ...toxic) *toxiproxy.Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "target", "127.0.0.1:0", strings.TrimPrefix(upstream, "http://"))
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	for _, tx := range toxics {
		b, err := json.Marshal(tx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
			t.Fatalf("add toxic %s: %v", tx.Name, err)
		}
	}
	return p
}

// faultRig is an engine on a SQLite store in a temp dir.
type faultRig struct {
	eng   *engine.Engine
	store store.Store
}

func newFaultRig(t *testing.T, yaml string) *faultRig {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "faults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "faults.db"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quiet, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return &faultRig{eng: eng, store: st}
}

// send ingests n messages on route and returns their ids.
func (r *faultRig) send(t *testing.T, route string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		a, err := r.eng.Ingest(context.Background(), route, &engine.Inbound{
			Body:   []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("p", 100))),
			Header: http.Header{"Content-Type": {"application/json"}},
		})
		if err != nil {
			t.Fatalf("ingest: %v", err)
		}
		if a.HTTPStatus != http.StatusAccepted {
			t.Fatalf("ingest: status %d, want 202", a.HTTPStatus)
		}
		ids[i] = a.Body.ID
	}
	return ids
}

// settle waits until every message is terminal and returns them.
func (r *faultRig) settle(t *testing.T, ids []string, within time.Duration) []*record.MessageDetail {
	t.Helper()
	deadline := time.Now().Add(within)
	out := make([]*record.MessageDetail, len(ids))
	for i, id := range ids {
		for {
			md, err := r.store.MessageGet(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if md.Message.Status.Terminal() {
				out[i] = md
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %s still %s after %v", id, md.Message.Status, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out
}

// faultTally counts what the deliveries of a run ended as.
type faultTally struct {
	succeeded, dead    int
	attempts, failures int
	firstTry           int               // deliveries that succeeded at the first attempt
	reasons            map[string]int    // dead letters' last error, by text
	errors             map[string]int    // failed attempts' errors, by text
	maxAttempts        map[string]int    // most attempts of one delivery, by step
	minDuration        time.Duration     // shortest successful attempt
	keys               map[string]string // "{message_id}.{step}" → status
}

// tally checks the invariants every fault run must keep and counts the
// outcome: each delivery succeeded or dead; a dead letter's reason and
// every failed attempt's error match fault; nothing is left running.
func tally(t *testing.T, r *faultRig, mds []*record.MessageDetail, fault *regexp.Regexp) faultTally {
	t.Helper()
	ft := faultTally{reasons: map[string]int{}, errors: map[string]int{}, maxAttempts: map[string]int{}, keys: map[string]string{}, minDuration: time.Hour}
	for _, md := range mds {
		for _, d := range md.Deliveries {
			atts := md.Attempts[d.ID]
			ft.attempts += len(atts)
			ft.maxAttempts[d.Step] = max(ft.maxAttempts[d.Step], len(atts))
			ft.keys[d.MessageID+"."+d.Step] = string(d.Status)
			for _, a := range atts {
				if a.Outcome == record.OutcomeSuccess {
					ft.minDuration = min(ft.minDuration, a.Duration)
					continue
				}
				ft.failures++
				ft.errors[a.Error]++
				if !fault.MatchString(a.Error) {
					t.Errorf("delivery %s.%s attempt %d failed with %q, which does not name the fault (%s)", d.MessageID, d.Step, a.N, a.Error, fault)
				}
			}
			switch d.Status {
			case record.DeliverySucceeded:
				ft.succeeded++
				if len(atts) == 1 {
					ft.firstTry++
				}
			case record.DeliveryDead:
				ft.dead++
				ft.reasons[d.LastError]++
				if !fault.MatchString(d.LastError) {
					t.Errorf("dead letter %s.%s: reason %q does not name the fault (%s)", d.MessageID, d.Step, d.LastError, fault)
				}
			default:
				t.Errorf("delivery %s.%s ended %s, want succeeded or dead", d.MessageID, d.Step, d.Status)
			}
		}
	}
	stats, err := r.store.DeliveryStats(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Running+s.Due+s.Scheduled+s.Waiting != 0 {
			t.Errorf("target %s: %d running, %d due, %d scheduled, %d waiting after every message settled",
				s.Target, s.Running, s.Due, s.Scheduled, s.Waiting)
		}
	}
	return ft
}

// faultYAML is a route with one step on a target behind the proxy. Short
// timeouts and retry schedules keep the runs fast; the breaker is off so
// a target that always fails is tried max_attempts times, not postponed.
const faultYAML = `
targets:
  t:
    url: http://%s/hook
    timeout: { connect: 300ms, total: 300ms }
    retry: { max_attempts: %d, initial: 5ms, max: 20ms }
    breaker: { disabled: true }
routes:
  - { name: r, path: /r, steps: [{ name: s, target: t }] }
`

// faultTimeout names a total-timeout failure.
var faultTimeout = regexp.MustCompile(`timeout after 300ms`)

// faultReset names a broken connection: a reset, or a close before the
// answer was complete.
var faultReset = regexp.MustCompile(`connection reset by peer|connection closed by peer|broken pipe`)

func TestFaultsFromProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		n        int // messages; default 20
		toxics   []toxic
		attempts int // max_attempts
		bodySize int // padding of the target's answer
		fault    *regexp.Regexp
		// want: every delivery succeeded ("succeeded"), every one dead
		// ("dead"), or either ("either").
		want string
		// check looks at the tally further.
		check func(t *testing.T, n int, ft faultTally, tg *faultTarget)
	}{
		{
			name:     "latency within the timeout",
			toxics:   []toxic{{Name: "lat", Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": 100}}},
			attempts: 3, fault: faultTimeout, want: "succeeded",
			check: func(t *testing.T, n int, ft faultTally, _ *faultTarget) {
				if ft.firstTry != n || ft.minDuration < 100*time.Millisecond {
					t.Errorf("%d of %d succeeded at once, shortest attempt %v; want all, at least 100ms", ft.firstTry, n, ft.minDuration)
				}
			},
		},
		{
			name:     "latency past the timeout",
			toxics:   []toxic{{Name: "lat", Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": 600}}},
			attempts: 2, fault: faultTimeout, want: "dead",
			check: func(t *testing.T, n int, ft faultTally, _ *faultTarget) {
				if ft.attempts != 2*n {
					t.Errorf("%d attempts, want %d (max_attempts each)", ft.attempts, 2*n)
				}
			},
		},
		{
			name:     "latency with jitter around the timeout",
			toxics:   []toxic{{Name: "lat", Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": 250, "jitter": 150}}},
			attempts: 8, fault: faultTimeout, want: "either",
		},
		{
			// 40 messages: the chance that no attempt is reset is 0.7^40.
			name:     "reset of 30% of connections before the request",
			n:        40,
			toxics:   []toxic{{Name: "rst", Type: "reset_peer", Stream: "upstream", Toxicity: 0.3, Attributes: map[string]any{"timeout": 0}}},
			attempts: 12, fault: faultReset, want: "either",
			check: func(t *testing.T, n int, ft faultTally, _ *faultTarget) {
				if ft.failures == 0 {
					t.Errorf("no attempt failed: the reset toxic did not act")
				}
			},
		},
		{
			name:     "reset of every connection before the request",
			toxics:   []toxic{{Name: "rst", Type: "reset_peer", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}}},
			attempts: 3, fault: faultReset, want: "dead",
		},
		{
			// The target handled the request, then the answer is reset: the
			// at-least-once window of the network. The target sees every
			// attempt; the Idempotency-Key is how it tells them apart.
			name:     "reset of every answer after the target handled it",
			toxics:   []toxic{{Name: "rst", Type: "reset_peer", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}}},
			attempts: 3, fault: faultReset, want: "dead",
			check: func(t *testing.T, n int, ft faultTally, tg *faultTarget) {
				for key := range ft.keys {
					if got := tg.requests(key); got != 3 {
						t.Errorf("target saw %s %d times, want 3 (one per attempt)", key, got)
					}
				}
			},
		},
		{
			name:     "black hole",
			toxics:   []toxic{{Name: "hole", Type: "timeout", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}}},
			attempts: 2, fault: faultTimeout, want: "dead",
			check: func(t *testing.T, n int, _ faultTally, tg *faultTarget) {
				tg.mu.Lock()
				defer tg.mu.Unlock()
				if len(tg.seen) != 0 {
					t.Errorf("the target got %d keys through a black hole", len(tg.seen))
				}
			},
		},
		{
			name:     "black hole for 20% of connections",
			toxics:   []toxic{{Name: "hole", Type: "timeout", Stream: "upstream", Toxicity: 0.2, Attributes: map[string]any{"timeout": 0}}},
			attempts: 10, fault: faultTimeout, want: "either",
		},
		{
			// 4KiB at 1KiB/s cannot arrive within 300ms.
			name:     "slow trickle of the answer",
			toxics:   []toxic{{Name: "bw", Type: "bandwidth", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"rate": 1}}},
			attempts: 2, bodySize: 4096, fault: regexp.MustCompile(`timeout after 300ms`), want: "dead",
		},
		{
			// The request (about 200 bytes) sliced to 1 byte per 5ms.
			name:     "slow trickle of the request",
			toxics:   []toxic{{Name: "sl", Type: "slicer", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"average_size": 1, "size_variation": 0, "delay": 5000}}},
			attempts: 2, fault: faultTimeout, want: "dead",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := tc.n
			if n == 0 {
				n = 20
			}
			tg := newFaultTarget(t, tc.bodySize)
			p := faultProxy(t, tg.srv.URL, tc.toxics...)
			r := newFaultRig(t, fmt.Sprintf(faultYAML, p.Listen, tc.attempts))
			ids := r.send(t, "r", n)
			ft := tally(t, r, r.settle(t, ids, 30*time.Second), tc.fault)
			switch {
			case tc.want == "succeeded" && ft.succeeded != n:
				t.Errorf("%d of %d succeeded, want all; dead letters: %v", ft.succeeded, n, ft.reasons)
			case tc.want == "dead" && ft.dead != n:
				t.Errorf("%d of %d dead, want all", ft.dead, n)
			}
			if tc.check != nil {
				tc.check(t, n, ft, tg)
			}
			reached := 0
			for key := range ft.keys {
				reached += tg.requests(key)
			}
			t.Logf("%s: %d messages: %d succeeded (%d at the first attempt), %d dead; %d attempts, %d failed, %d reached the target; dead reasons %v",
				tc.name, n, ft.succeeded, ft.firstTry, ft.dead, ft.attempts, ft.failures, reached, ft.reasons)
		})
	}
}

// TestFaultsMixedWithOutage sends 200 messages on a route with two steps:
// one target behind latency with jitter, 10% resets and 5% black holes,
// the other behind a proxy that is down (connection refused) until every
// one of its deliveries has failed at least once. All must succeed in the
// end, every failed attempt naming its fault, and nothing stays running.
func TestFaultsMixedWithOutage(t *testing.T) {
	t.Parallel()
	const n = 200
	shaky := newFaultTarget(t, 0)
	down := newFaultTarget(t, 0)
	p1 := faultProxy(t, shaky.srv.URL,
		toxic{Name: "lat", Type: "latency", Stream: "downstream", Toxicity: 1, Attributes: map[string]any{"latency": 20, "jitter": 15}},
		toxic{Name: "rst", Type: "reset_peer", Stream: "upstream", Toxicity: 0.1, Attributes: map[string]any{"timeout": 0}},
		toxic{Name: "hole", Type: "timeout", Stream: "upstream", Toxicity: 0.05, Attributes: map[string]any{"timeout": 0}},
	)
	// The outage: every connection through p2 is reset at once. (Stopping
	// the proxy would free its port, and a parallel test's server could
	// take it and answer in the target's place.)
	p2 := faultProxy(t, down.srv.URL,
		toxic{Name: "outage", Type: "reset_peer", Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"timeout": 0}},
	)
	r := newFaultRig(t, fmt.Sprintf(`
targets:
  shaky:
    url: http://%s/hook
    timeout: { connect: 300ms, total: 300ms }
    retry: { max_attempts: 50, initial: 5ms, max: 50ms }
    breaker: { disabled: true }
  down:
    url: http://%s/hook
    timeout: { connect: 300ms, total: 300ms }
    retry: { max_attempts: 50, initial: 5ms, max: 50ms }
    breaker: { disabled: true }
routes:
  - name: r
    path: /r
    steps:
      - { name: a, target: shaky }
      - { name: b, target: down }
`, p1.Listen, p2.Listen))
	ids := r.send(t, "r", n)
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			md, err := r.store.MessageGet(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if d := faultDelivery(md, "b"); d != nil && d.Attempts > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %s: step b never tried while its target was down", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := p2.Toxics.RemoveToxic(context.Background(), "outage"); err != nil {
		t.Fatalf("end the outage: %v", err)
	}
	mds := r.settle(t, ids, 60*time.Second)
	ft := tally(t, r, mds, regexp.MustCompile(faultTimeout.String()+"|"+faultReset.String()+"|connect: connection refused"))
	if ft.succeeded != 2*n {
		t.Errorf("%d of %d deliveries succeeded, want all; dead letters: %v", ft.succeeded, 2*n, ft.reasons)
	}
	for key, status := range ft.keys {
		tg := shaky
		if strings.HasSuffix(key, ".b") {
			tg = down
		}
		if tg.requests(key) == 0 && status == string(record.DeliverySucceeded) {
			t.Errorf("delivery %s succeeded but its target never saw it", key)
		}
	}
	t.Logf("%d messages, %d deliveries: %d succeeded, %d dead; %d attempts, %d failed (most attempts: %v); failures by error: %v",
		n, 2*n, ft.succeeded, ft.dead, ft.attempts, ft.failures, ft.maxAttempts, ft.errors)
}

// faultDelivery returns the message's delivery of step, or nil.
func faultDelivery(md *record.MessageDetail, step string) *record.Delivery {
	for i := range md.Deliveries {
		if md.Deliveries[i].Step == step {
			return &md.Deliveries[i]
		}
	}
	return nil
}
