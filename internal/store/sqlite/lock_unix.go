//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock (flock) on the database file,
// so a second tandem process on the same file is refused at start-up
// instead of fighting the first for the write lock. The kernel drops the
// lock when the process dies, so kill -9 never leaves it behind. flock
// locks are separate from SQLite's own fcntl locks; the descriptor stays
// open until after SQLite has closed the file, because closing any
// descriptor of a file drops the process's fcntl locks on it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another tandem process (one process per SQLite file; use store.driver: postgres for several replicas)", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
