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
//     The cap adapts (AIMD): transient failures lower it towards 1, so a
//     target that is down is retried one attempt at a time and its churn
//     cannot crowd the store's single writer.
//   - A claim's lease is the target's total timeout plus a margin (plus
//     the longest wait for a rate limit token), so a request still in
//     flight is never claimed and sent a second time. A request goes out
//     only while the lease has at least the total timeout left; the store
//     reads before it are bounded by what the lease has to spare, and a
//     claim left with too little is given back uncounted (worker.go run).
//   - Every write that ends or moves a claim carries the claim's lease
//     (owner and fencing token, store.LeaseOf) and is built with the
//     store's constructors.
//   - One pure function, decide (outcome.go), turns an attempt's outcome
//     into success, a retry at a time, a dead letter with its reason, or
//     a postponed claim, for durable and durable: false routes alike.
//   - A target's gates are shared by every route that calls it, and
//     checked twice: the claim loop claims only what they let through
//     (nothing while the breaker is open or the target paused by
//     Retry-After, so that costs the store nothing), and each claimed
//     delivery passes them again right before its request; one stopped
//     there is given back without counting an attempt: due when the
//     breaker half-opens, or, stopped by a pause, due now (its own
//     schedule; the pause, capped by retry.max_retry_after, lives in this
//     process only).
//   - A claimed delivery waits in memory for a rate limit token at most
//     maxHold (1s); the loop claims no more than the tokens that come
//     within it.
//   - On shutdown, attempts still running after the grace period are
//     cancelled and their deliveries given back (postponed to now) without
//     counting an attempt; a claim that returns as shutdown begins gives
//     its deliveries back at once. Ingest calls enter under a gate that
//     Shutdown closes before it waits for them.
//   - At start, the open deliveries of targets the config no longer has
//     are dead-lettered with the reason, so they can be seen and replayed.
//   - A route's on_complete (and an accepted Callback-Url) is one more
//     delivery per destination, committed with the message: it becomes due
//     only once every other delivery is final (record.Resolve), renders
//     the summary from the store when it is sent, and never counts towards
//     the message's status. A publish is made by the Publisher and
//     succeeds only on the broker's confirmation; a callback goes through
//     a caller whose dialer refuses internal addresses unless the host is
//     listed exactly in server.callback_hosts (oncomplete.go, callback.go).
//   - durable: false routes never touch the store; their retries run inside
//     the route's deadline, and their idempotency keys live in a bounded
//     in-memory memo (idempotency.go).
//   - Tracing (trace.go): an ingest's span continues the caller's
//     traceparent (or the broker source's consumer span), and a durable
//     message is committed with that span's context, so every attempt and
//     compensation, on any replica and after any restart, is a client
//     span under it, in one trace; the target gets the attempt's span as
//     its traceparent.
//   - The config in force is one generation (reload.go), read through
//     cur(); nothing keeps routes or targets elsewhere. A reload swaps the
//     whole generation at once; an unchanged target keeps its runner (and
//     breaker, limiter, pause), a replaced runner stops claiming and its
//     attempts in flight finish and are recorded. A stored delivery finds
//     its step in the route in force, else in the route as it was before
//     a reload removed or changed it; it is always sent with the runner
//     of the target that claimed it.
//   - Caches of durable: false routes (cache.go) keep only answers whose
//     every step succeeded, keyed by the caller's credentials unless
//     shared, and start empty at each reload.
package engine
