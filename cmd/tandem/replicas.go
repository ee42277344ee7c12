package main

import (
	"context"
	"log/slog"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
)

// startReplica runs the background work a replica does beside serving:
// wake-ups from other replicas (stores that can listen for them).
func startReplica(ctx context.Context, st store.Store, eng *engine.Engine, logger *slog.Logger) {
	if l, ok := st.(interface {
		Listen(context.Context) <-chan string
	}); ok {
		go func() {
			for t := range l.Listen(ctx) {
				eng.Wake(t)
			}
		}()
	}
}
