package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/config"
)

// The caller's trace: tandem's ingest span continues it.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerParent  = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// traceHeaders records the traceparent of every request a target gets.
type traceHeaders struct {
	mu   sync.Mutex
	seen map[string][]string // target → traceparents
}

func (h *traceHeaders) note(target string, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string][]string{}
	}
	h.seen[target] = append(h.seen[target], r.Header.Get("Traceparent"))
}

func (h *traceHeaders) of(target string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen[target]...)
}

// TestSagaTraceAcrossRestart is issue 11's "done means" for tracing: a
// saga message's trace, as a real OTLP/gRPC receiver gets it from two
// runs of the server on one SQLite file, holds the ingest span (continuing
// the caller's traceparent), every attempt of every step, those made
// before the restart and after it, and the compensation, each a client
// span whose parent is the ingest span; and each target got a traceparent
// naming its attempt's span.
func TestSagaTraceAcrossRestart(t *testing.T) {
	t.Parallel()
	sagaTrace(t, fmt.Sprintf("{ driver: sqlite, dsn: %q }", filepath.Join(t.TempDir(), "trace.db")))
}

// TestSagaTraceOtherReplica: the same on PostgreSQL, where the second
// server is another replica on the same schema: the attempts it makes
// join the trace the first one started.
func TestSagaTraceOtherReplica(t *testing.T) {
	t.Parallel()
	dsn, _ := pgSchema(t)
	sagaTrace(t, fmt.Sprintf("{ driver: postgres, dsn: %q }", dsn))
}

