// Package postgres is the PostgreSQL store.Store, for several `tandem serve`
// replicas sharing one database. It passes the conformance suite in
// storetest; the semantics are the sqlite package's, and these are the
// invariants that hold across replicas:
//
//   - Acknowledged means committed. MessageInsert calls are group-committed
//     by a few writer goroutines: each takes every call queued, runs them as
//     one pipelined implicit transaction (one round trip, one WAL flush), and
//     answers the callers after the COMMIT. DeliveryComplete calls are
//     group-committed the same way by one writer.
//   - One message per idempotency key, whatever the replica: a unique index
//     on (route, idempotency_key) for non-empty keys, and INSERT ... ON
//     CONFLICT DO NOTHING, which waits for a racing insert of the same key
//     to commit and then skips. No op in a batch fails because of another;
//     a batch that fails for any other reason is run again op by op.
//     Batches insert in (route, key) order, so two cannot deadlock.
//   - A delivery is claimed by one worker at a time: claims select with FOR
//     UPDATE SKIP LOCKED on the partial index of scheduled and running
//     deliveries, never wait on each other, and re-claim running
//     deliveries whose lease ended. Complete and Postpone act only while
//     the delivery is running and leased to the caller (else ErrLeaseLost).
//   - Completing deliveries locks their messages (SELECT ... FOR UPDATE, in
//     id order) before it reads the siblings, so two replicas completing
//     sibling deliveries serialise: the second sees the first's result, and
//     a step waiting on both is made ready exactly once. Replays take the
//     same locks in the same order.
//   - Time comes from the callers' Now, never from the database's now();
//     times are timestamptz, so they keep microseconds.
//   - Wake-ups are hints: after a commit makes deliveries due, a NOTIFY per
//     target goes out on channel tandem_ready (tandem_ready_<schema> with
//     Config.Schema) from a separate, non-durable transaction, so commits
//     never queue on PostgreSQL's notification lock. Listen delivers them;
//     polling stays the fallback.
//   - Schema changes are versioned migrations, applied in one transaction
//     under an advisory lock, so replicas starting together apply each
//     exactly once.
//   - A database that cannot be reached gives errors wrapping
//     store.ErrUnavailable (the API answers 503), within 30s at most even
//     when the server stops answering without closing the connection.
package postgres
