package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRun runs the program twice on one file: the second run's Sends are
// idempotent repeats and commit nothing new.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	file := filepath.Join(t.TempDir(), "outbox.db")
	for run1 := range 2 {
		var out bytes.Buffer
		if err := run(ctx, &out, func(string) string { return "" }, file); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if strings.Count(got, "succeeded (contact succeeded, welcome succeeded)") != 3 {
			t.Errorf("run %d output:\n%s", run1+1, got)
		}
	}
}
