// Package source consumes broker messages (NATS JetStream, RabbitMQ, MQTT
// at QoS 1) into routes, through the same engine call an HTTP ingest uses.
//
// Invariants:
//
//   - A broker message is acknowledged only after Engine.Ingest returned
//     without error, that is after the store's MessageInsert committed it
//     durably. Many messages are in flight at once, so their inserts share
//     one commit (group commit).
//   - At most max_in_flight messages of a source are received and not yet
//     settled (acked, nacked or dead-lettered).
//   - A message that can never be accepted (larger than server.max_body,
//     not valid JSON for a JSON content type, a bad idempotency key, an
//     idempotency key reused with another body) becomes a dead letter with
//     its reason, and only then is acknowledged: never redelivered forever,
//     never dropped silently.
//   - A store outage (store.ErrUnavailable), a shutdown, or any error not
//     known to be final negatively acknowledges the message with the
//     source's nak_delay: the broker delivers it again later. (MQTT has no
//     nack: the message is held and tried again every nak_delay, and left
//     unacknowledged for the next session at a stop.)
//   - A broker client's callback joins the in-flight group only while its
//     session is open (runner.join); a session ends by draining it, so no
//     callback is settled on a connection that is gone without the broker
//     delivering its message again.
//
// Publishers (publish.go) publish on_complete summaries: a publish returns
// only once the broker confirmed it (JetStream publish ack, AMQP publisher
// confirm of a routed, mandatory message), so the engine's delivery is
// never fire-and-forget; each attempt carries the same message id.
//
// A dead letter is a message of the route with one delivery, step
// "source", target "source:<name>", inserted scheduled and then completed
// dead with the reason through the ordinary store API (DeliveryClaim then
// DeliveryComplete); the reason is kept in the message's
// Tandem-Dead-Reason header too, so a crash between the insert and the
// completion is finished by the next start (sweep). No engine worker
// claims that target, so the delivery is never sent anywhere.
package source
