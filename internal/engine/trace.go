package engine

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/target"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// Span attribute keys. Where OpenTelemetry's semantic conventions name
// the fact (HTTP status), the convention's key is used.
const (
	attrRoute       = attribute.Key("tandem.route")
	attrMessageID   = attribute.Key("tandem.message_id")
	attrDeliveryID  = attribute.Key("tandem.delivery_id")
	attrStep        = attribute.Key("tandem.step")
	attrTarget      = attribute.Key("tandem.target")
	attrAttempt     = attribute.Key("tandem.attempt")
	attrOutcome     = attribute.Key("tandem.outcome")
	attrStatus      = attribute.Key("tandem.delivery.status")
	attrCompensates = attribute.Key("tandem.compensates")
	attrDurable     = attribute.Key("tandem.durable")
	attrRepeat      = attribute.Key("tandem.idempotent_repeat")
	attrHTTPStatus  = attribute.Key("http.response.status_code")
	attrHTTPMethod  = attribute.Key("http.request.method")
)

// startIngest starts the span of one ingest. Called over HTTP, it is a
// server span continuing the caller's traceparent (a new trace without
// one); when ctx already holds a span (a broker source's consumer span),
// it is an internal span under it. With tracing off, the span is the
// caller's context passed through, so targets still get the caller's
// traceparent.
func (e *Engine) startIngest(ctx context.Context, rp *routePlan, in *Inbound) (context.Context, trace.Span) {
	kind := trace.SpanKindInternal
	if !trace.SpanContextFromContext(ctx).IsValid() {
		kind = trace.SpanKindServer
		if in.Header != nil {
			ctx = e.tracing.Propagator().Extract(ctx, propagation.HeaderCarrier(in.Header))
		}
	}
	return e.tracing.Tracer().Start(ctx, "ingest "+rp.cfg.Name, trace.WithSpanKind(kind))
}

// endIngest ends an ingest span with the answer given (code 0: an error
// with no status of its own).
func endIngest(span trace.Span, rp *routePlan, ans *Answer, code int, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attrRoute.String(rp.cfg.Name), attrDurable.Bool(rp.cfg.IsDurable()))
	if ans != nil && ans.Body != nil {
		attrs = append(attrs, attrMessageID.String(ans.Body.ID))
	}
	if ans != nil && ans.Repeat {
		attrs = append(attrs, attrRepeat.Bool(true))
	}
	if code != 0 {
		attrs = append(attrs, attrHTTPStatus.Int(code))
	}
	span.SetAttributes(attrs...)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else if code >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}

// keepTraceContext stores the ingest span's context with the message, so
// each later attempt, on any replica, is its child. A tracestate too long
// for the store is dropped; the trace stays whole.
func (e *Engine) keepTraceContext(ctx context.Context, m *record.Message) {
	m.TraceParent, m.TraceState = e.tracing.TraceParent(ctx)
	if len(m.TraceState) > store.MaxTraceState {
		m.TraceState = ""
	}
}

// messageContext returns ctx carrying the span context kept with a
// stored message: the parent of its attempts.
func messageContext(ctx context.Context, m *record.Message) context.Context {
	if m == nil {
		return ctx
	}
	return telemetry.ContextWithParent(ctx, m.TraceParent, m.TraceState)
}

// startAttempt starts the client span of an attempt of d, under the span
// in ctx. Its attributes are set when it ends (endAttempt), in one call:
// the SDK copies them once instead of twice.
func (e *Engine) startAttempt(ctx context.Context, d *record.Delivery) (context.Context, trace.Span) {
	name := "attempt " + d.Step
	if undoes, ok := record.Compensates(d.Step); ok {
		name = "compensate " + undoes
	}
	return e.tracing.Tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
}

// endAttempt ends the span of attempt n of d: step, target, attempt
// number, outcome, HTTP status, and the status the delivery goes to
// (scheduled: a retry). A compensation's span says which step it undoes.
func (e *Engine) endAttempt(span trace.Span, d *record.Delivery, n int, res *target.Result, status record.DeliveryStatus) {
	if !span.IsRecording() {
		span.End()
		return
	}
	attrs := e.attemptAttrs(d, n, 3)
	attrs = append(attrs, attrOutcome.String(string(res.Outcome)), attrStatus.String(string(status)))
	if res.Status != 0 {
		attrs = append(attrs, attrHTTPStatus.Int(res.Status))
	}
	span.SetAttributes(attrs...)
	if res.Outcome != record.OutcomeSuccess {
		msg := errorText(res)
		if msg == "" {
			msg = string(res.Outcome)
		}
		if res.Err != nil {
			span.RecordError(res.Err)
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End()
}

// attemptAttrs are the attributes of attempt n of d, with room for more.
func (e *Engine) attemptAttrs(d *record.Delivery, n, more int) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 8+more)
	attrs = append(attrs, attrRoute.String(d.Route), attrStep.String(d.Step), attrTarget.String(d.Target),
		attrAttempt.Int(n), attrDeliveryID.String(d.ID))
	if d.MessageID != "" {
		attrs = append(attrs, attrMessageID.String(d.MessageID))
	}
	if undoes, ok := record.Compensates(d.Step); ok {
		attrs = append(attrs, attrCompensates.String(undoes))
	}
	if tr := e.cur().targets[d.Target]; tr != nil {
		attrs = append(attrs, attrHTTPMethod.String(tr.endpoint.Method))
	}
	return attrs
}

// endPostponed ends the span of an attempt cut short and given back
// uncounted (shutdown): the delivery goes back as it was, so the span
// says postponed, not an outcome.
func (e *Engine) endPostponed(span trace.Span, d *record.Delivery, reason string) {
	if span.IsRecording() {
		attrs := e.attemptAttrs(d, d.Attempts+1, 2)
		span.SetAttributes(append(attrs, attrStatus.String("postponed"), attribute.String("tandem.postpone_reason", reason))...)
	}
	span.End()
}

// verdictStatus is the delivery status a decision leads to.
func verdictStatus(v verdict) record.DeliveryStatus {
	switch v {
	case verdictSucceeded:
		return record.DeliverySucceeded
	case verdictRetry:
		return record.DeliveryScheduled
	}
	return record.DeliveryDead
}

// spanTraceID returns the trace id of ctx's span when it is sampled ("":
// none), for exemplars.
func spanTraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	return sc.TraceID().String()
}

// traceLogID is the trace id to log with a message's events ("" when
// it was not traced).
func traceLogID(m *record.Message) string {
	if m == nil {
		return ""
	}
	return m.TraceID()
}
