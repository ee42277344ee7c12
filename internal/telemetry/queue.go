package telemetry

import (
	"context"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

// queueStates are the states of tandem_queue_depth.
var queueStates = []string{"due", "scheduled", "waiting", "running", "dead"}

// StatsReader is the part of a store the queue gauges read.
type StatsReader interface {
	DeliveryStats(ctx context.Context, now *time.Time) ([]store.TargetStats, error)
}

// QueueWatch keeps tandem_queue_depth and tandem_oldest_due_age_seconds
// true: every refresh sets every configured target (0 when it has no
// rows), and a target seen before that has no rows now goes back to 0.
type QueueWatch struct {
	m       *Metrics
	st      StatsReader
	targets []string
	now     func() time.Time
	seen    map[string]bool
}

// NewQueueWatch watches the queues of targets (the configured ones) in
// st; now is the engine's clock (nil: time.Now).
func (m *Metrics) NewQueueWatch(st StatsReader, targets []string, now func() time.Time) *QueueWatch {
	if now == nil {
		now = time.Now
	}
	w := &QueueWatch{m: m, st: st, targets: targets, now: now, seen: map[string]bool{}}
	for _, t := range targets {
		w.seen[t] = true
		w.set(store.TargetStats{Target: t}, time.Time{})
	}
	return w
}

// Refresh reads the store once and sets the gauges.
func (w *QueueWatch) Refresh(ctx context.Context) error {
	if w.m == nil {
		return nil
	}
	now := w.now().UTC()
	stats, err := w.st.DeliveryStats(ctx, &now)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(stats))
	for _, s := range stats {
		have[s.Target] = true
		w.seen[s.Target] = true
		w.set(s, now)
	}
	for t := range w.seen {
		if !have[t] {
			w.set(store.TargetStats{Target: t}, now)
		}
	}
	return nil
}

// Run refreshes every interval until ctx ends; a failed read leaves the
// gauges as they were until the next one.
func (w *QueueWatch) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = w.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *QueueWatch) set(s store.TargetStats, now time.Time) {
	m := w.m
	if m == nil {
		return
	}
	for i, n := range []int{s.Due, s.Scheduled, s.Waiting, s.Running, s.Dead} {
		m.queueDepth.WithLabelValues(s.Target, queueStates[i]).Set(float64(n))
	}
	age := 0.0
	if !s.OldestDue.IsZero() && now.After(s.OldestDue) {
		age = now.Sub(s.OldestDue).Seconds()
	}
	m.oldestDue.WithLabelValues(s.Target).Set(age)
}
