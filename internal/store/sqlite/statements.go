package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// statements are prepared once on the write connection and reused by every
// batch, so a write pays for binding and stepping, never for parsing.
type statements struct {
	begin, commit, savepoint, rollbackTo, release *sql.Stmt

	idemGet, msgInsert *sql.Stmt

	claimSelect, claimUpdate *sql.Stmt

	family, attemptInsert, completeUpdate *sql.Stmt
	changeUpdate, deliveryGet, msgStatus  *sql.Stmt

	postpone, deliveryExists *sql.Stmt

	replaySelect, replayWrite, discardSelect *sql.Stmt
}

func (st *statements) list() []struct {
	p   **sql.Stmt
	sql string
} {
	return []struct {
		p   **sql.Stmt
		sql string
	}{
		// IMMEDIATE takes the write lock at once: no deferred-upgrade
		// surprises if another process opened the file.
		{&st.begin, `BEGIN IMMEDIATE`},
		{&st.commit, `COMMIT`},
		{&st.savepoint, `SAVEPOINT op`},
		{&st.rollbackTo, `ROLLBACK TO op`},
		{&st.release, `RELEASE op`},

		// The key <> '' term matches messages_idempotency's condition, which
		// the planner needs before it will use that partial index.
		{&st.idemGet, `SELECT ` + messageCols + ` FROM messages
			WHERE route = ? AND idempotency_key = ? AND idempotency_key <> ''`},
		{&st.msgInsert, `INSERT INTO messages (id, route, status, idempotency_key, body_hash, body, headers, query, created_at, updated_at, traceparent, tracestate)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},

		// The WHERE repeats the partial index's condition word for word, so
		// SQLite can use deliveries_due (see TestClaimUsesIndex).
		{&st.claimSelect, `SELECT rowid FROM deliveries
			WHERE target = ? AND status IN ('scheduled', 'running') AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT ?`},
		// One statement leases them all; the select above only gives the order.
		// Every claim raises the fencing token: the writes that end or move
		// the claim must name it, so an expired claim's late result or
		// postpone changes nothing.
		// A running delivery claimed again is a dead worker's: its request
		// may have gone out, so its outcome is unknown from now on.
		{&st.claimUpdate, `UPDATE deliveries SET status = 'running', lease_owner = ?1, lease_token = lease_token + 1,
			outcome_unknown = CASE WHEN status = 'running' THEN 1 ELSE outcome_unknown END,
			next_attempt_at = ?2, updated_at = ?3
			WHERE rowid IN (SELECT rowid FROM deliveries
				WHERE target = ?4 AND status IN ('scheduled', 'running') AND next_attempt_at <= ?3
				ORDER BY next_attempt_at LIMIT ?5)
			RETURNING rowid, ` + deliveryCols},

		// A delivery's whole family: what record.Family needs to decide, in
		// one statement.
		{&st.family, `SELECT d.rowid, d.id, d.step, d.target, d.after_steps, d.required, d.status, d.attempts,
			d.next_attempt_at, d.lease_owner, d.lease_token, d.last_error, d.outcome_unknown, d.compensate_unknown,
			d.attempts_at_replay, d.replays, m.id, m.status
			FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE d.message_id = (SELECT message_id FROM deliveries WHERE id = ?)`},
		{&st.attemptInsert, `INSERT INTO attempts (delivery_id, n, started_at, duration_ns, http_status, outcome, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.completeUpdate, `UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_owner = '',
			last_error = ?, response_status = ?, response_body = ?, response_headers = ?, outcome_unknown = ?, updated_at = ?
			WHERE rowid = ?`},
		// A change never leaves a delivery running, so it never has a lease.
		{&st.changeUpdate, `UPDATE deliveries SET status = ?1, next_attempt_at = ?2, last_error = ?3, lease_owner = '', updated_at = ?4,
			outcome_unknown = max(outcome_unknown, ?6)
			WHERE rowid = ?5`},
		{&st.deliveryGet, `SELECT ` + deliveryCols + ` FROM deliveries WHERE id = ?`},
		{&st.msgStatus, `UPDATE messages SET status = ?, updated_at = ? WHERE id = ?`},

		{&st.postpone, `UPDATE deliveries SET status = 'scheduled', next_attempt_at = ?1, lease_owner = '',
			last_error = CASE WHEN ?2 = '' THEN last_error ELSE ?2 END, updated_at = ?3
			WHERE id = ?4 AND status = 'running' AND lease_owner = ?5 AND lease_token = ?6`},
		{&st.deliveryExists, `SELECT 1 FROM deliveries WHERE id = ?`},

		{&st.replaySelect, `SELECT id FROM deliveries
			WHERE status = 'dead' AND (?1 = '' OR route = ?1) AND (?2 = '' OR target = ?2)
			ORDER BY created_at, id LIMIT ?3`},
		{&st.replayWrite, `UPDATE deliveries SET status = 'scheduled', next_attempt_at = ?1, lease_owner = '',
			attempts_at_replay = ?2, replayed_at = ?1, replays = ?3, updated_at = ?1
			WHERE rowid = ?4`},
		// A target's open deliveries that nothing holds: waiting, scheduled,
		// or running with an ended lease.
		{&st.discardSelect, `SELECT id FROM deliveries
			WHERE target = ?1 AND (status IN ('waiting', 'scheduled') OR status = 'running' AND next_attempt_at <= ?2)
			ORDER BY created_at, id LIMIT ?3`},
	}
}

// sqlOf returns the SQL of the statement stored at p.
func (st *statements) sqlOf(p **sql.Stmt) string {
	for _, s := range st.list() {
		if s.p == p {
			return s.sql
		}
	}
	return ""
}

func (st *statements) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, s := range st.list() {
		p, err := conn.PrepareContext(ctx, s.sql)
		if err != nil {
			return fmt.Errorf("prepare %.40q: %w", s.sql, err)
		}
		*s.p = p
	}
	return nil
}

func (st *statements) close() {
	for _, s := range st.list() {
		if *s.p != nil {
			(*s.p).Close()
		}
	}
}

// deliveryInsertCols is the column list of a delivery insert; one row binds
// deliveryInsertArgs values.
const (
	deliveryInsertCols = `INSERT INTO deliveries (id, message_id, route, step, target, after_steps, required, status,
	next_attempt_at, created_at, updated_at, compensate_unknown, lease_owner, lease_token) VALUES `
	deliveryInsertArgs = 14
	// maxInsertRows bounds the multi-row insert statements kept prepared;
	// a message with more deliveries inserts them in chunks.
	maxInsertRows = 16
)

// deliveryInsert returns the prepared statement that inserts n deliveries
// (1 <= n <= maxInsertRows) at once, preparing it on first use. Only the
// writer goroutine calls it.
func (t *wtx) deliveryInsert(n int) (*sql.Stmt, error) {
	if st := t.inserts[n]; st != nil {
		return st, nil
	}
	row := "(?" + strings.Repeat(", ?", deliveryInsertArgs-1) + ")"
	q := deliveryInsertCols + row + strings.Repeat(", "+row, n-1)
	st, err := t.conn.PrepareContext(t.ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare delivery insert: %w", err)
	}
	t.inserts[n] = st
	return st, nil
}
