package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file: migrations/0001_init.sql is version 1,
// named "init".
type migration struct {
	version int
	name    string
	sql     string
}

// MigrationState is one schema migration and whether the database has it.
type MigrationState struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
	// Unknown is true for a version the database has but this binary does
	// not know (the database was migrated by a newer tandem).
	Unknown bool
}

// migrations lists the embedded migrations in version order.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("two migrations have version %d", out[i].version)
		}
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`

// migrate applies the pending migrations, each in its own transaction. It
// refuses a database that a newer binary has migrated further.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var top sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&top); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(ms) > 0 && top.Int64 > int64(ms[len(ms)-1].version) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", top.Int64, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		applied, err := applyMigration(ctx, conn, m)
		if err != nil {
			return fmt.Errorf("migrate %04d_%s: %w", m.version, m.name, err)
		}
		if applied {
			s.log.Info("schema migration applied", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// applyMigration runs m unless the database already has it. The check is
// inside the transaction, so two processes starting at once apply it once.
func applyMigration(ctx context.Context, conn *sql.Conn, m migration) (applied bool, err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !applied {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := conn.ExecContext(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return false, err
	}
	return true, nil
}

// MigrationStatus lists every migration this binary knows, and any the
// database has that it does not, in version order.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	defer rows.Close()
	have := map[int]MigrationState{}
	for rows.Next() {
		var (
			st MigrationState
			at int64
		)
		if err := rows.Scan(&st.Version, &st.Name, &at); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
		st.Applied, st.AppliedAt = true, fromNanos(at)
		have[st.Version] = st
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(ms))
	for _, m := range ms {
		st, ok := have[m.version]
		if !ok {
			st = MigrationState{Version: m.version, Name: m.name}
		}
		delete(have, m.version)
		out = append(out, st)
	}
	for _, st := range have {
		st.Unknown = true
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b MigrationState) int { return a.Version - b.Version })
	return out, nil
}
