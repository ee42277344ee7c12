package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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

// subcommand splits "list|show|..." off args.
func subcommand(args []string, allowed ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return allowed[0], args, nil
	}
	for _, a := range allowed {
		if args[0] == a {
			return a, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("unknown subcommand %q (want one of %s)", args[0], strings.Join(allowed, ", "))
}

func (m *Main) messages(ctx context.Context, args []string) error {
	sub, args, err := subcommand(args, "list", "show")
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	fs := m.newFlags("messages "+sub, "messages list [--status S] [--route R] [--limit N] | messages show ID")
	server, key := m.serverFlags(fs)
	status := fs.String("status", "", "only messages in this status")
	route := fs.String("route", "", "only messages of this route")
	limit := fs.Int("limit", 50, "how many (1..1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	var id string
	if sub == "show" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return errors.New("messages show: give a message id")
		}
		id, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	c := client.New(*server, *key)
	if sub == "show" {
		msg, err := c.Message(ctx, id)
		if err != nil {
			return fmt.Errorf("messages show: %w", err)
		}
		if *asJSON {
			return printJSON(m.Stdout, msg)
		}
		printJourney(m.Stdout, msg)
		return nil
	}
	ms, next, err := c.Messages(ctx, client.ListOptions{Status: *status, Route: *route, Limit: *limit})
	if err != nil {
		return fmt.Errorf("messages list: %w", err)
	}
	if *asJSON {
		return printJSON(m.Stdout, map[string]any{"messages": ms, "next_cursor": next})
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROUTE\tSTATUS\tCREATED")
	for _, x := range ms {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", x.ID, x.Route, x.Status, x.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}

func (m *Main) dlq(ctx context.Context, args []string) error {
	sub, args, err := subcommand(args, "list", "replay")
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	fs := m.newFlags("dlq "+sub, "dlq list [--route R] [--target T] | dlq replay (--id ID ... | --route R | --target T | --all)")
	server, key := m.serverFlags(fs)
	route := fs.String("route", "", "only dead letters of this route")
	target := fs.String("target", "", "only dead letters of this target")
	limit := fs.Int("limit", 100, "how many (1..1000)")
	all := fs.Bool("all", false, "replay: every dead letter")
	var ids multiFlag
	fs.Var(&ids, "id", "replay: a delivery id (repeat for more)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := client.New(*server, *key)
	if sub == "replay" {
		if len(ids) == 0 && *route == "" && *target == "" && !*all {
			return errors.New("dlq replay: say what to replay: --id, --route, --target or --all")
		}
		got, err := c.Replay(ctx, client.ReplayRequest{IDs: ids, Route: *route, Target: *target, All: *all, Limit: *limit})
		if err != nil {
			return fmt.Errorf("dlq replay: %w", err)
		}
		fmt.Fprintf(m.Stdout, "replayed %d\n", len(got))
		return nil
	}
	ds, next, err := c.DeadLetters(ctx, client.ListOptions{Route: *route, Target: *target, Limit: *limit})
	if err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	if *asJSON {
		return printJSON(m.Stdout, map[string]any{"dead_letters": ds, "next_cursor": next})
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DELIVERY\tMESSAGE\tROUTE\tSTEP\tTARGET\tATTEMPTS\tREASON")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.MessageID, d.Route, d.Step, d.Target, d.Attempts, d.LastError)
	}
	return w.Flush()
}

func (m *Main) send(ctx context.Context, args []string) error {
	fs := m.newFlags("send", "send --path /orders [--data JSON | --file FILE] [--idempotency-key K]")
	server, key := m.serverFlags(fs)
	path := fs.String("path", "", "the route's path, e.g. /orders")
	data := fs.String("data", "", "the body to send")
	file := fs.String("file", "", "read the body from this file (- for stdin)")
	ctype := fs.String("content-type", "application/json", "the body's content type")
	idem := fs.String("idempotency-key", "", "an Idempotency-Key for the message")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" || !strings.HasPrefix(*path, "/") {
		return errors.New("send: give --path, starting with /")
	}
	body := []byte(*data)
	if *file != "" {
		var err error
		if *file == "-" {
			body, err = io.ReadAll(os.Stdin)
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	res, err := client.New(*server, *key).Send(ctx, *path, body, *ctype, *idem)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fmt.Fprintf(m.Stdout, "%d", res.StatusCode)
	if res.Location != "" {
		fmt.Fprintf(m.Stdout, " %s", res.Location)
	}
	fmt.Fprintf(m.Stdout, "\n%s\n", strings.TrimSpace(string(res.Body)))
	if res.StatusCode >= 400 {
		return fmt.Errorf("send: the server answered %d", res.StatusCode)
	}
	return nil
}

type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printJourney prints a message's deliveries and their attempts.
func printJourney(w io.Writer, m *client.Message) {
	fmt.Fprintf(w, "   message %s (%s): %s\n", m.ID, m.Route, m.Status)
	for _, d := range m.Deliveries {
		extra := ""
		if len(d.After) > 0 {
			extra = " (after " + strings.Join(d.After, ", ") + ")"
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
		if d.Status == "dead" || d.Status == "skipped" {
			fmt.Fprintf(w, "         %s: %s\n", map[string]string{"dead": "dead letter", "skipped": "skipped"}[d.Status], d.LastError)
		}
		if d.Status == "scheduled" && d.NextAttemptAt != nil {
			fmt.Fprintf(w, "         next attempt at %s (%s)\n", d.NextAttemptAt.Format(time.RFC3339), d.LastError)
		}
	}
	fmt.Fprintln(w)
}
