package telemetry

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-run/tandem/internal/config"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// TestExporting: the config's exporter wins; left out, the OTEL_*
// variables decide; OTEL_SDK_DISABLED turns tracing off either way.
func TestExporting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		exporter string
		env      map[string]string
		want     bool
	}{
		{"nothing set", "", nil, false},
		{"otlp", config.TracingOTLP, nil, true},
		{"none beats the env", config.TracingNone, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, false},
		{"env endpoint", "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, true},
		{"env traces endpoint", "", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{"env exporter otlp", "", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"env exporter none", "", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, false},
		{"sdk disabled", config.TracingOTLP, map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exporting(config.Tracing{Exporter: tt.exporter}, env(tt.env)); got != tt.want {
				t.Errorf("exporting = %v, want %v", got, tt.want)
			}
		})
	}
	if p := protocol(config.Tracing{}, env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})); p != config.TracingHTTPProtobuf {
		t.Errorf("protocol from env = %q", p)
	}
	if p := protocol(config.Tracing{Protocol: config.TracingGRPC}, env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})); p != config.TracingGRPC {
		t.Errorf("config protocol lost to env: %q", p)
	}
}

func TestNewTracing(t *testing.T) {
	t.Parallel()
	off, err := NewTracing(context.Background(), TracingOptions{Getenv: env(nil)})
	if err != nil || off.Exporting() {
		t.Fatalf("no config: %v exporting %v", err, off.Exporting())
	}
	_, err = NewTracing(context.Background(), TracingOptions{Config: config.Tracing{Exporter: "otlp"}, Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})})
	if !errors.Is(err, ErrTracingConfig) {
		t.Errorf("bad protocol from env: %v", err)
	}
	exp := tracetest.NewInMemoryExporter()
	ratio := 0.0
	tr, err := NewTracing(context.Background(), TracingOptions{
		Config: config.Tracing{SampleRatio: &ratio, ServiceName: "svc", Link: "http://j/trace/{trace_id}"}, Exporter: exp, Sync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Ratio 0: a new trace is not sampled, but has ids to pass on.
	ctx, span := tr.Tracer().Start(context.Background(), "new")
	span.End()
	if span.SpanContext().IsSampled() || !span.SpanContext().IsValid() || len(exp.GetSpans()) != 0 {
		t.Errorf("ratio 0: sampled %v valid %v exported %d", span.SpanContext().IsSampled(), span.SpanContext().IsValid(), len(exp.GetSpans()))
	}
	parent, _ := tr.TraceParent(ctx)
	if SampledTraceID(parent) != "" || TraceIDOf(parent) != span.SpanContext().TraceID().String() {
		t.Errorf("traceparent %q", parent)
	}
	// A sampled caller's decision stands.
	in := ContextWithParent(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v")
	_, child := tr.Tracer().Start(in, "child")
	child.End()
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" || spans[0].SpanContext.TraceState().Get("k") != "v" {
		t.Fatalf("child of a sampled caller: %+v", spans)
	}
	if got := spans[0].Resource.Attributes(); !hasAttr(got, "service.name", "svc") {
		t.Errorf("resource %v lacks service.name svc", got)
	}
	if l := tr.Link("abc"); l != "http://j/trace/abc" {
		t.Errorf("link %q", l)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var nilT *Tracing
	_, s := nilT.Tracer().Start(context.Background(), "x")
	if s.SpanContext().IsValid() || nilT.Exporting() || nilT.Link("x") != "" {
		t.Error("a nil Tracing records")
	}
	_ = trace.SpanKindServer
}

func hasAttr(kvs []attribute.KeyValue, key, value string) bool {
	for _, kv := range kvs {
		if string(kv.Key) == key && kv.Value.AsString() == value {
			return true
		}
	}
	return false
}

func TestTraceIDs(t *testing.T) {
	t.Parallel()
	tests := []struct{ parent, id, sampled string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0b", "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0a", "4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"", "", ""},
		{"garbage", "", ""},
	}
	for _, tt := range tests {
		if got := TraceIDOf(tt.parent); got != tt.id {
			t.Errorf("TraceIDOf(%q) = %q, want %q", tt.parent, got, tt.id)
		}
		if got := SampledTraceID(tt.parent); got != tt.sampled {
			t.Errorf("SampledTraceID(%q) = %q, want %q", tt.parent, got, tt.sampled)
		}
	}
	if !loopback("127.0.0.1:4317") || !loopback("localhost:4317") || !loopback("[::1]:4317") || loopback("collector:4317") {
		t.Error("loopback")
	}
}
