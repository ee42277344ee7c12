// Package fanout is tandem's library mode: the engine behind the tandem
// gateway, inside a Go program. A Runner sends one request to several
// HTTP APIs from the program's own process — steps in parallel, steps
// that wait for others (After) and read their answers in templates,
// retries with backoff and jitter, a circuit breaker, rate limit and
// concurrency cap per target, an Idempotency-Key header per step — and
// returns a merged Result with every step's status. An Outbox (Open) does
// the same durably: Send commits the message to an embedded SQLite file
// and returns; workers in the same process deliver it, and after a crash
// the next Open of the same file delivers what was committed.
//
// Plans are written in Go (Config, Target, Plan, Step) or read from a
// tandem.yaml with LoadConfig, where each route is a plan of the same
// name. docs/library.md is the guide.
//
// Invariants:
//
//   - One engine. A Runner is internal/engine running every plan as a
//     durable: false route; an Outbox is internal/engine on the
//     internal/store/sqlite store, every plan a durable route answered on
//     commit (respond: accepted). Delivery, retries, gates, templates and
//     the merge are the gateway's own code; this package only converts
//     types.
//   - A plan written in Go is validated by the rules tandem.yaml is held
//     to (config.Check), and its problems are all reported at once.
//   - Send returns only after the commit's fsync: an id in hand is a
//     message that survives the program.
//   - Each step's Idempotency-Key is "{message id}.{step}", the same on
//     every attempt and after a restart.
package fanout
