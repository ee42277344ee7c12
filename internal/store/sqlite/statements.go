package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// statements are prepared once on the write connection and reused by every
// batch, so a write pays for binding and stepping, never for parsing.
type statements struct {
	begin, commit, savepoint, rollbackTo, release *sql.Stmt

	idemGet, msgInsert, delInsert *sql.Stmt

	claimSelect, claimUpdate *sql.Stmt

	completeGet, attemptInsert, completeUpdate *sql.Stmt
	siblings, changeUpdate, deliveryGet        *sql.Stmt
	msgStatus                                  *sql.Stmt

	postpone, deliveryExists *sql.Stmt

	replaySelect, replayUpdate *sql.Stmt
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
		{&st.msgInsert, `INSERT INTO messages (id, route, status, idempotency_key, body_hash, body, headers, query, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.delInsert, `INSERT INTO deliveries (id, message_id, route, step, target, after_steps, required, status,
			next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},

		// The WHERE repeats the partial index's condition word for word, so
		// SQLite can use deliveries_due (see TestClaimUsesIndex).
		{&st.claimSelect, `SELECT rowid FROM deliveries
			WHERE target = ? AND status IN ('scheduled', 'running') AND next_attempt_at <= ?
			ORDER BY next_attempt_at LIMIT ?`},
		{&st.claimUpdate, `UPDATE deliveries SET status = 'running', lease_owner = ?, next_attempt_at = ?, updated_at = ?
			WHERE rowid = ? RETURNING ` + deliveryCols},

		{&st.completeGet, `SELECT d.rowid, d.status, d.lease_owner, d.attempts, d.message_id, m.status
			FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = ?`},
		{&st.attemptInsert, `INSERT INTO attempts (delivery_id, n, started_at, duration_ns, http_status, outcome, error)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.completeUpdate, `UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_owner = '',
			last_error = ?, response_status = ?, response_body = ?, response_headers = ?, updated_at = ?
			WHERE rowid = ?`},
		{&st.siblings, `SELECT id, step, after_steps, required, status, attempts FROM deliveries WHERE message_id = ?`},
		{&st.changeUpdate, `UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`},
		{&st.deliveryGet, `SELECT ` + deliveryCols + ` FROM deliveries WHERE id = ?`},
		{&st.msgStatus, `UPDATE messages SET status = ?, updated_at = ? WHERE id = ?`},

		{&st.postpone, `UPDATE deliveries SET status = 'scheduled', next_attempt_at = ?1, lease_owner = '',
			last_error = CASE WHEN ?2 = '' THEN last_error ELSE ?2 END, updated_at = ?3
			WHERE id = ?4 AND status = 'running' AND lease_owner = ?5`},
		{&st.deliveryExists, `SELECT 1 FROM deliveries WHERE id = ?`},

		{&st.replaySelect, `SELECT id FROM deliveries
			WHERE status = 'dead' AND (?1 = '' OR route = ?1) AND (?2 = '' OR target = ?2)
			ORDER BY created_at, id LIMIT ?3`},
		{&st.replayUpdate, `UPDATE deliveries SET status = 'scheduled', next_attempt_at = ?1, lease_owner = '',
			attempts_at_replay = attempts, replayed_at = ?1, replays = replays + 1, updated_at = ?1
			WHERE id = ?2 AND status = 'dead' RETURNING ` + deliveryCols},
	}
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
