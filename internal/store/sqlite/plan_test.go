package sqlite

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// queryPlan returns SQLite's EXPLAIN QUERY PLAN for q, one step a line.
// Its parameters are bound to NULL: the plan does not depend on them.
func queryPlan(t *testing.T, s *Store, q string) string {
	t.Helper()
	rows, err := s.rdb.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q)
	for n := 1; err != nil && strings.Contains(err.Error(), "missing") && n <= 20; n++ {
		rows, err = s.rdb.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, make([]any, n)...)
	}
	if err != nil {
		t.Fatalf("explain %q: %v", q, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, detail)
	}
	return b.String()
}

// fullScan matches a plan step that reads a whole table.
var fullScan = regexp.MustCompile(`(?m)^SCAN \w+$`)

// TestQueryPlans checks that every prepared write statement and the list
// and stats queries use an index: a full scan would make them slower as
// the tables grow.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, Config{})
	for _, q := range s.w.tx.st.list() {
		plan := queryPlan(t, s, q.sql)
		if fullScan.MatchString(plan) {
			t.Errorf("full scan in\n%s\nplan:\n%s", q.sql, plan)
		}
	}

	tests := []struct {
		name, sql, want string
	}{
		{"claim", s.w.tx.st.sqlOf(&s.w.tx.st.claimSelect), "USING COVERING INDEX deliveries_due (target=? AND next_attempt_at<?)"},
		{"idempotency", `SELECT id FROM messages WHERE route = ? AND idempotency_key = ? AND idempotency_key <> ''`, "messages_idempotency"},
		{"dead letters", `SELECT id FROM deliveries WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT 10`, "deliveries_dead"},
		{"message list", `SELECT id FROM messages WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT 10`, "messages_created"},
		{"delivery list", `SELECT id FROM deliveries WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT 10`, "deliveries_created"},
		{"stats due", `SELECT target, status, next_attempt_at <= ?, count(*) FROM deliveries WHERE status IN ('scheduled', 'running') GROUP BY 1, 2, 3`, "deliveries_due"},
		{"stats waiting", `SELECT target, count(*) FROM deliveries WHERE status = 'waiting' GROUP BY target`, "deliveries_waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := queryPlan(t, s, tt.sql)
			if !strings.Contains(plan, tt.want) || fullScan.MatchString(plan) {
				t.Fatalf("plan of %s does not use %s:\n%s", tt.sql, tt.want, plan)
			}
			if tt.name == "claim" && strings.Contains(plan, "TEMP B-TREE") {
				t.Fatalf("claim sorts instead of reading the index in order:\n%s", plan)
			}
		})
	}
}