// sagaTrace runs the saga of the two tests above on the store written as
// storeYAML (YAML flow).
func sagaTrace(t *testing.T, storeYAML string) {
	recv := &otlpReceiver{}
	endpoint := startOTLPGRPC(t, recv)
	var headers traceHeaders

	// payments fails (503) until the first server is gone, then charges.
	var restarted atomic.Bool
	var paymentCalls atomic.Int32
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.note("payments", r)
		paymentCalls.Add(1)
		if !restarted.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"ch_1"}`)
	}))
	t.Cleanup(payments.Close)
	// shipping refuses for good, so the saga undoes the charge.
	shipping := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.note("shipping", r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"error":"no such address"}`)
	}))
	t.Cleanup(shipping.Close)
	refunds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.note("refunds", r)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(refunds.Close)

	yaml := fmt.Sprintf(`server: { listen: "127.0.0.1:0", shutdown_grace: 5s }
store: %s
log: { level: error }
telemetry:
  tracing: { exporter: otlp, endpoint: %q, protocol: grpc, sample_ratio: 1, service_name: tandem-trace-test }
targets:
  payments: { url: %q, retry: { initial: 100ms, max: 300ms, max_attempts: 50 } }
  shipping: { url: %q, retry: { max_attempts: 1 } }
  refunds:  { url: %q }
routes:
  - name: order
    path: /order
    saga: true
    steps:
      - name: charge
        target: payments
        compensate: { target: refunds, body: { charge: "{{ steps.charge.body.id }}" } }
      - { name: ship, target: shipping, after: [charge] }
`, storeYAML, endpoint, payments.URL, shipping.URL, refunds.URL)
	cfg, err := config.Parse([]byte(yaml), "trace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := start(context.Background(), cfg, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.addr.String()
	req, _ := http.NewRequest(http.MethodPost, base+"/order", strings.NewReader(`{"sku":"A1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", callerParent)
	req.Header.Set("Tracestate", "caller=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || accepted.ID == "" {
		t.Fatalf("ingest: %d %+v", resp.StatusCode, accepted)
	}
	waitFor(t, 20*time.Second, "a failed charge attempt", func() bool { return paymentCalls.Load() >= 2 })
	// Stop: its spans are flushed at shutdown, before the restart.
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	recv.setPhase(1)
	restarted.Store(true)

	srv2, err := start(context.Background(), cfg, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv2.stop()
		}
	})
	base = "http://" + srv2.addr.String()
	c := client.New(base, "")
	waitFor(t, 30*time.Second, "the saga compensated", func() bool {
		m, err := c.Message(context.Background(), accepted.ID)
		return err == nil && m.Status == "compensated"
	})
	m, err := c.Message(context.Background(), accepted.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.TraceID != callerTraceID {
		t.Errorf("message detail trace_id = %q, want the caller's %q", m.TraceID, callerTraceID)
	}
	if err := srv2.stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true

	spans := recv.got()
	var ingest *otlpSpan
	byName := map[string][]otlpSpan{}
	for i, s := range spans {
		if s.TraceID != callerTraceID {
			t.Errorf("span %q in trace %s, want every span in the caller's trace %s", s.Name, s.TraceID, callerTraceID)
		}
		if s.Service != "tandem-trace-test" {
			t.Errorf("span %q of service %q", s.Name, s.Service)
		}
		if s.Attrs["tandem.delivery.status"] == "postponed" {
			continue // cut short by the first server's shutdown, given back uncounted
		}
		byName[s.Name] = append(byName[s.Name], s)
		if s.Name == "ingest order" {
			ingest = &spans[i]
		}
	}
	if ingest == nil || len(byName["ingest order"]) != 1 {
		t.Fatalf("want one ingest span, got %d (spans: %v)", len(byName["ingest order"]), names(spans))
	}
	if ingest.Kind != tracepb.Span_SPAN_KIND_SERVER || ingest.ParentID != callerSpanID || ingest.Batch != 0 {
		t.Errorf("ingest span: kind %v parent %s batch %d, want a server span under the caller's %s, sent before the restart",
			ingest.Kind, ingest.ParentID, ingest.Batch, callerSpanID)
	}
	if ingest.Attrs["tandem.message_id"] != accepted.ID || ingest.Attrs["http.response.status_code"] != int64(202) {
		t.Errorf("ingest span attributes: %v", ingest.Attrs)
	}

	attempts := map[string]otlpSpan{} // span id → span, every attempt of every step
	charges := byName["attempt charge"]
	slices.SortFunc(charges, func(a, b otlpSpan) int {
		return cmp.Compare(a.Attrs["tandem.attempt"].(int64), b.Attrs["tandem.attempt"].(int64))
	})
	var before, after, failed int
	for i, s := range charges {
		attempts[s.SpanID] = s
		if n := s.Attrs["tandem.attempt"]; n != int64(i+1) {
			t.Errorf("charge attempt %d has tandem.attempt %v", i+1, n)
		}
		switch s.Batch {
		case 0:
			before++
		case 1:
			after++
		}
		if s.Attrs["http.response.status_code"] == int64(503) {
			failed++
			if s.Attrs["tandem.outcome"] != "transient" || s.Attrs["tandem.delivery.status"] != "scheduled" || !s.Error {
				t.Errorf("failed charge attempt: %v error %v", s.Attrs, s.Error)
			}
		}
	}
	if before == 0 || after == 0 || failed == 0 {
		t.Fatalf("charge attempts: %d before the restart, %d after, %d failed; want some of each (spans: %v)", before, after, failed, names(spans))
	}
	last := charges[len(charges)-1]
	if last.Attrs["tandem.outcome"] != "success" || last.Attrs["http.response.status_code"] != int64(201) || last.Batch != 1 {
		t.Errorf("last charge attempt: %v batch %d, want a success after the restart", last.Attrs, last.Batch)
	}
	ships := byName["attempt ship"]
	if len(ships) != 1 || ships[0].Attrs["tandem.outcome"] != "permanent" || ships[0].Attrs["tandem.delivery.status"] != "dead" {
		t.Fatalf("ship attempts: %+v", ships)
	}
	comps := byName["compensate charge"]
	if len(comps) != 1 || comps[0].Attrs["tandem.compensates"] != "charge" || comps[0].Attrs["tandem.step"] != "charge.compensate" ||
		comps[0].Attrs["tandem.outcome"] != "success" {
		t.Fatalf("compensation spans: %+v", comps)
	}
	for _, s := range append(ships, comps...) {
		attempts[s.SpanID] = s
	}
	for _, s := range attempts {
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.ParentID != ingest.SpanID {
			t.Errorf("%s (attempt %v): kind %v parent %s, want a client span under the ingest span %s",
				s.Name, s.Attrs["tandem.attempt"], s.Kind, s.ParentID, ingest.SpanID)
		}
		if s.Attrs["tandem.message_id"] != accepted.ID || s.Attrs["tandem.target"] == nil || s.Attrs["tandem.route"] != "order" {
			t.Errorf("%s attributes: %v", s.Name, s.Attrs)
		}
	}

	// Each target was told its attempt's span as the parent.
	for _, target := range []string{"payments", "shipping", "refunds"} {
		tps := headers.of(target)
		if len(tps) == 0 {
			t.Errorf("%s got no requests", target)
		}
		for _, tp := range tps {
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[1] != callerTraceID {
				t.Errorf("%s got traceparent %q, want one in trace %s", target, tp, callerTraceID)
				continue
			}
			if _, ok := attempts[parts[2]]; !ok {
				t.Errorf("%s got traceparent %q whose parent is no attempt span", target, tp)
			}
		}
	}
}

func names(spans []otlpSpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = fmt.Sprintf("%s#%v@%d", s.Name, s.Attrs["tandem.attempt"], s.Batch)
	}
	return out
}
