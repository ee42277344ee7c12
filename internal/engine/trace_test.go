package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/telemetry"
)

const (
	callerTrace  = "0af7651916cd43dd8448eb211c80319c"
	callerSpan   = "b7ad6b7169203331"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// memTracing is tracing into the SDK's in-memory exporter, each span
// exported as it ends.
func memTracing(t *testing.T) (*telemetry.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Exporter: exp, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

// parents records the traceparent of each call a target gets.
type parents struct {
	mu   sync.Mutex
	seen []string
}

func (p *parents) answer(code int) func(int64, *http.Request) (int, http.Header, string) {
	return func(_ int64, r *http.Request) (int, http.Header, string) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Header.Get("Traceparent"))
		p.mu.Unlock()
		return code, nil, `{"id":"x"}`
	}
}

func (p *parents) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func spansNamed(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key string) any {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.AsInterface()
		}
	}
	return nil
}

// waitSpans polls until the exporter holds a span named name.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		spans := exp.GetSpans()
		if len(spansNamed(spans, name)) > 0 {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q; got %d spans", name, len(spans))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTraceShapeDurable: a durable route's ingest is a server span that
// continues the caller's traceparent; each attempt, retries included, is
// a client span under it with the step, target, attempt number, outcome
// and HTTP status; each target got a traceparent naming its attempt's
// span; the message keeps the trace context.
func TestTraceShapeDurable(t *testing.T) {
	t.Parallel()
	tr, exp := memTracing(t)
	var seen parents
	flaky := &parents{}
	ok := newTarget(t, seen.answer(http.StatusCreated))
	retry := newTarget(t, func(n int64, r *http.Request) (int, http.Header, string) {
		flaky.answer(0)(n, r)
		if n == 1 {
			return http.StatusServiceUnavailable, nil, `{}`
		}
		return http.StatusOK, nil, `{}`
	})
	yaml := fmt.Sprintf(`
targets:
  ok: { url: %q }
  flaky: { url: %q, retry: { initial: 10ms, max: 20ms } }
routes:
  - name: r
    path: /r
    steps:
      - { name: a, target: ok }
      - { name: b, target: flaky, after: [a] }
`, ok.srv.URL, retry.srv.URL)
	s := start(t, yaml, engine.Options{Tracing: tr})
	h := http.Header{"Traceparent": {callerParent}, "Tracestate": {"vendor=1"}}
	ans, err := s.eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{}`), Header: h})
	if err != nil {
		t.Fatal(err)
	}
	id := ans.Body.ID
	deadline := time.Now().Add(20 * time.Second)
	for {
		md, err := s.store.MessageGet(context.Background(), id)
		if err == nil && md.Message.Status.Terminal() {
			if md.Message.TraceParent == "" || !strings.Contains(md.Message.TraceParent, callerTrace) || md.Message.TraceState != "vendor=1" {
				t.Errorf("stored trace context %q %q", md.Message.TraceParent, md.Message.TraceState)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message never finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
	spans := waitSpans(t, exp, "attempt b")
	for len(spansNamed(spans, "attempt b")) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		spans = exp.GetSpans()
	}
	ingest := spansNamed(spans, "ingest r")
	if len(ingest) != 1 {
		t.Fatalf("ingest spans: %d", len(ingest))
	}
	in := ingest[0]
	if in.SpanKind != trace.SpanKindServer || in.Parent.TraceID().String() != callerTrace || in.Parent.SpanID().String() != callerSpan || !in.Parent.IsRemote() {
		t.Errorf("ingest span: kind %v parent %v", in.SpanKind, in.Parent)
	}
	if attr(in, "tandem.message_id") != id || attr(in, "http.response.status_code") != int64(202) || attr(in, "tandem.route") != "r" {
		t.Errorf("ingest attributes: %v", in.Attributes)
	}
	want := map[string][]struct {
		n       int64
		outcome string
		status  int64
	}{
		"attempt a": {{1, "success", 201}},
		"attempt b": {{1, "transient", 503}, {2, "success", 200}},
	}
	attemptIDs := map[string]bool{}
	for name, ws := range want {
		got := spansNamed(spans, name)
		if len(got) != len(ws) {
			t.Fatalf("%s: %d spans, want %d", name, len(got), len(ws))
		}
		for i, w := range ws {
			g := got[i]
			attemptIDs[g.SpanContext.SpanID().String()] = true
			if g.SpanKind != trace.SpanKindClient || g.Parent.SpanID() != in.SpanContext.SpanID() || g.SpanContext.TraceID() != in.SpanContext.TraceID() {
				t.Errorf("%s #%d: kind %v parent %v, want a client span under the ingest span", name, i+1, g.SpanKind, g.Parent.SpanID())
			}
			if attr(g, "tandem.attempt") != w.n || attr(g, "tandem.outcome") != w.outcome || attr(g, "http.response.status_code") != w.status {
				t.Errorf("%s #%d attributes: %v", name, i+1, g.Attributes)
			}
			if attr(g, "tandem.step") == nil || attr(g, "tandem.target") == nil || attr(g, "tandem.message_id") != id {
				t.Errorf("%s #%d attributes: %v", name, i+1, g.Attributes)
			}
		}
	}
	for _, tp := range append(seen.all(), flaky.all()...) {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != callerTrace || !attemptIDs[parts[2]] {
			t.Errorf("target got traceparent %q, want one naming an attempt span of trace %s", tp, callerTrace)
		}
	}
}

// TestTraceShapeFanOut: a durable: false route's attempts are client
// spans under its ingest span, which starts a trace when the caller sent
// no traceparent.
func TestTraceShapeFanOut(t *testing.T) {
	t.Parallel()
	tr, exp := memTracing(t)
	var seen parents
	a := newTarget(t, seen.answer(http.StatusOK))
	yaml := fmt.Sprintf(`
targets:
  a: { url: %q }
routes:
  - name: sync
    path: /sync
    durable: false
    respond: all
    steps:
      - { name: one, target: a }
      - { name: two, target: a }
`, a.srv.URL)
	s := start(t, yaml, engine.Options{Tracing: tr})
	ans, err := s.eng.Ingest(context.Background(), "sync", &engine.Inbound{Body: []byte(`{}`), Header: http.Header{}})
	if err != nil || ans.HTTPStatus != http.StatusOK {
		t.Fatalf("ingest: %v %+v", err, ans)
	}
	spans := exp.GetSpans()
	ingest := spansNamed(spans, "ingest sync")
	if len(ingest) != 1 || ingest[0].Parent.IsValid() || ingest[0].SpanKind != trace.SpanKindServer {
		t.Fatalf("ingest spans: %+v", ingest)
	}
	for _, name := range []string{"attempt one", "attempt two"} {
		got := spansNamed(spans, name)
		if len(got) != 1 || got[0].Parent.SpanID() != ingest[0].SpanContext.SpanID() || attr(got[0], "tandem.outcome") != "success" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	for _, tp := range seen.all() {
		if !strings.Contains(tp, ingest[0].SpanContext.TraceID().String()) {
			t.Errorf("target got traceparent %q outside trace %s", tp, ingest[0].SpanContext.TraceID())
		}
	}
}

// TestTracingOffPassesTraceparentOn: with no tracing, no span is made,
// but the caller's trace context still reaches the targets, and the
// message keeps it.
func TestTracingOffPassesTraceparentOn(t *testing.T) {
	t.Parallel()
	var seen parents
	a := newTarget(t, seen.answer(http.StatusOK))
	yaml := fmt.Sprintf(`
targets:
  a: { url: %q }
routes:
  - { name: r, path: /r, respond: all, steps: [{ name: one, target: a }] }
`, a.srv.URL)
	s := start(t, yaml, engine.Options{})
	ans, err := s.eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{}`), Header: http.Header{"Traceparent": {callerParent}}})
	if err != nil || ans.HTTPStatus != http.StatusOK {
		t.Fatalf("ingest: %v %+v", err, ans)
	}
	if got := seen.all(); len(got) != 1 || got[0] != callerParent {
		t.Errorf("target got %q, want the caller's %q", got, callerParent)
	}
	md, err := s.store.MessageGet(context.Background(), ans.Body.ID)
	if err != nil || md.Message.TraceParent != callerParent {
		t.Errorf("stored traceparent %q (%v), want the caller's", md.Message.TraceParent, err)
	}
}

