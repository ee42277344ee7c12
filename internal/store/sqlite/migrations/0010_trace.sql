-- 0010_trace: a message keeps the trace context of its ingest span, so
-- every attempt, on any replica and after any restart, joins the same
-- trace (docs/observability.md).
--
-- traceparent is the W3C traceparent of the ingest span ('' when the
-- message was not traced); tracestate is the W3C tracestate carried with
-- it ('' when none).

ALTER TABLE messages ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
