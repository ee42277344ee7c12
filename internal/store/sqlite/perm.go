package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// privateFiles makes the database file and its -wal and -shm files
// readable by their owner only: they hold message bodies. A new file is
// created 0600 by lockFile, and SQLite gives -wal and -shm the database
// file's mode; a file found with group or other bits loses them here.
func privateFiles(path string) error {
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", f, err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			if err := os.Chmod(f, m&^0o077); err != nil {
				return fmt.Errorf("make %s private (mode 0600): %w", f, err)
			}
		}
	}
	return nil
}
