// Package migration reads a store's numbered schema migrations
// (NNNN_name.sql files) from an embedded file system, so every store
// driver numbers, orders and checks them the same way. Applying them is the
// driver's business: each database has its own way to lock and record.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered SQL file: 0001_init.sql is version 1, named
// "init".
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads every *.sql file of dir in fsys, in version order. A file not
// named NNNN_name.sql, or two files with one version, is an error.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok {
			continue
		}
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migration version %d used twice", out[i].Version)
		}
	}
	return out, nil
}

// State is one schema migration as a database has it, for
// `tandem migrate status`.
type State struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
	// Unknown is true for a version the database has but this binary does
	// not know (the database was migrated by a newer tandem).
	Unknown bool
}

// Status merges the migrations a binary knows with those a database has
// applied (by version): every known one, applied or not, and every applied
// one the binary does not know (Unknown), in version order.
func Status(known []Migration, applied map[int]State) []State {
	have := make(map[int]State, len(applied))
	for v, st := range applied {
		have[v] = st
	}
	out := make([]State, 0, len(known)+len(have))
	for _, m := range known {
		st := State{Version: m.Version, Name: m.Name}
		if a, ok := have[m.Version]; ok {
			st.Applied, st.AppliedAt = true, a.AppliedAt
			delete(have, m.Version)
		}
		out = append(out, st)
	}
	for _, a := range have {
		a.Applied, a.Unknown = true, true
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b State) int { return a.Version - b.Version })
	return out
}
