package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// Lease names one claim of a delivery: the delivery, the worker that holds
// it and the claim's fencing token. Every write that ends or moves a claim
// carries it.
type Lease struct {
	DeliveryID string
	Owner      string
	Token      int64
}

// LeaseOf returns the lease of a delivery as DeliveryClaim returned it.
func LeaseOf(d *record.Delivery) Lease {
	return Lease{DeliveryID: d.ID, Owner: d.LeaseOwner, Token: d.LeaseToken}
}

// Response is what a target answered to an attempt, kept with the
// delivery for answers and for later steps' templates.
type Response struct {
	Status  int
	Body    []byte
	Headers map[string][]string
}

// CompleteSucceeded records attempt a as the delivery's success.
func CompleteSucceeded(l Lease, a record.Attempt, r Response) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliverySucceeded, time.Time{}, "")
}

// CompleteRetry records attempt a as a failure to try again at next;
// lastError says why it failed.
func CompleteRetry(l Lease, a record.Attempt, r Response, next time.Time, lastError string) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliveryScheduled, next, lastError)
}

// CompleteDead records attempt a as the delivery's end: a dead letter,
// with reason kept as its last error.
func CompleteDead(l Lease, a record.Attempt, r Response, reason string) *DeliveryCompleteParams {
	return complete(l, a, r, record.DeliveryDead, time.Time{}, reason)
}

func complete(l Lease, a record.Attempt, r Response, st record.DeliveryStatus, next time.Time, lastError string) *DeliveryCompleteParams {
	a.DeliveryID = l.DeliveryID
	return &DeliveryCompleteParams{
		DeliveryID: l.DeliveryID, Owner: l.Owner, LeaseToken: l.Token,
		Attempt: a, Status: st, NextAttemptAt: next, LastError: lastError,
		ResponseStatus: r.Status, ResponseBody: r.Body, ResponseHeaders: r.Headers,
	}
}

// Postpone gives the claim l back, due at at, without counting an attempt
// (breaker open, rate limit, pause, shutdown, too little lease left).
// reason, when not empty, becomes the delivery's last error.
func Postpone(l Lease, at time.Time, reason string) *DeliveryPostponeParams {
	return &DeliveryPostponeParams{DeliveryID: l.DeliveryID, Owner: l.Owner, LeaseToken: l.Token, NextAttemptAt: at, Reason: reason}
}

// errInvalid marks a params struct that no caller should build; drivers
// return it wrapped, before touching the database.
var errInvalid = errors.New("invalid params")

// Validate reports whether p is one of the combinations the constructors
// build. Both drivers call it first, so they refuse the same input.
func (p *DeliveryCompleteParams) Validate() error {
	switch {
	case p.DeliveryID == "":
		return fmt.Errorf("complete delivery: %w: no delivery id", errInvalid)
	case p.Owner == "" || p.LeaseToken <= 0:
		return fmt.Errorf("complete delivery %s: %w: no lease (owner and fencing token are required)", p.DeliveryID, errInvalid)
	case p.Attempt.N <= 0:
		return fmt.Errorf("complete delivery %s: %w: attempt number %d", p.DeliveryID, errInvalid, p.Attempt.N)
	}
	switch p.Status {
	case record.DeliverySucceeded, record.DeliveryDead:
		if !p.NextAttemptAt.IsZero() {
			return fmt.Errorf("complete delivery %s: %w: a %s delivery has no next attempt", p.DeliveryID, errInvalid, p.Status)
		}
	case record.DeliveryScheduled:
	default:
		return fmt.Errorf("complete delivery %s: %w: status %q, want succeeded, scheduled or dead", p.DeliveryID, errInvalid, p.Status)
	}
	return nil
}

