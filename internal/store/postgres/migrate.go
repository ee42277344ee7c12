package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-run/tandem/internal/store/migration"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// lockKey is the advisory lock that serialises migrations of one schema
// across every replica connected to the database.
func (s *Store) lockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("tandem migrate " + s.cfg.Schema))
	return int64(h.Sum64())
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies the pending migrations in one transaction, under a
// transaction-scoped advisory lock: replicas starting together queue on the
// lock, and the ones after the first find nothing left to do. A database
// migrated by a newer tandem (versions this one does not know) is left as
// it is and logged.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migration.Load(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap("migrate", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey()); err != nil {
		return wrap("migrate: lock", err)
	}
	if s.cfg.Schema != "" {
		// Look before creating: CREATE SCHEMA IF NOT EXISTS needs the right
		// to create schemas even when the schema is there, and a user
		// given an existing schema may not have it.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.cfg.Schema).Scan(&exists); err != nil {
			return wrap("migrate: find schema", err)
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.cfg.Schema}.Sanitize()); err != nil {
				return wrap("migrate: create schema", err)
			}
		}
	}
	if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
		return wrap("migrate: create schema_migrations", err)
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return err
	}
	var done []string
	for _, m := range ms {
		if _, ok := applied[m.Version]; ok {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return wrap(fmt.Sprintf("migrate %04d_%s", m.Version, m.Name), err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return wrap("migrate: record version", err)
		}
		done = append(done, fmt.Sprintf("%04d_%s", m.Version, m.Name))
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("migrate: commit", err)
	}
	if len(done) > 0 {
		s.log.Info("postgres migrations applied", "migrations", done, "schema", s.cfg.Schema)
	}
	if len(ms) > 0 {
		last := ms[len(ms)-1].Version
		for v := range applied {
			if v > last {
				s.log.Warn("postgres schema is newer than this tandem", "db_version", v, "known_version", last)
				break
			}
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[int]migration.State, error) {
	rows, err := q.Query(ctx, "SELECT version, name, applied_at FROM schema_migrations")
	if err != nil {
		return nil, wrap("read schema_migrations", err)
	}
	defer rows.Close()
	out := map[int]migration.State{}
	for rows.Next() {
		var m migration.State
		if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
			return nil, wrap("read schema_migrations", err)
		}
		m.Applied, m.AppliedAt = true, m.AppliedAt.UTC()
		out[m.Version] = m
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read schema_migrations", err)
	}
	return out, nil
}

// MigrationStatus lists every migration this tandem knows, and any newer
// one found applied in the database, in version order; pending ones have a
// zero AppliedAt.
func (s *Store) MigrationStatus(ctx context.Context) ([]migration.State, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	ms, err := migration.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, wrap("migration status", err)
	}
	applied := map[int]migration.State{}
	if exists {
		if applied, err = appliedVersions(ctx, s.pool); err != nil {
			return nil, err
		}
	}
	return migration.Status(ms, applied), nil
}
