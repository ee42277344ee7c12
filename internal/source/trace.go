package source

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startConsume starts the consumer span of one broker message, the root
// of the message's trace unless its headers carry a traceparent, which it
// continues. The engine's ingest span, and so every attempt, is under it.
func (r *runner) startConsume(ctx context.Context, m *message) (context.Context, trace.Span) {
	t := r.opts.Tracing
	if m.header != nil {
		ctx = t.Propagator().Extract(ctx, propagation.HeaderCarrier(m.header))
	}
	return t.Tracer().Start(ctx, "receive "+r.cfg.Name, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", messagingSystem(r.cfg.Kind)),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("tandem.source", r.cfg.Name),
			attribute.String("tandem.route", r.route),
			attribute.Bool("tandem.redelivered", m.redelivered),
		))
}

// endConsume ends a consumer span with how the message was settled.
func endConsume(span trace.Span, v verdict) {
	if span.IsRecording() {
		settled := "ack"
		if v == nak {
			settled = "nak"
			span.SetStatus(codes.Error, "not accepted now; the broker delivers it again")
		}
		span.SetAttributes(attribute.String("tandem.settled", settled))
	}
	span.End()
}

// messagingSystem is the OpenTelemetry messaging.system of a source kind.
func messagingSystem(kind string) string {
	if kind == "amqp" {
		return "rabbitmq"
	}
	return kind
}
