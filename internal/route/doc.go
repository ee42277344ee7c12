// Package route compiles a configured route into a Plan: its step graph
// (levels that can run in parallel, what each step waits for, the order
// compensations run in) and its compiled templates.
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
