package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tandem-run/tandem/internal/config"
)

// TracerName is the instrumentation scope of tandem's spans.
const TracerName = "github.com/tandem-run/tandem"

// DefaultServiceName is the service.name of tandem's spans when neither
// telemetry.tracing.service_name nor OTEL_SERVICE_NAME names one.
const DefaultServiceName = "tandem"

// Tracing is tandem's tracer and W3C propagator. Its methods are safe for
// concurrent use. A nil *Tracing, like one built from exporter none,
// records no span but still carries an inbound traceparent on to the
// targets.
type Tracing struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	provider *sdktrace.TracerProvider // nil when nothing is exported
	link     string
}

// TracingOptions configure NewTracing.
type TracingOptions struct {
	// Config is telemetry.tracing.
	Config config.Tracing
	// Version is the service.version of every span. Default "dev".
	Version string
	// Getenv reads the OTEL_* variables tandem itself decides on
	// (OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER, whether an endpoint is
	// set). Default os.Getenv. The OTLP exporters read the rest from the
	// process environment themselves.
	Getenv func(string) string
	// Exporter, when set, replaces the OTLP exporter: spans are exported
	// to it in batches, whatever Config.Exporter says (tests and
	// benchmarks).
	Exporter sdktrace.SpanExporter
	// Sync exports each span as it ends instead of in batches (tests).
	Sync bool
}

// NoTracing returns a Tracing that records nothing and only propagates.
func NoTracing() *Tracing {
	return &Tracing{tracer: noop.NewTracerProvider().Tracer(TracerName), prop: propagator()}
}

// propagator is W3C Trace Context (traceparent, tracestate) and Baggage.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// NewTracing builds the tracer telemetry.tracing asks for; see
// config.Tracing for how each key falls back to its OTEL_* variable.
// Shutdown flushes it.
func NewTracing(ctx context.Context, opts TracingOptions) (*Tracing, error) {
	cfg := opts.Config
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	t := NoTracing()
	t.link = cfg.Link
	exp := opts.Exporter
	if exp == nil {
		if !exporting(cfg, opts.Getenv) {
			return t, nil
		}
		var err error
		if exp, err = otlpExporter(ctx, cfg, opts.Getenv); err != nil {
			return nil, err
		}
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.version", opts.Version)),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	if cfg.ServiceName != "" {
		res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)))
		if err != nil {
			return nil, fmt.Errorf("tracing resource: %w", err)
		}
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if opts.Sync {
		popts = append(popts, sdktrace.WithSyncer(exp))
	} else {
		popts = append(popts, sdktrace.WithBatcher(exp))
	}
	if r := cfg.SampleRatio; r != nil {
		// A caller's decision stands; a new trace is sampled at the ratio.
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*r))))
	}
	t.provider = sdktrace.NewTracerProvider(popts...)
	t.tracer = t.provider.Tracer(TracerName, trace.WithInstrumentationVersion(opts.Version))
	return t, nil
}

