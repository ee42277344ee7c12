package main

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpSpan is one span as an OTLP receiver got it off the wire.
type otlpSpan struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      tracepb.Span_SpanKind
	Attrs                     map[string]any
	Service                   string
	Error                     bool
	Batch                     int // the receiver's phase when it arrived (see otlpReceiver.setPhase)
}

// otlpReceiver is a real OTLP trace receiver: a gRPC server implementing
// the collector's TraceService, and an HTTP handler decoding the OTLP
// protobuf body of POST /v1/traces. It keeps every span it is sent.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer

	// countOnly keeps no spans, only their number (benchmarks: a real
	// collector's work is not on tandem's machine).
	countOnly bool

	mu    sync.Mutex
	spans []otlpSpan
	count int
	phase int
}

// startOTLPGRPC serves the receiver over gRPC on 127.0.0.1 and returns its
// host:port.
func startOTLPGRPC(t testing.TB, r *otlpReceiver) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// startOTLPHTTP serves the receiver's OTLP/HTTP handler and returns its
// base URL.
func startOTLPHTTP(t testing.TB, r *otlpReceiver) string {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Export takes one OTLP/gRPC export.
func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// ServeHTTP takes one OTLP/HTTP export (binary protobuf).
func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "not an OTLP traces endpoint", http.StatusNotFound)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+ct, http.StatusUnsupportedMediaType)
		return
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&in)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *otlpReceiver) add(req *collectortrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.countOnly {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.count += len(ss.GetSpans())
			}
		}
		return
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]any{}
				for _, kv := range s.GetAttributes() {
					attrs[kv.GetKey()] = anyValue(kv.GetValue())
				}
				r.spans = append(r.spans, otlpSpan{
					TraceID:  hex.EncodeToString(s.GetTraceId()),
					SpanID:   hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Name:     s.GetName(),
					Kind:     s.GetKind(),
					Attrs:    attrs,
					Service:  service,
					Error:    s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Batch:    r.phase,
				})
			}
		}
	}
}

// setPhase marks the spans that arrive from now on with phase.
func (r *otlpReceiver) setPhase(phase int) {
	r.mu.Lock()
	r.phase = phase
	r.mu.Unlock()
}

// received is how many spans came in.
func (r *otlpReceiver) received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count + len(r.spans)
}

// got returns a copy of the spans received so far.
func (r *otlpReceiver) got() []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]otlpSpan(nil), r.spans...)
}

// anyValue is an OTLP attribute value as a Go value (int64, string, bool,
// float64).
func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	}
	return nil
}
