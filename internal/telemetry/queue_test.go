package telemetry

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

type fakeStats struct{ stats []store.TargetStats }

func (f *fakeStats) DeliveryStats(context.Context, *time.Time) ([]store.TargetStats, error) {
	return f.stats, nil
}

// TestQueueWatchReturnsToZero: every configured target has its series
// from the start; a queue that drains goes back to 0, and so does a
// target the config no longer names once its rows are gone.
func TestQueueWatchReturnsToZero(t *testing.T) {
	t.Parallel()
	m, reg := newTestMetrics(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &fakeStats{}
	w := m.NewQueueWatch(st, []string{"payments"}, func() time.Time { return now })
	compare(t, reg, `
# HELP tandem_oldest_due_age_seconds How long the longest-waiting due delivery of a target has been due (0: none due).
# TYPE tandem_oldest_due_age_seconds gauge
tandem_oldest_due_age_seconds{target="payments"} 0
# HELP tandem_queue_depth Deliveries per target and state (due, scheduled, waiting, running, dead).
# TYPE tandem_queue_depth gauge
tandem_queue_depth{state="dead",target="payments"} 0
tandem_queue_depth{state="due",target="payments"} 0
tandem_queue_depth{state="running",target="payments"} 0
tandem_queue_depth{state="scheduled",target="payments"} 0
tandem_queue_depth{state="waiting",target="payments"} 0
`, "tandem_queue_depth", "tandem_oldest_due_age_seconds")

	st.stats = []store.TargetStats{
		{Target: "payments", Due: 4, Scheduled: 2, Waiting: 1, Running: 3, Dead: 1, OldestDue: now.Add(-90 * time.Second)},
		{Target: "removed", Due: 1, OldestDue: now.Add(-time.Hour)},
	}
	if err := w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	compare(t, reg, `
# HELP tandem_oldest_due_age_seconds How long the longest-waiting due delivery of a target has been due (0: none due).
# TYPE tandem_oldest_due_age_seconds gauge
tandem_oldest_due_age_seconds{target="payments"} 90
tandem_oldest_due_age_seconds{target="removed"} 3600
# HELP tandem_queue_depth Deliveries per target and state (due, scheduled, waiting, running, dead).
# TYPE tandem_queue_depth gauge
tandem_queue_depth{state="dead",target="payments"} 1
tandem_queue_depth{state="due",target="payments"} 4
tandem_queue_depth{state="running",target="payments"} 3
tandem_queue_depth{state="scheduled",target="payments"} 2
tandem_queue_depth{state="waiting",target="payments"} 1
tandem_queue_depth{state="dead",target="removed"} 0
tandem_queue_depth{state="due",target="removed"} 1
tandem_queue_depth{state="running",target="removed"} 0
tandem_queue_depth{state="scheduled",target="removed"} 0
tandem_queue_depth{state="waiting",target="removed"} 0
`, "tandem_queue_depth", "tandem_oldest_due_age_seconds")

	// Drained: the store has no rows for either target any more.
	st.stats = nil
	if err := w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	compare(t, reg, `
# HELP tandem_oldest_due_age_seconds How long the longest-waiting due delivery of a target has been due (0: none due).
# TYPE tandem_oldest_due_age_seconds gauge
tandem_oldest_due_age_seconds{target="payments"} 0
tandem_oldest_due_age_seconds{target="removed"} 0
# HELP tandem_queue_depth Deliveries per target and state (due, scheduled, waiting, running, dead).
# TYPE tandem_queue_depth gauge
tandem_queue_depth{state="dead",target="payments"} 0
tandem_queue_depth{state="due",target="payments"} 0
tandem_queue_depth{state="running",target="payments"} 0
tandem_queue_depth{state="scheduled",target="payments"} 0
tandem_queue_depth{state="waiting",target="payments"} 0
tandem_queue_depth{state="dead",target="removed"} 0
tandem_queue_depth{state="due",target="removed"} 0
tandem_queue_depth{state="running",target="removed"} 0
tandem_queue_depth{state="scheduled",target="removed"} 0
tandem_queue_depth{state="waiting",target="removed"} 0
`, "tandem_queue_depth", "tandem_oldest_due_age_seconds")
}
