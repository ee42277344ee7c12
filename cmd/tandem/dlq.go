package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/client"
)

// dlqBatch is how many dead letters one replay or purge call sends: the
// API's cap on ids.
const dlqBatch = 1000

func (m *Main) dlq(ctx context.Context, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return m.groupHelp("dlq", "list [--route R] [--target T] [--limit N] [--cursor C] [--json]",
			"replay (--id ID ... | --route R | --target T | --all) [--limit N] [--json]",
			"purge (--id ID ... | --route R | --target T | --all) [--limit N] [--json]")
	}
	sub, args, err := subcommand(args, "list", "replay", "purge")
	if err != nil {
		return usagef("dlq: %v", err)
	}
	switch sub {
	case "replay", "purge":
		return m.dlqAct(ctx, sub, args)
	}
	return m.dlqList(ctx, args)
}

func (m *Main) dlqList(ctx context.Context, args []string) error {
	fs := m.newFlags("dlq list", "dlq list [--route R] [--target T] [--limit N] [--cursor C] [--json]")
	server, key := m.serverFlags(fs)
	route := fs.String("route", "", "only dead letters of this route")
	target := fs.String("target", "", "only dead letters of this target")
	limit := fs.Int("limit", 100, "page size (1..1000)")
	cursor := fs.String("cursor", "", "the next page: the cursor the previous page printed")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	ds, next, err := client.New(*server, *key).DeadLetters(ctx, client.ListOptions{Route: *route, Target: *target, Limit: *limit, Cursor: *cursor})
	if err != nil {
		return remoteError("dlq list", *server, err)
	}
	if *asJSON {
		return printJSON(m.Stdout, map[string]any{"dead_letters": ds, "next_cursor": next})
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DELIVERY\tMESSAGE\tROUTE\tSTEP\tTARGET\tATTEMPTS\tREASON")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.MessageID, d.Route, d.Step, d.Target, d.Attempts, d.LastError)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printNext(m.Stdout, next)
	return nil
}

// dlqAct replays or purges dead letters. With --id it acts on those ids.
// With a filter (--route, --target, --all) and no --limit, it first lists
// every matching dead letter, then acts on them by id in batches, with a
// progress bar on a terminal: so it knows the total, and a dead letter that
// fails again during a long replay is not replayed twice. With --limit N
// it sends one filtered call for at most N (oldest first).
func (m *Main) dlqAct(ctx context.Context, verb string, args []string) error {
	usage := "dlq " + verb + " (--id ID ... | --route R | --target T | --all) [--limit N] [--json]"
	fs := m.newFlags("dlq "+verb, usage)
	server, key := m.serverFlags(fs)
	route := fs.String("route", "", "the dead letters of this route")
	target := fs.String("target", "", "the dead letters of this target")
	limit := fs.Int("limit", 0, "with a filter: at most this many, oldest first, in one call (1..1000; default: every match, in batches)")
	all := fs.Bool("all", false, "every dead letter")
	var ids multiFlag
	fs.Var(&ids, "id", "a delivery id (repeat for more); not combined with a filter or --limit")
	asJSON := fs.Bool("json", false, "print JSON: {\""+pastTense(verb)+"\": N, \"ids\": [...]}")
	if err := parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	filter := *route != "" || *target != "" || *all
	switch {
	case len(ids) > 0 && (filter || set["limit"]):
		return usagef("dlq %s: --id cannot be combined with --route, --target, --all or --limit", verb)
	case len(ids) == 0 && !filter:
		return usagef("dlq %s: say which dead letters: --id, --route, --target or --all", verb)
	case set["limit"] && (*limit < 1 || *limit > dlqBatch):
		return usagef("dlq %s: --limit must be 1..%d", verb, dlqBatch)
	}
	batch := dlqBatch
	if m.batch > 0 {
		batch = m.batch
	}
	c := client.New(*server, *key)
	var skipped []api.ReplaySkip
	act := func(r client.ReplayRequest) ([]string, error) {
		if verb == "replay" {
			res, err := c.ReplayDetailed(ctx, r)
			if err != nil {
				return nil, err
			}
			skipped = append(skipped, res.Skipped...)
			return res.IDs, nil
		}
		res, err := c.PurgeDeadLetters(ctx, client.PurgeRequest(r))
		if err != nil {
			return nil, err
		}
		return res.IDs, nil
	}
	var done []string
	switch {
	case len(ids) > 0:
		for chunk := range chunks(ids, batch) {
			got, err := act(client.ReplayRequest{IDs: chunk})
			if err != nil {
				return remoteError("dlq "+verb, *server, err)
			}
			done = append(done, got...)
		}
	case set["limit"]:
		got, err := act(client.ReplayRequest{Route: *route, Target: *target, All: *all, Limit: *limit})
		if err != nil {
			return remoteError("dlq "+verb, *server, err)
		}
		done = got
	default:
		todo, err := listDeadIDs(ctx, c, *route, *target)
		if err != nil {
			return remoteError("dlq "+verb, *server, err)
		}
		bar := newProgress(m.Stderr, pastTense(verb), len(todo), isTerminal(m.Stderr) && len(todo) > batch)
		for chunk := range chunks(todo, batch) {
			got, err := act(client.ReplayRequest{IDs: chunk})
			if err != nil {
				bar.end()
				return remoteError("dlq "+verb, *server, err)
			}
			done = append(done, got...)
			bar.add(len(chunk))
		}
		bar.end()
	}
	if done == nil {
		done = []string{}
	}
	if *asJSON {
		out := map[string]any{pastTense(verb): len(done), "ids": done}
		if len(skipped) > 0 {
			out["skipped"] = skipped
		}
		return printJSON(m.Stdout, out)
	}
	fmt.Fprintf(m.Stdout, "%s %d\n", pastTense(verb), len(done))
	for _, sk := range skipped {
		fmt.Fprintf(m.Stdout, "  skipped %s: %s\n", sk.ID, sk.Reason)
	}
	return nil
}

func pastTense(verb string) string {
	if verb == "replay" {
		return "replayed"
	}
	return "purged"
}

// listDeadIDs lists the ids of every dead letter matching the filter.
func listDeadIDs(ctx context.Context, c *client.Client, route, target string) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		ds, next, err := c.DeadLetters(ctx, client.ListOptions{Route: route, Target: target, Limit: dlqBatch, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if next == "" || len(ds) == 0 {
			return ids, nil
		}
		cursor = next
	}
}

// chunks yields s in pieces of at most n.
func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// progress draws a one-line progress bar on a terminal; elsewhere (a pipe,
// a log, a test) it stays silent, so output stays parseable.
type progress struct {
	w           io.Writer
	what        string
	done, total int
	on          bool
}

// newProgress starts a bar when on (a terminal, and more than one batch).
func newProgress(w io.Writer, what string, total int, on bool) *progress {
	p := &progress{w: w, what: what, total: total, on: on}
	p.draw()
	return p
}

func (p *progress) add(n int) {
	p.done += n
	p.draw()
}

func (p *progress) draw() {
	if !p.on {
		return
	}
	const width = 30
	fill := width * p.done / max(p.total, 1)
	fmt.Fprintf(p.w, "\r%s %d/%d [%s%s] %3d%%", p.what, p.done, p.total,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*p.done/max(p.total, 1))
}

func (p *progress) end() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