// TestLogsCarryTraceID: an attempt's log lines carry the message's
// trace_id, and so does anything logged with a span's context.
func TestLogsCarryTraceID(t *testing.T) {
	t.Parallel()
	tr, _ := memTracing(t)
	var buf syncBuffer
	log, err := telemetry.NewLogger(&buf, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	a := newTarget(t, fixed(http.StatusOK, `{}`))
	yaml := fmt.Sprintf(`
targets:
  a: { url: %q }
routes:
  - { name: r, path: /r, respond: all, steps: [{ name: one, target: a }] }
`, a.srv.URL)
	s := start(t, yaml, engine.Options{Tracing: tr, Logger: log})
	if _, err := s.eng.Ingest(context.Background(), "r", &engine.Inbound{Body: []byte(`{}`), Header: http.Header{"Traceparent": {callerParent}}}); err != nil {
		t.Fatal(err)
	}
	ctx, span := tr.Tracer().Start(context.Background(), "x")
	log.InfoContext(ctx, "inside a span")
	span.End()
	out := buf.String()
	if !strings.Contains(out, `"msg":"delivered"`) || !strings.Contains(out, `"trace_id":"`+callerTrace+`"`) {
		t.Errorf("attempt log lacks the trace id:\n%s", out)
	}
	if !strings.Contains(out, `"trace_id":"`+span.SpanContext().TraceID().String()+`","span_id":"`+span.SpanContext().SpanID().String()+`"`) {
		t.Errorf("context log lacks trace_id and span_id:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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