// Validate reports whether p names a claim.
func (p *DeliveryPostponeParams) Validate() error {
	switch {
	case p.DeliveryID == "":
		return fmt.Errorf("postpone delivery: %w: no delivery id", errInvalid)
	case p.Owner == "" || p.LeaseToken <= 0:
		return fmt.Errorf("postpone delivery %s: %w: no lease (owner and fencing token are required)", p.DeliveryID, errInvalid)
	}
	return nil
}

// Completion returns p as the write core's input.
func (p *DeliveryCompleteParams) Completion() *record.Completion {
	return &record.Completion{
		DeliveryID: p.DeliveryID, Owner: p.Owner, LeaseToken: p.LeaseToken,
		Attempt: p.Attempt, Status: p.Status, NextAttemptAt: p.NextAttemptAt, LastError: p.LastError,
		Unknown: p.Unknown, ResponseStatus: p.ResponseStatus, ResponseBody: p.ResponseBody, ResponseHeaders: p.ResponseHeaders,
	}
}

// PrepareInsert checks p and returns the message and deliveries to
// insert at now, as both drivers store them: the message accepted, each
// delivery waiting (when it has after steps) or scheduled (due at now
// unless it says otherwise), or running when p.Lease names it and it is
// due, stamped with the message's id and route.
// p is not modified.
func PrepareInsert(p *MessageInsertParams, now time.Time) (record.Message, []record.Delivery, error) {
	m := p.Message
	if m.ID == "" || m.Route == "" {
		return m, nil, fmt.Errorf("insert message: %w: id and route are required", errInvalid)
	}
	if err := checkTraceContext(m.TraceParent, m.TraceState); err != nil {
		return m, nil, fmt.Errorf("insert message %s: %w: %w", m.ID, errInvalid, err)
	}
	m.Status, m.CreatedAt, m.UpdatedAt = record.MessageAccepted, now, now
	var lease map[string]bool
	if l := p.Lease; l != nil && len(l.IDs) > 0 {
		if l.Owner == "" || l.LeaseFor <= 0 {
			return m, nil, fmt.Errorf("insert message %s: %w: a lease needs an owner and a length", m.ID, errInvalid)
		}
		lease = make(map[string]bool, len(l.IDs))
		for _, id := range l.IDs {
			lease[id] = true
		}
	}
	ds := make([]record.Delivery, len(p.Deliveries))
	seen := make(map[string]bool, len(ds))
	for i, d := range p.Deliveries {
		switch {
		case d.ID == "" || d.Step == "" || d.Target == "":
			return m, nil, fmt.Errorf("insert message %s: %w: delivery %d: id, step and target are required", m.ID, errInvalid, i)
		case seen[d.Step]:
			return m, nil, fmt.Errorf("insert message %s: %w: two deliveries of step %q", m.ID, errInvalid, d.Step)
		}
		seen[d.Step] = true
		if d.Status == "" {
			d.Status = record.DeliveryScheduled
			if len(d.After) > 0 {
				d.Status = record.DeliveryWaiting
			}
		}
		if d.Status != record.DeliveryWaiting && d.Status != record.DeliveryScheduled {
			return m, nil, fmt.Errorf("insert message %s: %w: delivery %s: status %q, want waiting or scheduled", m.ID, errInvalid, d.ID, d.Status)
		}
		d.MessageID, d.Route, d.CreatedAt, d.UpdatedAt = m.ID, m.Route, now, now
		d.Attempts, d.LeaseOwner, d.LeaseToken = 0, "", 0
		if d.Status == record.DeliveryScheduled && d.NextAttemptAt.IsZero() {
			d.NextAttemptAt = now
		}
		if lease[d.ID] && d.Status == record.DeliveryScheduled && !d.NextAttemptAt.After(now) {
			d.Status, d.LeaseOwner, d.LeaseToken = record.DeliveryRunning, p.Lease.Owner, 1
			d.NextAttemptAt = now.Add(p.Lease.LeaseFor)
		}
		d.After = slices.Clone(d.After)
		ds[i] = d
	}
	return m, ds, nil
}

