package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The hot queries must be able to use their indexes: with sequential scans
// off, each plan names the index it was written for. (On a nearly empty
// table the planner would rightly prefer a scan.)
func TestQueryPlans(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		query string
		args  []any
		index string
	}{
		{"claim", claimQuery, []any{"t", now, 16, "w", now.Add(time.Minute)}, "deliveries_due"},
		{"stats", `SELECT target, count(*) FROM deliveries WHERE status IN ('waiting', 'scheduled', 'running', 'dead') GROUP BY target`, nil, "deliveries_open"},
		{"dead letters", `SELECT id FROM deliveries WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT 51`, nil, "deliveries_status_created"},
		{"messages page", `SELECT id FROM messages ORDER BY created_at DESC, id DESC LIMIT 51`, nil, "messages_created"},
		{"idempotency key", winnersSQL, []any{[]string{"r"}, [][]byte{[]byte("k")}}, "messages_idempotency_key"},
		{"family", familySQL, []any{[]string{"d1"}}, "deliveries_message_id_step_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := s.pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				t.Fatal(err)
			}
			plan := explain(t, tx, "EXPLAIN (COSTS OFF) "+tt.query, tt.args...)
			if !strings.Contains(plan, tt.index) {
				t.Fatalf("plan does not use %s:\n%s", tt.index, plan)
			}
		})
	}
}

// explain runs an EXPLAIN statement on q and returns its plan as text.
func explain(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, statement string, args ...any) string {
	t.Helper()
	rows, err := q.Query(context.Background(), statement, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
