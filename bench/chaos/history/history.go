// Package history checks what happened in a chaos run against what tandem
// promises. A history is four records kept apart from tandem and from each
// other: what the clients were acknowledged (Acks), what the targets
// received (Requests, with start, end and outcome), which faults struck
// which process and when (Faults), and what the store says in the end
// (Messages, read through the admin API after the backlog drained).
//
// Check reports:
//
//   - lost: an acknowledged message that is not stored, did not settle, or
//     has a step that never reached its target with a 2xx (or that the
//     store records as succeeded while its target never answered 2xx);
//   - duplicates: a request of an Idempotency-Key after that key's first
//     2xx. It is allowed in a crash window (the sender of the 2xx was
//     killed, stopped, or cut off from its database between the claim
//     that sent that request and the duplicate) and after a lost answer (the store recorded the
//     attempt of the 2xx as failed: the answer never reached tandem);
//     otherwise it is a violation;
//   - concurrent doubles: two requests of one key in flight at the target
//     at once;
//   - saga violations: a forward request after the message's first
//     compensation request, a compensation that started before the
//     compensation of a step downstream of its own was final, a
//     compensation of a step its target never received (unless the store
//     shows an attempt without an answer, which may have reached it), and a
//     step that had its effect but was never compensated although the saga
//     compensated;
//   - two messages stored for one route and Idempotency-Key, and a request
//     that carries no Idempotency-Key.
package history

import (
	"strings"
	"time"
)

// Outcome is what a target did with one request.
type Outcome string

// The outcomes a target records.
const (
	// OK: the target did the work and answered 2xx.
	OK Outcome = "ok"
	// OKReset: the target did the work, then reset the connection before
	// answering (the answer is lost).
	OKReset Outcome = "ok-reset"
	// Fail: a 5xx answer; nothing was done.
	Fail Outcome = "fail"
	// Decline: a permanent 4xx answer; nothing was done.
	Decline Outcome = "decline"
	// RetryAfter: a 429 or 503 with Retry-After; nothing was done.
	RetryAfter Outcome = "retry-after"
	// Reset: the connection was reset before anything was done.
	Reset Outcome = "reset"
	// Abandoned: the client went away (a timeout, a kill) before the
	// target answered; nothing was done. End is when the target noticed.
	Abandoned Outcome = "abandoned"
)

// Effect reports whether the target did the request's work.
func (o Outcome) Effect() bool { return o == OK || o == OKReset }

// Sender names one incarnation of a tandem process: the replica slot
// (0, 1, 2) and the generation, which a restart increments.
type Sender struct {
	Replica int
	Gen     int
}

// Request is one request a target received.
type Request struct {
	Target  string
	Key     string // Idempotency-Key: "{message_id}.{step}"
	Sender  Sender
	Start   time.Time // the handler began
	End     time.Time // the handler answered, reset, or noticed the client gone
	Outcome Outcome
	Status  int // the status answered, 0 when none
}

// FaultKind is a fault that can cut a request off from its record.
type FaultKind string

// The faults that open a crash window.
const (
	Kill      FaultKind = "kill"       // SIGKILL of one incarnation
	Stop      FaultKind = "stop"       // SIGTERM of one incarnation (graceful)
	DBCut     FaultKind = "db-cut"     // the replica's database connections reset
	DBLatency FaultKind = "db-latency" // the replica's database answers late
)

// Fault is one fault on one replica. Kill and Stop name the generation
// they ended (Start is the signal, End when the process was gone); DB
// faults hold from Start to End for every generation of the replica
// (Gen 0).
type Fault struct {
	Kind    FaultKind
	Replica int
	Gen     int
	Start   time.Time
	End     time.Time
}

// hits reports whether the fault struck sender at some moment in [from, to].
func (f Fault) hits(s Sender, from, to time.Time) bool {
	if f.Replica != s.Replica || (f.Gen != 0 && f.Gen != s.Gen) {
		return false
	}
	return !f.Start.After(to) && !f.End.Before(from)
}

// Ack is one message a client got acknowledged (a 202 with its id).
type Ack struct {
	Key       string // the client's Idempotency-Key
	MessageID string
	Route     string
	At        time.Time
}

// Message is one message as the store has it at the end.
type Message struct {
	ID             string
	Route          string
	Status         string
	IdempotencyKey string
	Deliveries     []Delivery
}

// Delivery is one step (or compensation, "<step>.compensate") of a message.
type Delivery struct {
	Step     string
	Status   string
	Replays  int
	Attempts []Attempt
}

// Attempt is one recorded attempt.
type Attempt struct {
	N          int
	Start      time.Time
	Duration   time.Duration
	HTTPStatus int
	Outcome    string // success, transient, permanent
}

// Route is the shape of a route, as its config declares it.
type Route struct {
	Name  string
	Saga  bool
	Steps []Step
}

// Step is one step of a route. Every step is required.
type Step struct {
	Name       string
	After      []string
	Compensate bool
}

// History is everything one run recorded.
type History struct {
	Routes   []Route
	Acks     []Ack
	Requests []Request
	Faults   []Fault
	Messages []Message
}

// CompensationSuffix ends the step name of a compensation delivery.
const CompensationSuffix = ".compensate"

// splitKey splits an Idempotency-Key into message id and step.
func splitKey(key string) (id, step string) {
	id, step, _ = strings.Cut(key, ".")
	return id, step
}
