package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tandem-run/tandem/internal/config"
)

// TestTracingFromEnvironment: with telemetry.tracing left out, the
// standard OTEL_* variables turn tracing on and point it at a receiver
// (here a real OTLP/HTTP endpoint decoding the protobuf); a key set in the
// config wins over its variable.
func TestTracingFromEnvironment(t *testing.T) {
	var mu sync.Mutex
	services := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					for _, ss := range rs.GetScopeSpans() {
						services[kv.GetValue().GetStringValue()] += len(ss.GetSpans())
					}
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(recv.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")

	for _, cfg := range []config.Tracing{{}, {ServiceName: "from-config"}} {
		tr, err := NewTracing(context.Background(), TracingOptions{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Exporting() {
			t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT did not turn tracing on")
		}
		_, span := tr.Tracer().Start(context.Background(), "x")
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if services["from-env"] != 1 || services["from-config"] != 1 {
		t.Errorf("spans by service: %v, want one from-env and one from-config", services)
	}
}
