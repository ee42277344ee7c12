package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandem-run/tandem/internal/config"
)

// validate loads the config and prints every problem in it, one a line
// ("file:line: path: message", in file order), from one pass.
func (m *Main) validate(_ context.Context, args []string) error {
	fs := m.newFlags("validate", "validate --config FILE")
	path := m.configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(m.Stderr, err)
		var errs config.Errors
		if errors.As(err, &errs) && len(errs) > 1 {
			return fmt.Errorf("%s is not valid (%d errors)", *path, len(errs))
		}
		return fmt.Errorf("%s is not valid", *path)
	}
	fmt.Fprintln(m.Stdout, "ok")
	return nil
}
