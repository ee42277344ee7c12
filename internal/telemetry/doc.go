// Package telemetry sets up tandem's Prometheus metrics, its
// OpenTelemetry tracing and its structured logger.
//
// Invariants:
//
//   - Metrics register on the registry they are given, never on the
//     global default one, so tests and several engines in one process do
//     not collide.
//   - Hot paths (an attempt, a route answer) do no label lookups and no
//     allocations: StepMetrics and RouteMetrics hold their series
//     resolved once per (route, step, target) or route.
//   - A nil *Metrics, *StepMetrics or *RouteMetrics is valid and records
//     nothing, so metrics are optional everywhere.
//   - Every series of a configured route, step and target exists from
//     the start, at 0; the queue gauges are set for every configured
//     target at each refresh, so they return to 0.
//   - Tracing never registers a global tracer provider or propagator:
//     each engine gets its *Tracing, so tests and several engines in one
//     process keep their spans apart. A nil or "none" *Tracing records
//     nothing but still propagates W3C trace context.
//   - A config key of telemetry.tracing wins over its OTEL_* variable; a
//     key left out falls back to the variable, then to the default.
package telemetry
