package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tandem-run/tandem/client"
)

// serverFlags registers --server and --key, defaulting to $TANDEM_SERVER
// (else http://127.0.0.1:8080) and $TANDEM_API_KEY.
func (m *Main) serverFlags(fs *flag.FlagSet) (server, key *string) {
	def := m.Getenv("TANDEM_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	server = fs.String("server", def, "tandem server URL (env TANDEM_SERVER)")
	key = fs.String("key", m.Getenv("TANDEM_API_KEY"), "API key sent as a bearer token (env TANDEM_API_KEY)")
	return server, key
}

// subcommand splits "list|show|..." off args; with none (or a flag first)
// it is the first allowed one.
func subcommand(args []string, allowed ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return allowed[0], args, nil
	}
	for _, a := range allowed {
		if args[0] == a {
			return a, args[1:], nil
		}
	}
	return "", nil, usagef("unknown subcommand %q (want one of %s)", args[0], strings.Join(allowed, ", "))
}

// remoteError explains the error of a call to the server at base: a server
// that does not answer names --server and TANDEM_SERVER, a refused key
// names --key and TANDEM_API_KEY, and a problem's field errors are listed.
func remoteError(op, base string, err error) error {
	var p *client.Problem
	if errors.As(err, &p) {
		var hint string
		switch p.Status {
		case http.StatusUnauthorized:
			hint = " (give an admin key with --key or TANDEM_API_KEY)"
		case http.StatusForbidden:
			hint = " (the key lacks the admin scope, or the server refuses this client)"
		}
		return fmt.Errorf("%s: %w%s", op, err, hint)
	}
	var op2 *net.OpError
	var dns *net.DNSError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) || errors.As(err, &op2) && op2.Op == "dial" {
		return fmt.Errorf("%s: no tandem server answers at %s: %w\n"+
			"  start one with 'tandem serve --config FILE', or point --server (or TANDEM_SERVER) at the running one", op, base, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// groupHelp prints the usage of a command with subcommands: one line per
// subcommand, and how to get each one's flags.
func (m *Main) groupHelp(name string, lines ...string) error {
	for i, l := range lines {
		lead := "Usage:"
		if i > 0 {
			lead = "      "
		}
		fmt.Fprintf(m.Stdout, "%s tandem %s %s\n", lead, name, l)
	}
	fmt.Fprintf(m.Stdout, "\nRun 'tandem %s SUBCOMMAND --help' for its flags.\n", name)
	return errHelpShown
}

func (m *Main) messages(ctx context.Context, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return m.groupHelp("messages", "list [--status S] [--route R] [--limit N] [--cursor C] [--json]", "show ID [--json]")
	}
	sub, args, err := subcommand(args, "list", "show")
	if err != nil {
		return usagef("messages: %v", err)
	}
	if sub == "show" {
		return m.messageShow(ctx, args)
	}
	return m.messageList(ctx, args)
}

func (m *Main) messageShow(ctx context.Context, args []string) error {
	fs := m.newFlags("messages show", "messages show ID [--json]")
	server, key := m.serverFlags(fs)
	asJSON := fs.Bool("json", false, "print the message as JSON (GET /v1/messages/{id})")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("messages show: give one message id (see tandem messages list)")
	}
	c := client.New(*server, *key)
	msg, err := c.Message(ctx, pos[0])
	if err != nil {
		return remoteError("messages show", *server, err)
	}
	if *asJSON {
		return printJSON(m.Stdout, msg)
	}
	printJourney(m.Stdout, msg)
	return nil
}

func (m *Main) messageList(ctx context.Context, args []string) error {
	fs := m.newFlags("messages list", "messages list [--status S] [--route R] [--limit N] [--cursor C] [--json]")
	server, key := m.serverFlags(fs)
	status := fs.String("status", "", "only messages in this status (accepted, running, succeeded, partially_succeeded, failed, compensated)")
	route := fs.String("route", "", "only messages of this route")
	limit := fs.Int("limit", 50, "page size (1..1000)")
	cursor := fs.String("cursor", "", "the next page: the cursor the previous page printed")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	ms, next, err := client.New(*server, *key).Messages(ctx, client.ListOptions{Status: *status, Route: *route, Limit: *limit, Cursor: *cursor})
	if err != nil {
		return remoteError("messages list", *server, err)
	}
	if *asJSON {
		return printJSON(m.Stdout, map[string]any{"messages": ms, "next_cursor": next})
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROUTE\tSTATUS\tCREATED")
	for _, x := range ms {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", x.ID, x.Route, x.Status, x.CreatedAt.Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printNext(m.Stdout, next)
	return nil
}

// printNext tells how to get the next page.
func printNext(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "more: add --cursor %s\n", next)
	}
}

type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printJourney prints a message's deliveries, their attempts and the
// target's last reply.
func printJourney(w io.Writer, m *client.Message) {
	fmt.Fprintf(w, "   message %s (%s): %s\n", m.ID, m.Route, m.Status)
	for _, d := range m.Deliveries {
		extra := ""
		if len(d.After) > 0 {
			extra = " (after " + strings.Join(d.After, ", ") + ")"
		}
		if d.Compensates != "" {
			extra += " (undoes " + d.Compensates + ")"
		}
		fmt.Fprintf(w, "     %-8s → %-9s %s%s\n", d.Step, d.Target, d.Status, extra)
		var first time.Time
		for _, a := range d.Attempts {
			if first.IsZero() {
				first = a.StartedAt
			}
			res := fmt.Sprintf("HTTP %d", a.HTTPStatus)
			if a.HTTPStatus == 0 {
				res = a.Error
			}
			fmt.Fprintf(w, "         attempt %d at +%-6s %-9s (%d ms)\n", a.N, a.StartedAt.Sub(first).Round(time.Millisecond), res, a.DurationMS)
		}
		if r := d.Response; r != nil && (r.HTTPStatus != 0 || len(r.Body) > 0) {
			fmt.Fprintf(w, "         reply: HTTP %d %s\n", r.HTTPStatus, excerpt(r.Body, 200))
		}
		switch {
		case d.Status == "dead" || d.Status == "skipped":
			fmt.Fprintf(w, "         %s: %s\n", map[string]string{"dead": "dead letter", "skipped": "skipped"}[d.Status], d.LastError)
		case d.Status == "scheduled" && d.NextAttemptAt != nil:
			fmt.Fprintf(w, "         next attempt at %s (%s)\n", d.NextAttemptAt.Format(time.RFC3339), d.LastError)
		case d.LastError != "" && d.Status != "succeeded":
			fmt.Fprintf(w, "         %s\n", d.LastError)
		}
	}
	fmt.Fprintln(w)
}

// excerpt is a body on one line, cut to n bytes: compact JSON, or the text.
func excerpt(b []byte, n int) string {
	var buf bytes.Buffer
	s := strings.TrimSpace(string(b))
	if json.Compact(&buf, b) == nil {
		s = buf.String()
	}
	if s == "null" || s == `""` {
		return ""
	}
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
