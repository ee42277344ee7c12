package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/storetest"
)

// openTest opens a fresh store in a temporary directory and closes it when
// the test ends.
func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DSN == "" {
		cfg.DSN = "file:" + filepath.Join(t.TempDir(), "tandem.db")
	}
	s, err := Open(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Fatalf("open %s: %v", cfg.DSN, err)
	return nil
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, Config{}) })
}

// openRaw opens the database file directly, bypassing the store.
func openRaw(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A DSN cannot switch durability off behind tandem's back: a synchronous or
// journal_mode pragma of its own is refused, unless the config says
// store.unsafe_async_commit, and then it is what the connection runs.
func TestDSNCannotWeakenDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tandem.db")
	for _, pragma := range []string{"synchronous(OFF)", "synchronous=NORMAL", "journal_mode(MEMORY)"} {
		_, err := Open(context.Background(), Config{DSN: "file:" + path + "?_pragma=" + pragma})
		if err == nil || !strings.Contains(err.Error(), "unsafe_async_commit") || !strings.Contains(err.Error(), pragma) {
			t.Errorf("%s: error %v, want a refusal that names it and store.unsafe_async_commit", pragma, err)
		}
	}
	s := openTest(t, Config{DSN: "file:" + path + "?_pragma=synchronous(OFF)", UnsafeAsyncCommit: true})
	if s.synchronous != 0 {
		t.Fatalf("with unsafe_async_commit: synchronous %d, want 0 (OFF)", s.synchronous)
	}
	s.Close()
	s = openTest(t, Config{DSN: "file:" + path})
	if s.synchronous != 2 {
		t.Fatalf("by default: synchronous %d, want 2 (FULL)", s.synchronous)
	}
}

// A second store on the same file is refused with a reason while the first
// holds it, and opens once the first has closed.
func TestOneProcessPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tandem.db")
	first := openTest(t, Config{DSN: "file:" + path})
	_, err := Open(context.Background(), Config{DSN: path})
	if err == nil || !strings.Contains(err.Error(), "in use by another tandem process") {
		t.Fatalf("second open: %v, want a refusal", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openTest(t, Config{DSN: path})
	second.Close()
}
