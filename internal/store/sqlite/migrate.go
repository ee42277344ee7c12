package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-run/tandem/internal/store/migration"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
)`

// migrate applies the pending migrations, each in its own transaction. It
// refuses a database that a newer binary has migrated further.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migration.Load(migrationFiles, "migrations")
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
	if len(ms) > 0 && top.Int64 > int64(ms[len(ms)-1].Version) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d", top.Int64, ms[len(ms)-1].Version)
	}
	for _, m := range ms {
		applied, err := applyMigration(ctx, conn, m)
		if err != nil {
			return fmt.Errorf("migrate %04d_%s: %w", m.Version, m.Name, err)
		}
		if applied {
			s.log.Info("schema migration applied", "version", m.Version, "name", m.Name)
		}
	}
	return nil
}

// applyMigration runs m unless the database already has it. The check is
// inside the transaction, so two processes starting at once apply it once.
func applyMigration(ctx context.Context, conn *sql.Conn, m migration.Migration) (applied bool, err error) {
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !applied {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return false, err
	}
	return true, nil
}

// MigrationStatus lists every migration this binary knows, and any the
// database has that it does not, in version order.
func (s *Store) MigrationStatus(ctx context.Context) ([]migration.State, error) {
	if s.isClosed() {
		return nil, errClosed
	}
	ms, err := migration.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	defer rows.Close()
	have := map[int]migration.State{}
	for rows.Next() {
		var (
			st migration.State
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
	return migration.Status(ms, have), nil
}
