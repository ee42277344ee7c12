// Package resilience holds the per-target policies that decide when an
// attempt may run: the retry schedule now; circuit breakers, rate limits
// and concurrency caps next.
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
//     and never sleep.
package resilience
