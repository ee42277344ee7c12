package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tandem-run/tandem/examples/sampleapi"
)

// sampleTargets serves the examples' sample APIs on fixed loopback ports
// until interrupted, and prints the environment the example configs read,
// so `tandem serve --config examples/NAME.yaml` can run against them from
// another terminal.
func (m *Main) sampleTargets(ctx context.Context, args []string) error {
	fs := m.newFlags("sample-targets", "sample-targets [--example NAME] [--base-port N]")
	example := fs.String("example", "", "serve only this example's APIs ("+strings.Join(exampleNames(), ", ")+"; default: all)")
	basePort := fs.Int("base-port", sampleapi.DefaultBasePort, "the port of payments; the others follow in a fixed order")
	if err := parse(fs, args); err != nil {
		return err
	}
	names := exampleNames()
	if *example != "" {
		names = []string{*example}
	}
	svcs := map[string]*sampleapi.Service{}
	for _, n := range names {
		s, err := sampleapi.Example(n)
		if err != nil {
			return usagef("sample-targets: %v", err)
		}
		for env, svc := range s {
			svcs[env] = svc
		}
	}
	envs := make([]string, 0, len(svcs))
	for env := range svcs {
		envs = append(envs, env)
	}
	slices.SortFunc(envs, func(a, b string) int { return sampleapi.Offsets[a] - sampleapi.Offsets[b] })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var exports []string
	for _, env := range envs {
		base, err := svcs[env].ServeAddr(ctx, fmt.Sprintf("127.0.0.1:%d", *basePort+sampleapi.Offsets[env]))
		if err != nil {
			return fmt.Errorf("sample-targets: %w", err)
		}
		fmt.Fprintf(m.Stdout, "%-12s %s\n", svcs[env].Name, base)
		exports = append(exports, env+"="+base)
	}
	fmt.Fprintf(m.Stdout, "\nServing until Ctrl-C. In another terminal:\n\n  export %s\n", strings.Join(exports, " "))
	for _, n := range names {
		fmt.Fprintf(m.Stdout, "  tandem serve --config examples/%s.yaml\n", n)
	}
	<-ctx.Done()
	return nil
}
