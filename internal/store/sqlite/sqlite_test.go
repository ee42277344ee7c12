package sqlite

import (
	"context"
	"log/slog"
	"path/filepath"
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
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, Config{}) })
}
