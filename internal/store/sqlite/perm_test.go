//go:build unix

package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestStoreFilesPrivate: the database file and its -wal and -shm files are
// readable by their owner only (0600), whether tandem creates the file or
// finds it with looser bits.
func TestStoreFilesPrivate(t *testing.T) {
	t.Parallel()
	for _, existing := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "t.db")
		if existing {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx := context.Background()
		st, err := Open(ctx, Config{DSN: "file:" + path})
		if err != nil {
			t.Fatal(err)
		}
		// Open has migrated the schema: the -wal and -shm files exist.
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Errorf("existing=%v: %v", existing, err)
				continue
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("existing=%v: %s has mode %o, want 600", existing, filepath.Base(f), m)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
