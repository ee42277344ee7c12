package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
)

// replicaTTL is how long a replica counts as live after its last
// heartbeat; each replica heartbeats every replicaTTL/3, so two lost
// heartbeats in a row do not yet drop it from the count.
const replicaTTL = 15 * time.Second

// startReplica runs the background work a replica does beside serving,
// until ctx ends: wake-ups from other replicas, and heartbeats that count
// the live replicas for shared rate limits (Engine.SetReplicas).
func startReplica(ctx context.Context, st store.Store, eng *engine.Engine, logger *slog.Logger) {
	if l, ok := st.(store.Listener); ok {
		go wakeOnNotice(l.Listen(ctx), eng)
	}
	if hb, ok := st.(store.Heartbeater); ok {
		// The live count divides rate limits marked shared.
		go heartbeat(ctx, hb, eng.Owner(), replicaTTL, replicaTTL/3, eng.SetReplicas, logger)
	}
}

// wakeOnNotice wakes the target named by each notice, and every target on
// "" (the listener has (re)connected and may have missed some), until the
// channel closes.
func wakeOnNotice(notices <-chan string, eng *engine.Engine) {
	for t := range notices {
		if t != "" {
			eng.Wake(t)
			continue
		}
		for name := range eng.Config().Targets {
			eng.Wake(name)
		}
	}
}

// heartbeat records this replica as live every interval until ctx ends,
// and passes the live count to set (when not nil) whenever it changes.
// While the store cannot be reached the last count stands; the failure is
// logged once, and its end once.
func heartbeat(ctx context.Context, hb store.Heartbeater, owner string, ttl, interval time.Duration, set func(int), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last, failing := 0, false
	for {
		n, err := hb.Heartbeat(ctx, owner, time.Now(), ttl)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Warn("replica heartbeat failed; keeping the last replica count", "error", err, "replicas", last)
			}
			failing = true
		default:
			if failing {
				log.Info("replica heartbeat recovered")
			}
			failing = false
			if n != last {
				log.Info("live replicas", "replicas", n, "owner", owner)
				last = n
				if set != nil {
					set(n)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
