// Package record holds the value types that the store keeps and the engine
// moves through their states: messages, deliveries and attempts. It imports
// nothing of the project, so store, engine and api can all share it.
package record

import (
	"encoding/json"
	"time"
)

// MessageStatus is the state of a whole message, derived from its deliveries.
type MessageStatus string

// Message states. See docs/states.md for the diagram.
const (
	MessageAccepted           MessageStatus = "accepted"
	MessageRunning            MessageStatus = "running"
	MessageSucceeded          MessageStatus = "succeeded"
	MessagePartiallySucceeded MessageStatus = "partially_succeeded"
	MessageFailed             MessageStatus = "failed"
	MessageCompensated        MessageStatus = "compensated"
)

// Terminal reports whether no delivery of the message will run again
// without a replay.
func (s MessageStatus) Terminal() bool {
	switch s {
	case MessageSucceeded, MessagePartiallySucceeded, MessageFailed, MessageCompensated:
		return true
	}
	return false
}

// Valid reports whether s is one of the message states.
func (s MessageStatus) Valid() bool {
	switch s {
	case MessageAccepted, MessageRunning, MessageSucceeded, MessagePartiallySucceeded, MessageFailed, MessageCompensated:
		return true
	}
	return false
}

// DeliveryStatus is the state of one step of one message.
type DeliveryStatus string

// Delivery states. See docs/states.md for the diagram.
const (
	DeliveryWaiting      DeliveryStatus = "waiting"   // on its after steps
	DeliveryScheduled    DeliveryStatus = "scheduled" // due at NextAttemptAt
	DeliveryRunning      DeliveryStatus = "running"   // leased until NextAttemptAt
	DeliverySucceeded    DeliveryStatus = "succeeded"
	DeliveryDead         DeliveryStatus = "dead" // a dead letter
	DeliverySkipped      DeliveryStatus = "skipped"
	DeliveryCompensating DeliveryStatus = "compensating"
	DeliveryCompensated  DeliveryStatus = "compensated"
	DeliveryCancelled    DeliveryStatus = "cancelled"
)

// Final reports whether the delivery will not run again without a replay.
func (s DeliveryStatus) Final() bool {
	switch s {
	case DeliverySucceeded, DeliveryDead, DeliverySkipped, DeliveryCompensated, DeliveryCancelled:
		return true
	}
	return false
}

// Valid reports whether s is one of the delivery states.
func (s DeliveryStatus) Valid() bool {
	switch s {
	case DeliveryWaiting, DeliveryScheduled, DeliveryRunning, DeliverySucceeded, DeliveryDead,
		DeliverySkipped, DeliveryCompensating, DeliveryCompensated, DeliveryCancelled:
		return true
	}
	return false
}

// Outcome classifies one attempt.
type Outcome string

// Attempt outcomes.
const (
	OutcomeSuccess   Outcome = "success"
	OutcomeTransient Outcome = "transient" // retried
	OutcomePermanent Outcome = "permanent" // dead-lettered at once
)

// Message is one accepted inbound request.
type Message struct {
	ID             string
	Route          string
	Status         MessageStatus
	IdempotencyKey string // inbound Idempotency-Key; empty when none
	BodyHash       string // hex sha256 of Body, to tell a repeat from a conflict
	Body           []byte
	Headers        map[string][]string // inbound headers kept for templates (never auth)
	Query          map[string][]string
	// TraceParent is the W3C traceparent of the message's ingest span
	// (empty when not traced): every attempt's span is its child, on any
	// replica, however late.
	TraceParent string
	// TraceState is the W3C tracestate carried with TraceParent.
	TraceState string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// TraceID returns the W3C trace id of the message's trace, from its
// TraceParent ("" when it was not traced).
func (m *Message) TraceID() string {
	// 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
	if len(m.TraceParent) != 55 || m.TraceParent[2] != '-' {
		return ""
	}
	return m.TraceParent[3:35]
}

// Delivery is one step of one message.
type Delivery struct {
	ID            string
	MessageID     string
	Route         string
	Step          string
	Target        string
	After         []string // steps this one waits for
	Required      bool     // a failure counts against the message status
	Status        DeliveryStatus
	Attempts      int       // attempts made so far (postponements do not count)
	NextAttemptAt time.Time // when scheduled: when due; when running: when the lease ends
	LeaseOwner    string    // worker that holds the lease while running
	// LeaseToken is the fencing token of the delivery's current claim: a
	// number that every claim raises, so a write that ends or moves the
	// claim can prove it comes from this claim and not an expired one. 0
	// when the delivery was never claimed.
	LeaseToken int64
	// OutcomeUnknown: the last attempt may have reached the target without
	// an answer (request written, then a timeout or reset). A saga
	// compensates a dead step whose outcome is unknown, as if it had
	// succeeded, unless NoCompensateUnknown.
	OutcomeUnknown bool
	// NoCompensateUnknown is the step's compensate_unknown: false.
	NoCompensateUnknown bool
	LastError           string
	// Result of the last attempt, kept for answers and for later steps' templates.
	ResponseStatus  int
	ResponseBody    []byte
	ResponseHeaders map[string][]string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// Replays counts how many times a person sent this delivery back to work.
	Replays int
	// AttemptsAtReplay is Attempts at the last replay: the retry budget
	// counts only attempts after it.
	AttemptsAtReplay int
	// ReplayedAt is when the delivery was last replayed (zero if never); the
	// retry max_age counts from it instead of the message's CreatedAt.
	ReplayedAt time.Time
	// Message, when not nil, is the delivery's message (ID, Route, Body,
	// Headers, Query, CreatedAt). Stores may fill it on DeliveryClaim so a
	// worker need not read the message again; other calls leave it nil.
	Message *Message
}

// Attempt is one HTTP try of a delivery.
type Attempt struct {
	DeliveryID string
	N          int // 1-based
	StartedAt  time.Time
	Duration   time.Duration
	HTTPStatus int // 0 when no answer came
	Outcome    Outcome
	Error      string
}

// MessageDetail is a message with its deliveries and their attempts.
type MessageDetail struct {
	Message    Message
	Deliveries []Delivery
	Attempts   map[string][]Attempt // by delivery id, in order
}

// JSONBody returns b as a JSON value when it is valid JSON, else as a JSON
// string, so answers can embed any target's body safely.
func JSONBody(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}
