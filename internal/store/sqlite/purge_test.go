package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

// TestPurgePlans: the retention query walks messages_created (no full scan
// of messages, no sort) and finds a message's dead letters by index.
func TestPurgePlans(t *testing.T) {
	s := openTest(t, Config{})
	q, _ := purgeQuery(&store.MessagePurgeParams{Succeeded: time.Hour, Failed: 2 * time.Hour, Dead: 3 * time.Hour}, time.Now())
	plan := queryPlan(t, s, q)
	if !strings.Contains(plan, "messages_created") || !strings.Contains(plan, "deliveries_message") ||
		fullScan.MatchString(plan) || strings.Contains(plan, "TEMP B-TREE") {
		t.Fatalf("plan of the retention query:\n%s\n%s", q, plan)
	}
	if q, _ := purgeQuery(&store.MessagePurgeParams{}, time.Now()); q != "" {
		t.Errorf("no retention still queries: %s", q)
	}
}
