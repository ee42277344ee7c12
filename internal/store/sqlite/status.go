package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tandem-run/tandem/internal/store/migration"
)

// MigrationStatusFile reports the schema migrations of the database at dsn
// without creating, migrating or locking it, for `tandem migrate status`:
// when the file does not exist, every migration is pending.
func MigrationStatusFile(ctx context.Context, dsn string) ([]migration.State, error) {
	ms, err := migration.Load(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	path := dsnPath(dsn)
	if path == "" || path == ":memory:" {
		return migration.Status(ms, nil), nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return migration.Status(ms, nil), nil
	} else if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	db, err := sql.Open("sqlite", withParams(dsn, "mode=ro", "_pragma=query_only(1)", "_pragma=busy_timeout(10000)"))
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	if n == 0 {
		return migration.Status(ms, nil), nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations`)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	return migration.Status(ms, have), nil
}

// dsnPath is the file a DSN names: "file:tandem.db?x=y" and "tandem.db"
// are both tandem.db.
func dsnPath(dsn string) string {
	p, _, _ := strings.Cut(dsn, "?")
	if rest, ok := strings.CutPrefix(p, "file:"); ok {
		p = rest
		if strings.HasPrefix(p, "///") {
			p = p[2:]
		}
	}
	return p
}
