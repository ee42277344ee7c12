package postgres

import (
	"context"
	"slices"
	"testing"
)

// TestAutovacuumSettings: migration 16 gives the hot tables a queue's
// autovacuum settings (docs/postgres.md, "Autovacuum").
func TestAutovacuumSettings(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx := context.Background()
	tests := []struct {
		table string
		want  []string
	}{
		{"deliveries", []string{"autovacuum_vacuum_scale_factor=0.02", "autovacuum_vacuum_cost_delay=0", "fillfactor=80"}},
		{"messages", []string{"autovacuum_vacuum_scale_factor=0.05", "fillfactor=90"}},
		{"attempts", []string{"autovacuum_vacuum_insert_scale_factor=0.05"}},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			var opts []string
			err := s.pool.QueryRow(ctx, `SELECT coalesce(c.reloptions, '{}') FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = current_schema() AND c.relname = $1`, tt.table).Scan(&opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !slices.Contains(opts, w) {
					t.Errorf("reloptions %v: no %s", opts, w)
				}
			}
		})
	}
}
