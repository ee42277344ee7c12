//go:build !unix

package sqlite

import "os"

// lockFile does nothing where flock is not available.
func lockFile(string) (*os.File, error) { return nil, nil }
