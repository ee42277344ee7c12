// Package events turns changes of the store into a live stream of events
// (message, delivery, attempt) for GET /v1/events and the dashboard.
//
// How it works: Wrap decorates the store the engine, the sources and the
// admin API write through; after each successful write it tells the Hub
// which messages changed (Changed). The Hub reads each changed message
// back from the store, compares it with what it last saw of it, and
// publishes what is new: the message's status, each delivery whose state
// or attempt count moved, each new attempt. On a store that is a
// store.ChangeFeed (PostgreSQL) the ids also go to the other replicas,
// whose hubs read and publish the same way, so every replica's stream
// shows every replica's work.
//
// Invariants:
//
//   - A write never waits for the Hub: Changed only marks ids pending
//     (bounded by Options.MaxPending; beyond it notices are dropped and
//     every subscriber is told with a reset event), and a subscriber whose
//     buffer (Options.ClientBuffer) is full is dropped, never waited for.
//   - Event ids are "<epoch>-<seq>": epoch names this Hub's life (it
//     changes on restart), seq counts up by one per event. The last
//     Options.Buffer events are kept; Subscribe with the id a client saw
//     last replays what followed it exactly once, in order, or, when that
//     cannot be done (another epoch, older than the buffer, or events were
//     lost in between), starts with a reset event so the client reloads.
//   - The Hub only reads the store while someone listens: while it has a
//     subscriber, and for Options.Linger after the last one left (so a
//     client that reconnects can resume). Before that, changes are not
//     followed, and a resume across such a time gets a reset.
//   - Events of one message come in the order the Hub saw its states,
//     which is the store's order; several quick changes may be seen as
//     one (running then succeeded may show as succeeded only). After a
//     reset, or when the Hub forgot a message (it remembers the last
//     Options.Remember), attempt events may repeat: (delivery_id, n)
//     names an attempt.
package events
