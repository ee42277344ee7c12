package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// nanos turns a time into the stored form: unix nanoseconds, 0 for unset.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos turns a stored time back into a UTC time; 0 is the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeMap stores a header map as JSON text, or NULL when empty.
func encodeMap(m map[string][]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return string(b), nil
}

func decodeMap(s sql.NullString) (map[string][]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string][]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("decode headers: %w", err)
	}
	return m, nil
}

// encodeList stores a list of step names as JSON text, or NULL when empty.
func encodeList(l []string) (any, error) {
	if len(l) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode after: %w", err)
	}
	return string(b), nil
}

func decodeList(s sql.NullString) ([]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s.String), &l); err != nil {
		return nil, fmt.Errorf("decode after: %w", err)
	}
	return l, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// messageCols are the columns scanMessage reads, in order.
const messageCols = `id, route, status, idempotency_key, body_hash, body, headers, query, created_at, updated_at, traceparent, tracestate`

func scanMessage(sc scanner) (record.Message, error) {
	var (
		m                    record.Message
		headers, query       sql.NullString
		createdAt, updatedAt int64
	)
	err := sc.Scan(&m.ID, &m.Route, &m.Status, &m.IdempotencyKey, &m.BodyHash, &m.Body, &headers, &query, &createdAt, &updatedAt, &m.TraceParent, &m.TraceState)
	if err != nil {
		return m, err
	}
	if m.Headers, err = decodeMap(headers); err != nil {
		return m, err
	}
	if m.Query, err = decodeMap(query); err != nil {
		return m, err
	}
	m.CreatedAt, m.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return m, nil
}

// deliveryCols are the columns scanDelivery reads, in order.
const deliveryCols = `id, message_id, route, step, target, after_steps, required, status, attempts,
	attempts_at_replay, replays, replayed_at, next_attempt_at, lease_owner, last_error,
	response_status, response_body, response_headers, created_at, updated_at,
	lease_token, outcome_unknown, compensate_unknown`

func scanDelivery(sc scanner) (record.Delivery, error) {
	var (
		d                                      record.Delivery
		after, respHeaders                     sql.NullString
		required, unknown, compUnknown         int
		replayedAt, next, createdAt, updatedAt int64
	)
	err := sc.Scan(&d.ID, &d.MessageID, &d.Route, &d.Step, &d.Target, &after, &required, &d.Status, &d.Attempts,
		&d.AttemptsAtReplay, &d.Replays, &replayedAt, &next, &d.LeaseOwner, &d.LastError,
		&d.ResponseStatus, &d.ResponseBody, &respHeaders, &createdAt, &updatedAt,
		&d.LeaseToken, &unknown, &compUnknown)
	if err != nil {
		return d, err
	}
	if d.After, err = decodeList(after); err != nil {
		return d, err
	}
	if d.ResponseHeaders, err = decodeMap(respHeaders); err != nil {
		return d, err
	}
	d.Required, d.OutcomeUnknown, d.NoCompensateUnknown = required != 0, unknown != 0, compUnknown == 0
	d.ReplayedAt, d.NextAttemptAt = fromNanos(replayedAt), fromNanos(next)
	d.CreatedAt, d.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return d, nil
}

// attemptCols are the columns scanAttempt reads, in order.
const attemptCols = `delivery_id, n, started_at, duration_ns, http_status, outcome, error`

func scanAttempt(sc scanner) (record.Attempt, error) {
	var (
		a        record.Attempt
		started  int64
		duration int64
	)
	if err := sc.Scan(&a.DeliveryID, &a.N, &started, &duration, &a.HTTPStatus, &a.Outcome, &a.Error); err != nil {
		return a, err
	}
	a.StartedAt, a.Duration = fromNanos(started), time.Duration(duration)
	return a, nil
}

// unavailable marks errors that say the database cannot do its job right
// now (locked by another process, disk full, I/O error) with
// store.ErrUnavailable, so callers answer 503 and retry, not 500. Other
// errors pass unchanged.
func unavailable(err error) error {
	var se *sqlite.Error
	if err == nil || errors.Is(err, store.ErrUnavailable) || !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}