// exporting reports whether spans are exported: exporter otlp, or no
// exporter set and the environment asks for OTLP. OTEL_SDK_DISABLED=true
// turns it off either way.
func exporting(cfg config.Tracing, getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch cfg.Exporter {
	case config.TracingOTLP:
		return true
	case config.TracingNone:
		return false
	}
	if e := getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e == "otlp"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// protocol is the OTLP protocol: the config's, else the environment's,
// else grpc.
func protocol(cfg config.Tracing, getenv func(string) string) string {
	for _, p := range []string{cfg.Protocol, getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL")} {
		if p != "" {
			return p
		}
	}
	return config.TracingGRPC
}

// ErrTracingConfig marks tracing settings the exporter cannot use.
var ErrTracingConfig = errors.New("tracing")

func otlpExporter(ctx context.Context, cfg config.Tracing, getenv func(string) string) (sdktrace.SpanExporter, error) {
	insecure := cfg.Insecure != nil && *cfg.Insecure
	if cfg.Insecure == nil && cfg.Endpoint != "" && !strings.Contains(cfg.Endpoint, "://") {
		insecure = loopback(cfg.Endpoint)
	}
	switch p := protocol(cfg, getenv); p {
	case config.TracingGRPC:
		var o []otlptracegrpc.Option
		switch {
		case strings.Contains(cfg.Endpoint, "://"):
			o = append(o, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		case cfg.Endpoint != "":
			o = append(o, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			o = append(o, otlptracegrpc.WithHeaders(cfg.Headers))
		}
		exp, err := otlptracegrpc.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("%w: otlp grpc exporter: %w", ErrTracingConfig, err)
		}
		return exp, nil
	case config.TracingHTTPProtobuf:
		var o []otlptracehttp.Option
		switch {
		case strings.Contains(cfg.Endpoint, "://"):
			o = append(o, otlptracehttp.WithEndpointURL(cfg.Endpoint))
		case cfg.Endpoint != "":
			o = append(o, otlptracehttp.WithEndpoint(cfg.Endpoint))
		}
		if insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		if len(cfg.Headers) > 0 {
			o = append(o, otlptracehttp.WithHeaders(cfg.Headers))
		}
		exp, err := otlptracehttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("%w: otlp http exporter: %w", ErrTracingConfig, err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("%w: protocol %q (from OTEL_EXPORTER_OTLP_PROTOCOL?): use grpc or http/protobuf", ErrTracingConfig, p)
	}
}

// loopback reports whether host:port names this machine.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Tracer returns the tracer of tandem's spans.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer(TracerName)
	}
	return t.tracer
}

// Propagator returns the W3C propagator (traceparent, tracestate,
// baggage).
func (t *Tracing) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return propagator()
	}
	return t.prop
}

// Exporting reports whether spans are recorded and exported.
func (t *Tracing) Exporting() bool { return t != nil && t.provider != nil }

// LinkTemplate is telemetry.tracing.link ("" when none).
func (t *Tracing) LinkTemplate() string {
	if t == nil {
		return ""
	}
	return t.link
}

// Link returns the trace's URL in the tracing UI per the link template,
// or "" without a template or trace id.
func (t *Tracing) Link(traceID string) string {
	return TraceLink(t.LinkTemplate(), traceID)
}

// TraceLink fills {trace_id} of template with traceID ("" when either is
// empty).
func TraceLink(template, traceID string) string {
	if template == "" || traceID == "" {
		return ""
	}
	return strings.ReplaceAll(template, "{trace_id}", url.PathEscape(traceID))
}

// Shutdown exports the spans still buffered and stops the exporter,
// within ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}

// ForceFlush exports the spans buffered so far.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// TraceParent is a span context as W3C headers, for keeping with a
// message. Both are empty for an invalid context.
func (t *Tracing) TraceParent(ctx context.Context) (parent, state string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// ContextWithParent returns ctx carrying the remote span context kept as
// W3C headers (TraceParent's output); ctx unchanged when parent is empty
// or malformed.
func ContextWithParent(ctx context.Context, parent, state string) context.Context {
	if parent == "" {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": parent}
	if state != "" {
		c["tracestate"] = state
	}
	return propagation.TraceContext{}.Extract(ctx, c)
}

// TraceIDOf returns the trace id of a W3C traceparent, "" when it has
// none.
func TraceIDOf(parent string) string {
	// 00-<trace id>-<parent id>-<flags>
	if len(parent) < 55 || parent[2] != '-' {
		return ""
	}
	return parent[3:35]
}

// SampledTraceID returns the trace id of a traceparent whose sampled flag
// is set ("" otherwise): only a sampled trace can be looked up, so only
// it makes an exemplar.
func SampledTraceID(parent string) string {
	if len(parent) != 55 {
		return ""
	}
	flags, err := strconv.ParseUint(parent[53:], 16, 8)
	if err != nil || flags&1 == 0 {
		return ""
	}
	return TraceIDOf(parent)
}
