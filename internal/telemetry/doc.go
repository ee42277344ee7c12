// Package telemetry sets up tandem's Prometheus metrics and its structured
// logger.
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
package telemetry
