package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/store/migration"
	"github.com/tandem-run/tandem/internal/store/postgres"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// migrate applies (up) or lists (status) the store's schema migrations.
// `tandem serve` applies them at start-up too; this is for those who run
// migrations as a separate step. status only reads: it never creates the
// database nor applies anything.
func (m *Main) migrate(ctx context.Context, args []string) error {
	const usage = "migrate (up|status) --config FILE"
	if len(args) == 0 || args[0] != "up" && args[0] != "status" {
		fs := m.newFlags("migrate", usage)
		m.configFlag(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintf(m.Stderr, "Usage: tandem %s\n", usage)
		return usagef("migrate: say up (apply the pending migrations) or status (list them)")
	}
	action, args := args[0], args[1:]
	fs := m.newFlags("migrate "+action, usage)
	path := m.configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var ms []migration.State
	switch {
	case cfg.Store.Driver == "postgres":
		st, err := postgres.Open(ctx, postgres.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: quiet, SkipMigrate: action == "status"})
		if err != nil {
			return err
		}
		defer st.Close()
		if ms, err = st.MigrationStatus(ctx); err != nil {
			return err
		}
	case action == "status":
		if ms, err = sqlite.MigrationStatusFile(ctx, cfg.Store.DSN); err != nil {
			return fmt.Errorf("sqlite store %s: %w", config.RedactDSN(cfg.Store.DSN), err)
		}
	default:
		// Opening a SQLite store applies its migrations.
		st, err := sqlite.Open(ctx, sqlite.Config{DSN: cfg.Store.DSN, UnsafeAsyncCommit: cfg.Store.UnsafeAsyncCommit, Logger: quiet})
		if err != nil {
			return fmt.Errorf("open sqlite store %s: %w", config.RedactDSN(cfg.Store.DSN), err)
		}
		defer st.Close()
		if ms, err = st.MigrationStatus(ctx); err != nil {
			return err
		}
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tNAME\tAPPLIED")
	for _, s := range ms {
		state := applied(s.AppliedAt)
		if s.Unknown {
			state += " (unknown to this binary: a newer tandem migrated it)"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, s.Name, state)
	}
	return w.Flush()
}

func applied(t time.Time) string {
	if t.IsZero() {
		return "pending"
	}
	return t.UTC().Format(time.RFC3339)
}
