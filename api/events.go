package api

// The data of the Server-Sent Events of GET /v1/events and
// GET /v1/messages/{id}/events. A message event's data is a
// MessageSummary.

// DeliveryEvent is the data of a delivery event: a delivery was created
// or its state changed. Its response body is left out (null); read the
// message for it.
type DeliveryEvent struct {
	MessageID string `json:"message_id"`
	Route     string `json:"route"`
	Delivery
}

// AttemptEvent is the data of an attempt event: an attempt was recorded.
type AttemptEvent struct {
	MessageID      string `json:"message_id"`
	Route          string `json:"route"`
	DeliveryID     string `json:"delivery_id"`
	Step           string `json:"step"`
	Target         string `json:"target"`
	DeliveryStatus string `json:"delivery_status" doc:"The delivery's state after the attempt."`
	Attempt
}

// ResetEvent is the data of a reset event: events may have been missed
// (the Last-Event-ID is from another run or replica, older than the
// buffer, or events were lost); reload the state, then go on.
type ResetEvent struct {
	Reason string `json:"reason" enum:"unknown_id,expired,lost"`
	Detail string `json:"detail"`
}
