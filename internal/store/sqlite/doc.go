// Package sqlite is the embedded store.Store, on modernc.org/sqlite (pure
// Go, no cgo). It passes the conformance suite in ../storetest.
//
// Invariants:
//
//   - One writer. Every write (MessageInsert, DeliveryClaim,
//     DeliveryComplete, DeliveryPostpone, DeliveryReplay) is an op queued
//     to one goroutine that owns the one write connection. It runs all
//     queued ops (up to Config.MaxBatch) in one transaction and commits
//     once: concurrent callers share one fsync (group commit).
//   - Durable before answered. An op's caller is answered only after the
//     COMMIT of its batch returned; with journal_mode=WAL and
//     synchronous=FULL that means the WAL is fsynced. If the commit fails,
//     every op of the batch fails, also those whose statements went
//     through.
//   - Ops are isolated. An op checks before it writes and reports a failed
//     check (idempotency conflict, lost lease, unknown id) as a clean
//     error, which leaves nothing to undo. An op that fails after writing
//     makes the writer roll the batch back and run it again with a
//     SAVEPOINT around each op, so one bad op never fails or half-writes
//     the others.
//   - Leases. DeliveryClaim sets status running, lease_owner and
//     next_attempt_at = now + LeaseFor; a running delivery whose
//     next_attempt_at has passed is claimable again. DeliveryComplete and
//     DeliveryPostpone act only when status is running and lease_owner is
//     the caller, else store.ErrLeaseLost. Since the single writer runs
//     claims one after another, two claims never get the same delivery.
//   - Message status is always record.DeriveMessageStatus of the
//     deliveries, written in the transaction that changed them (complete,
//     replay); record.Resolve runs in that same transaction.
//   - Reads (MessageGet, lists, stats) use a separate pool of query_only
//     connections: in WAL mode they see the last commit and never wait for
//     the writer.
//   - Times are integer unix nanoseconds (UTC); 0 means unset.
//   - The schema is versioned: migrations/NNNN_name.sql, applied in order
//     at Open, each in its own transaction, recorded in schema_migrations.
package sqlite
