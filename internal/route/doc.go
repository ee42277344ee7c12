// Package route compiles a route into a Plan: its step graph (levels that
// can run in parallel, what each step waits for, the order compensations
// run in) and its compiled templates.
//
// The package owns the step graph: Compile reads a Spec (plain data; the
// config hands one over with config.Route.Spec, and this package imports
// no config), builds the graph in one pass (graph.go) and reports every
// problem at once as Problems, each with its place in the spec, so config
// validation can report them at their file and line.
//
// Invariants:
//
//   - A Plan is immutable after Compile and safe for concurrent use.
//   - A step's templates read only the steps it waits for, directly or
//     not; a compensation's read its own step and the steps that step
//     waits for; a response's read every step. Compile refuses anything
//     else, so every step a template reads has succeeded when it renders.
//   - In a saga, a compensation is a step of its own named
//     "<step>.compensate" (record.CompensationStep); step names cannot
//     hold ".", so the name never clashes.
//   - Compensations run in reverse dependency order: a step's
//     compensation runs once the compensations of every step that waits
//     on it (directly or not) are final.
package route
