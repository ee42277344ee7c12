package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelpShown ends a run after --help printed the usage: exit 0.
var errHelpShown = errors.New("help shown")

// usageError is a command line that cannot be run as given (an unknown
// command or flag, a missing argument): exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Exit codes of the tandem command.
const (
	exitOK      = 0 // done, or --help
	exitFailure = 1 // the command ran and failed: a bad config, an error answer, no server
	exitUsage   = 2 // the command line is wrong
)

// exitCode maps Run's error to the process's exit code.
func exitCode(err error) int {
	var u *usageError
	var x *exitError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &x):
		return x.code
	}
	return exitFailure
}

// Main holds the CLI's streams and environment, so tests can run commands.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	// batch is how many dead letters one replay or purge call names;
	// default dlqBatch (tests make it small).
	batch int
	// onFlags, when set, is told of every flag set a command makes (for
	// the completion scripts).
	onFlags func(*flag.FlagSet)
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
		{"sample-targets", "serve the examples' sample APIs on fixed ports (9001...)", (*Main).sampleTargets},
		{"worker", "deliver without the HTTP front: until stopped, or --once what is due", (*Main).worker},
		{"migrate", "apply or show the store's schema migrations", (*Main).migrate},
		{"send", "send one message to a route of a running server", (*Main).send},
		{"messages", "list messages or show one's journey (list|show ID)", (*Main).messages},
		{"dlq", "list, replay or purge dead letters (list|replay|purge)", (*Main).dlq},
		{"health", "check a running server's /healthz (or /readyz): exit 0 when healthy", (*Main).health},
		{"schema", "print the JSON Schema of tandem.yaml, for editors", (*Main).schema},
		{"completion", "print a shell completion script (bash|zsh|fish)", (*Main).completion},
		{"bench", "measure this machine: tandem against baselines, as ratios", (*Main).bench},
		{"version", "print the version", (*Main).printVersion},
	}
}

// Run runs the command named by args[0].
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		m.usage(m.Stderr)
		return usagef("no command given")
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
	return usagef("unknown command %q", args[0])
}

func (m *Main) usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("tandem delivers one inbound request to several HTTP APIs, durably.\n\nUsage: tandem <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-15s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'tandem <command> --help' for a command's flags.\n")
	io.WriteString(w, b.String())
}

// newFlags makes a flag set that prints its usage to stdout on --help and
// reports errors instead of exiting.
func (m *Main) newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if m.onFlags != nil {
		m.onFlags(fs)
	}
	fs.Usage = func() {
		fs.SetOutput(m.Stdout)
		fmt.Fprintf(m.Stdout, "Usage: tandem %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and takes no other argument; --help prints usage and
// yields errHelpShown.
func parse(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), pos[0])
	}
	return nil
}

// parseArgs parses flags wherever they stand, before or after the other
// arguments, and returns those arguments in order; everything after "--"
// is an argument. --help prints usage and yields errHelpShown.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelpShown
		}
		if err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
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
