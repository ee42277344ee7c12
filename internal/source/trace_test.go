package source

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-run/tandem/internal/telemetry"
)

// TestNATSTraced: a broker message starts its trace with a consumer span
// (continuing the message's traceparent header when it has one); the
// engine's ingest span is its child, and every attempt the ingest span's.
func TestNATSTraced(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tr, err := telemetry.NewTracing(context.Background(), telemetry.TracingOptions{Exporter: exp, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	r := newRig(t, "", tr)
	const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r.publish(t, `{"n":"traced"}`, nats.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"}, "Nats-Msg-Id": {"m1"}})
	r.publish(t, `{"n":"fresh"}`, nats.Header{"Nats-Msg-Id": {"m2"}})
	count := func(name string) int {
		n := 0
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				n++
			}
		}
		return n
	}
	waitFor(t, 20*time.Second, "four attempts traced", func() bool { return count("attempt bill")+count("attempt ship") == 4 })

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	roots := 0
	for _, s := range spans {
		switch s.Name {
		case "receive bus":
			if s.SpanKind != trace.SpanKindConsumer {
				t.Errorf("receive span kind %v", s.SpanKind)
			}
			if s.Parent.IsValid() {
				if s.Parent.TraceID().String() != parentTrace || s.Parent.SpanID().String() != parentSpan {
					t.Errorf("receive span continues %v, want the message's traceparent", s.Parent)
				}
			} else {
				roots++
			}
		case "ingest orders":
			p, ok := byID[s.Parent.SpanID()]
			if !ok || p.Name != "receive bus" || s.SpanKind != trace.SpanKindInternal {
				t.Errorf("ingest span: kind %v parent %q", s.SpanKind, p.Name)
			}
		case "attempt bill", "attempt ship":
			p, ok := byID[s.Parent.SpanID()]
			if !ok || p.Name != "ingest orders" || p.SpanContext.TraceID() != s.SpanContext.TraceID() {
				t.Errorf("%s: parent %q", s.Name, p.Name)
			}
		}
	}
	if count("receive bus") != 2 || count("ingest orders") != 2 || roots != 1 {
		t.Errorf("receive spans %d, ingest spans %d, new traces %d; want 2, 2, 1", count("receive bus"), count("ingest orders"), roots)
	}
}
