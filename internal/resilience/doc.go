// Package resilience holds the per-target policies that decide when an
// attempt may run: the retry schedule, the circuit breaker, the rate limit
// (token bucket) and the adaptive concurrency cap.
//
// Invariants:
//
//   - The retry schedule is a pure function of the policy, the attempt
//     count, the times involved, the target's Retry-After and a jitter
//     value. It never sleeps: the engine stores its answer in the
//     delivery's next_attempt_at, so a restart keeps the wait.
//   - Jitter values come from Jitter (math/rand/v2's lock-free,
//     goroutine-safe source), never from a shared locked *rand.Rand; tests
//     pass fixed values instead.
//   - Time comes from a Clock, so breaker and limiter tests set the time
//     and never sleep. The breaker is ours rather than sony/gobreaker's:
//     gobreaker v2 reads time.Now itself and does not expose when an open
//     breaker half-opens, which the engine needs to postpone deliveries.
//   - The breaker is a two-step breaker: Allow before a call, the outcome
//     reported on the Permit after it. Outcomes of calls that started in
//     an earlier state (generation) are ignored, so a slow call that
//     fails after the breaker closed again cannot reopen it.
//   - Half-open lets at most HalfOpenProbes calls through in all; one
//     failure reopens the breaker, all of them succeeding closes it.
//   - The limiter never sleeps either: it says how long a call must wait
//     for its token, and refuses waits longer than the caller allows.
package resilience
