package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errHelpShown ends a run after --help printed the usage: exit 0.
var errHelpShown = errors.New("help shown")

// Main holds the CLI's streams and environment, so tests can run commands.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

type command struct {
	name, summary string
	run           func(m *Main, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the gateway and delivery engine", (*Main).serve},
		{"validate", "check a config file and print ok or its errors", (*Main).validate},
		{"demo", "run a self-contained demo with two sample APIs", (*Main).demo},
		{"migrate", "apply or show the store's schema migrations", (*Main).migrate},
		{"send", "send one message to a route of a running server", (*Main).send},
		{"messages", "list messages or show one's journey (list|show ID)", (*Main).messages},
		{"dlq", "list or replay dead letters (list|replay)", (*Main).dlq},
		{"version", "print the version", (*Main).printVersion},
	}
}

// Run runs the command named by args[0].
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		m.usage(m.Stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		m.usage(m.Stdout)
		return nil
	case "--version", "-version":
		return m.printVersion(ctx, nil)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(m, ctx, args[1:])
		}
	}
	m.usage(m.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("tandem delivers one inbound request to several HTTP APIs, durably.\n\nUsage: tandem <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'tandem <command> --help' for a command's flags.\n")
	io.WriteString(w, b.String())
}

// newFlags makes a flag set that prints its usage to stdout on --help and
// reports errors instead of exiting.
func (m *Main) newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(m.Stdout)
		fmt.Fprintf(m.Stdout, "Usage: tandem %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags; --help prints usage and yields errHelpShown.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelpShown
	}
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// configFlag registers --config/-c with its default: $TANDEM_CONFIG or
// ./tandem.yaml.
func (m *Main) configFlag(fs *flag.FlagSet) *string {
	def := "tandem.yaml"
	if v := m.Getenv("TANDEM_CONFIG"); v != "" {
		def = v
	}
	p := fs.String("config", def, "config file (env TANDEM_CONFIG)")
	fs.StringVar(p, "c", def, "shorthand for --config")
	return p
}

func (m *Main) printVersion(_ context.Context, args []string) error {
	fs := m.newFlags("version", "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, "tandem "+version)
	return nil
}
