package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// migrate applies (up) or lists (status) the store's schema migrations.
// `tandem serve` applies them at start-up too; this is for those who run
// migrations as a separate step.
func (m *Main) migrate(ctx context.Context, args []string) error {
	action := "up"
	if len(args) > 0 && (args[0] == "up" || args[0] == "status") {
		action, args = args[0], args[1:]
	}
	fs := m.newFlags("migrate", "migrate [up|status] --config FILE")
	path := m.configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED")
	switch cfg.Store.Driver {
	case "postgres":
		st, err := postgres.Open(ctx, postgres.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: quiet, SkipMigrate: action == "status"})
		if err != nil {
			return err
		}
		defer st.Close()
		ms, err := st.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		for _, s := range ms {
			fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, s.Name, applied(s.AppliedAt))
		}
	default:
		// Opening a SQLite store applies its migrations: one process owns
		// the file, so there is no separate step to coordinate.
		st, err := sqlite.Open(ctx, sqlite.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: quiet})
		if err != nil {
			return fmt.Errorf("open sqlite store %s: %w", cfg.Store.DSN, err)
		}
		defer st.Close()
		ms, err := st.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		for _, s := range ms {
			fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, s.Name, applied(s.AppliedAt))
		}
	}
	return nil
}

func applied(t time.Time) string {
	if t.IsZero() {
		return "pending"
	}
	return t.UTC().Format(time.RFC3339)
}
