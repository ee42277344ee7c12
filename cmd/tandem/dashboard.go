package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/events"
	"github.com/tandem-run/tandem/internal/ui"
)

// newDashboard builds the dashboard served at /ui/.
func newDashboard(ctx context.Context, cfg *config.Config, eng *engine.Engine, hub *events.Hub, stream *api.EventStream, reg prometheus.Gatherer, logger *slog.Logger) (http.Handler, error) {
	admin, err := api.NewAdminContext(ctx, eng, cfg, logger)
	if err != nil {
		return nil, err
	}
	return ui.New(ui.Options{
		Engine: eng, Admin: admin, Hub: hub, Stream: stream, Gatherer: reg, Logger: logger,
		TraceLink: cfg.Telemetry.Tracing.Link,
	})
}
