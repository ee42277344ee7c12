package config

import (
	"strings"
	"testing"
)

func TestTracingConfig(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, minimal+`telemetry:
  tracing:
    exporter: otlp
    endpoint: "127.0.0.1:4317"
    protocol: grpc
    sample_ratio: 0.25
    service_name: shop-gateway
    insecure: true
    headers: { X-Api-Key: "${env:VENDOR_KEY}" }
    link: "http://127.0.0.1:16686/trace/{trace_id}"
`, map[string]string{"VENDOR_KEY": "s3cret"})
	tr := cfg.Telemetry.Tracing
	if tr.Exporter != TracingOTLP || tr.Endpoint != "127.0.0.1:4317" || tr.SampleRatio == nil || *tr.SampleRatio != 0.25 ||
		tr.ServiceName != "shop-gateway" || tr.Insecure == nil || !*tr.Insecure || tr.Headers["X-Api-Key"] != "s3cret" {
		t.Fatalf("tracing: %+v", tr)
	}
	if v := cfg.Redacted().Telemetry.Tracing.Headers["X-Api-Key"]; v != RedactedValue {
		t.Errorf("redacted export header = %q", v)
	}
	if tr.Headers["X-Api-Key"] != "s3cret" {
		t.Error("Redacted changed the config")
	}
}

func TestTracingConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"exporter", `{exporter: jaeger}`, `t.yaml:9: telemetry.tracing.exporter: unknown exporter "jaeger": use otlp or none`},
		{"protocol", `{protocol: http/json}`, `telemetry.tracing.protocol: unknown protocol "http/json": use grpc or http/protobuf`},
		{"ratio", `{sample_ratio: 1.5}`, `telemetry.tracing.sample_ratio: sample_ratio 1.5 is not between 0 and 1`},
		{"endpoint", `{endpoint: collector}`, `telemetry.tracing.endpoint: endpoint "collector": write host:port`},
		{"endpoint url", `{endpoint: "grpc://collector:4317"}`, `is not an http or https URL with a host`},
		{"link without id", `{link: "http://jaeger/trace"}`, `telemetry.tracing.link: link "http://jaeger/trace" has no {trace_id}`},
		{"link not a url", `{link: "jaeger/{trace_id}"}`, `is not an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := parseErrors(t, minimal+"telemetry:\n  tracing: "+tt.yaml+"\n")
			if !strings.Contains(strings.Join(errs, "\n"), tt.want) {
				t.Errorf("errors %q, want one containing %q", errs, tt.want)
			}
		})
	}
}
