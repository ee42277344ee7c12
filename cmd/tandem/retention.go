package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/store"
)

// retention is the background purge of store.retention: every interval it
// deletes the finished messages whose retention has passed, a small batch
// per store call with a pause between batches, so a large backlog never
// holds the store's writer for long and ingest goes on between batches.
type retention struct {
	st    store.Store
	keep  config.Retention
	log   *slog.Logger
	every time.Duration    // how often a purge runs; default retentionEvery(keep)
	batch int              // messages per store call; default 100
	pause time.Duration    // between batches; default 10ms
	now   func() time.Time // default time.Now
}

// retentionEvery is a tenth of the shortest retention, between 100ms and a
// minute: a message outlives its retention by at most that.
func retentionEvery(keep config.Retention) time.Duration {
	every := time.Minute
	for _, d := range []config.Duration{keep.Succeeded, keep.Failed, keep.Dead} {
		if d > 0 {
			every = min(every, d.D()/10)
		}
	}
	return max(every, 100*time.Millisecond)
}

func (r *retention) defaults() {
	if r.every <= 0 {
		r.every = retentionEvery(r.keep)
	}
	if r.batch <= 0 {
		r.batch = 100
	}
	if r.pause <= 0 {
		r.pause = 10 * time.Millisecond
	}
	if r.now == nil {
		r.now = time.Now
	}
}

// run purges at once and then every r.every, until ctx ends.
func (r *retention) run(ctx context.Context) {
	r.defaults()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("retention purge", "err", err, "purged", n)
		case n > 0:
			r.log.Info("retention purge", "purged", n)
		}
		t.Reset(r.every)
	}
}

// once purges batches until one comes back short, and returns how many
// messages it deleted.
func (r *retention) once(ctx context.Context) (int, error) {
	r.defaults()
	total := 0
	for {
		now := r.now()
		n, err := r.st.MessagePurge(ctx, &store.MessagePurgeParams{
			Succeeded: r.keep.Succeeded.D(), Failed: r.keep.Failed.D(), Dead: r.keep.Dead.D(),
			Limit: r.batch, Now: &now,
		})
		total += n
		if err != nil || n < r.batch {
			return total, err
		}
		// Let the writes queued behind this batch commit before the next.
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(r.pause):
		}
	}
}
