package main

import (
	"context"
	"fmt"

	"github.com/tandem-run/tandem/internal/config"
)

func (m *Main) validate(_ context.Context, args []string) error {
	fs := m.newFlags("validate", "validate --config FILE")
	path := m.configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(m.Stderr, err)
		return fmt.Errorf("%s is not valid", *path)
	}
	fmt.Fprintln(m.Stdout, "ok")
	return nil
}