// Leased returns the deliveries of ds that PrepareInsert leased, with m
// attached: MessageInsertResult.Leased.
func Leased(m record.Message, ds []record.Delivery) []record.Delivery {
	var out []record.Delivery
	for _, d := range ds {
		if d.Status == record.DeliveryRunning {
			d.Message = &m
			out = append(out, d)
		}
	}
	return out
}

// PageLimit applies the list default (50) and maximum (1000).
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 1000:
		return 1000
	}
	return n
}

// Cursor is a position in a list ordered newest first by (created at, id).
type Cursor struct {
	At time.Time
	ID string
}

// EncodeCursor returns the opaque cursor of the row (at, id); both stores
// hand out the same format.
func EncodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + "." + id))
}

// DecodeCursor reads a cursor from EncodeCursor; nil for "". Anything else
// is ErrInvalidCursor.
func DecodeCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	num, id, ok := strings.Cut(string(b), ".")
	if !ok || id == "" {
		return nil, ErrInvalidCursor
	}
	ns, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return nil, ErrInvalidCursor
	}
	return &Cursor{At: time.Unix(0, ns).UTC(), ID: id}, nil
}

// IsInvalid reports whether err says a params struct was not one the
// constructors build (a caller's bug, refused before any I/O).
func IsInvalid(err error) bool { return errors.Is(err, errInvalid) }

// MessageIDs returns the distinct message ids of ds, in order.
func MessageIDs(ds []record.Delivery) []string {
	ids := make([]string, 0, len(ds))
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		if !seen[d.MessageID] {
			seen[d.MessageID] = true
			ids = append(ids, d.MessageID)
		}
	}
	return ids
}

// AttachMessages sets each delivery's Message from ms, so a worker need
// not read it again (see record.Delivery.Message).
func AttachMessages(ds []record.Delivery, ms []record.Message) {
	byID := make(map[string]*record.Message, len(ms))
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	for i := range ds {
		ds[i].Message = byID[ds[i].MessageID]
	}
}

// Page cuts rows, read with one row more than limit (newest first), to one
// page, and returns the cursor of the next page ("" on the last).
func Page[T any](rows []T, limit int, pos func(*T) (time.Time, string)) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	at, id := pos(&rows[limit-1])
	return rows[:limit], EncodeCursor(at, id)
}

// MessagePos and DeliveryPos give a row's place in a list, for Page.
func MessagePos(m *record.Message) (time.Time, string)   { return m.CreatedAt, m.ID }
func DeliveryPos(d *record.Delivery) (time.Time, string) { return d.CreatedAt, d.ID }

// MaxTraceState is the longest tracestate a message keeps: the 512
// characters W3C Trace Context asks every vendor to carry on.
const MaxTraceState = 512

// checkTraceContext checks a message's trace context: an empty
// traceparent, or a version-00 W3C traceparent with a trace id and a
// parent id that are not all zeros; a tracestate only with a traceparent,
// and at most MaxTraceState bytes.
func checkTraceContext(parent, state string) error {
	if parent == "" {
		if state != "" {
			return errors.New("a tracestate without a traceparent")
		}
		return nil
	}
	if len(state) > MaxTraceState {
		return fmt.Errorf("tracestate is %d bytes, more than %d", len(state), MaxTraceState)
	}
	// 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
	if len(parent) != 55 || parent[2] != '-' || parent[35] != '-' || parent[52] != '-' || parent[:2] != "00" {
		return fmt.Errorf("traceparent %q is not a version-00 W3C traceparent", parent)
	}
	for i, c := range []byte(parent) {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("traceparent %q has a character that is not lower-case hex at offset %d", parent, i)
		}
	}
	if strings.Trim(parent[3:35], "0") == "" || strings.Trim(parent[36:52], "0") == "" {
		return fmt.Errorf("traceparent %q has an all-zero trace or parent id", parent)
	}
	return nil
}
