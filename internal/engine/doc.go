// Package engine runs tandem's routes: it accepts a message, commits it with
// one delivery per step, delivers each delivery to its target with retries,
// and answers the caller when the route's respond point is reached.
//
// Invariants:
//
//   - Acknowledged means durable: Ingest answers only after the store's
//     MessageInsert returned, which is after the commit's fsync.
//   - A retry's wait lives in the store (next_attempt_at), never in a
//     sleeping goroutine: every target has one claim loop that asks the
//     store for due deliveries, so a restart keeps every schedule.
//   - Each target has its own claim loop and its own cap on attempts in
//     flight, so a slow or failing target cannot take another's workers.
//   - A claim's lease is the target's total timeout plus a margin, so a
//     request still in flight is never claimed and sent a second time.
//   - On shutdown, attempts still running after the grace period are
//     cancelled and their deliveries given back (postponed to now) without
//     counting an attempt.
//   - durable: false routes never touch the store; their retries run inside
//     the route's deadline.
package engine
