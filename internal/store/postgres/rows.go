package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Column lists and scanners shared by every query, so a row always reads
// the same way.

const messageCols = `id, route, status, idempotency_key, body_hash, body, headers, query, created_at, updated_at, traceparent, tracestate`

// messageListCols leaves out the body, headers and query, which lists do
// not show.
const messageListCols = `id, route, status, idempotency_key, body_hash, NULL::bytea, NULL::bytea, NULL::bytea, created_at, updated_at, traceparent, tracestate`

const deliveryCols = `id, message_id, route, step, target, after_steps, required, status, attempts,
	next_attempt_at, lease_owner, last_error, response_status, response_body, response_headers,
	created_at, updated_at, replays, attempts_at_replay, replayed_at,
	lease_token, outcome_unknown, compensate_unknown`

// deliveryColsOf is deliveryCols qualified with a table alias.
func deliveryColsOf(alias string) string {
	fields := strings.Split(deliveryCols, ",")
	for i, f := range fields {
		fields[i] = alias + "." + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

func scanMessage(row pgx.Row) (record.Message, error) {
	var (
		m               record.Message
		key             []byte
		headers, query  []byte
		status          string
		created, update time.Time
	)
	if err := row.Scan(&m.ID, &m.Route, &status, &key, &m.BodyHash, &m.Body, &headers, &query, &created, &update, &m.TraceParent, &m.TraceState); err != nil {
		return m, err
	}
	m.Status = record.MessageStatus(status)
	m.IdempotencyKey = string(key)
	m.CreatedAt, m.UpdatedAt = created.UTC(), update.UTC()
	var err error
	if m.Headers, err = decodeHeaders(headers); err != nil {
		return m, fmt.Errorf("message %s headers: %w", m.ID, err)
	}
	if m.Query, err = decodeHeaders(query); err != nil {
		return m, fmt.Errorf("message %s query: %w", m.ID, err)
	}
	return m, nil
}

func scanDelivery(row pgx.Row) (record.Delivery, error) {
	var (
		d                record.Delivery
		status           string
		next, replayed   pgtype.Timestamptz
		created, updated time.Time
		headers          []byte
		compUnknown      bool
	)
	err := row.Scan(&d.ID, &d.MessageID, &d.Route, &d.Step, &d.Target, &d.After, &d.Required, &status, &d.Attempts,
		&next, &d.LeaseOwner, &d.LastError, &d.ResponseStatus, &d.ResponseBody, &headers,
		&created, &updated, &d.Replays, &d.AttemptsAtReplay, &replayed,
		&d.LeaseToken, &d.OutcomeUnknown, &compUnknown)
	if err != nil {
		return d, err
	}
	d.NoCompensateUnknown = !compUnknown
	d.Status = record.DeliveryStatus(status)
	d.NextAttemptAt = fromTS(next)
	d.ReplayedAt = fromTS(replayed)
	d.CreatedAt, d.UpdatedAt = created.UTC(), updated.UTC()
	if len(d.After) == 0 {
		d.After = nil
	}
	if d.ResponseHeaders, err = decodeHeaders(headers); err != nil {
		return d, fmt.Errorf("delivery %s response headers: %w", d.ID, err)
	}
	return d, nil
}

func collectDeliveries(rows pgx.Rows) ([]record.Delivery, error) {
	defer rows.Close()
	var out []record.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ts is the value stored for t: NULL for the zero time, else t truncated to
// the microsecond PostgreSQL keeps.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: micro(t), Valid: true}
}

func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// micro truncates t to what a timestamptz keeps, in UTC, so values handed
// back from a write equal the ones read later.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

func encodeHeaders(h map[string][]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	return json.Marshal(h)
}

func decodeHeaders(b []byte) (map[string][]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h map[string][]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return h, nil
}

func encodeAfter(after []string) string {
	if len(after) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(after) // []string always marshals
	return string(b)
}

// clean makes s storable in a text column: PostgreSQL refuses NUL bytes and
// invalid UTF-8, and an error text from the network may hold either.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// filter collects the conditions and arguments of a list query.
type filter struct {
	where []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (f *filter) arg(v any) string {
	f.args = append(f.args, v)
	return fmt.Sprintf("$%d", len(f.args))
}

// eq adds "col = v" when v is set.
func (f *filter) eq(col, v string) {
	if v != "" {
		f.where = append(f.where, col+" = "+f.arg(v))
	}
}

// page finishes a newest-first list query: the conditions, the cursor, and
// a limit one past the page, so the caller knows whether another follows.
func (f *filter) page(sel string, cur *store.Cursor, limit int) string {
	if cur != nil {
		f.where = append(f.where, fmt.Sprintf("(created_at, id) < (%s, %s)", f.arg(micro(cur.At)), f.arg(cur.ID)))
	}
	if len(f.where) > 0 {
		sel += " WHERE " + strings.Join(f.where, " AND ")
	}
	return sel + " ORDER BY created_at DESC, id DESC LIMIT " + f.arg(limit+1)
}

// deadLetterQuery selects cols of the deliveries ids, or, with no ids, of
// the dead letters of route and target (each optional), oldest first, at
// most limit (default 1000). With anyStatus, ids may name deliveries that
// are not dead.
func deadLetterQuery(cols string, ids []string, anyStatus bool, route, target string, limit int) (string, []any) {
	var f filter
	if len(ids) > 0 {
		f.where = append(f.where, "id = ANY("+f.arg(ids)+")")
		if !anyStatus {
			f.where = append(f.where, "status = 'dead'")
		}
		return `SELECT ` + cols + ` FROM deliveries WHERE ` + strings.Join(f.where, " AND "), f.args
	}
	if limit <= 0 {
		limit = 1000
	}
	f.where = append(f.where, "status = 'dead'")
	f.eq("route", route)
	f.eq("target", target)
	return `SELECT ` + cols + ` FROM deliveries WHERE ` + strings.Join(f.where, " AND ") +
		` ORDER BY created_at, id LIMIT ` + f.arg(limit), f.args
}
