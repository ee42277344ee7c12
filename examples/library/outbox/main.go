// Command outbox sends sign-ups to a CRM and an email API through a
// durable outbox in a SQLite file (package fanout, fanout.Open): Send
// returns once the message is on disk, and workers in this program
// deliver it. Each sign-up carries an Idempotency-Key, so running the
// program again — after a crash, say — commits nothing twice: Send
// returns the first run's message, and the outbox delivers whatever that
// run left undelivered.
//
//	go run ./examples/library/outbox --file outbox.db      # starts the sample APIs itself
//	CRM_URL=http://127.0.0.1:9005 EMAIL_URL=http://127.0.0.1:9004 go run ./examples/library/outbox
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/fanout"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	file := flag.String("file", "outbox.db", "the outbox's SQLite file")
	flag.Parse()
	if err := run(ctx, os.Stdout, os.Getenv, *file); err != nil {
		fmt.Fprintln(os.Stderr, "outbox:", err)
		os.Exit(1)
	}
}

// run is the program; main only wires the process in.
func run(ctx context.Context, out io.Writer, getenv func(string) string, file string) error {
	crm, email, err := targets(ctx, getenv)
	if err != nil {
		return err
	}
	ob, err := fanout.Open(file, fanout.Config{
		Targets: []fanout.Target{
			{Name: "crm", URL: crm + "/contacts"},
			{Name: "email", URL: email + "/messages", RateLimit: fanout.RateLimit{PerSecond: 50}},
		},
		Plans: []fanout.Plan{{
			Name: "signup",
			Steps: []fanout.Step{
				{Name: "contact", Target: "crm", Body: map[string]any{"email": "{{ request.body.email }}"}},
				{Name: "welcome", Target: "email", Body: map[string]any{"to": "{{ request.body.email }}"}},
			},
		}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer ob.Close(context.Background())

	emails := []string{"ada@example.com", "grace@example.com", "edsger@example.com"}
	ids := make([]string, len(emails))
	for i, e := range emails {
		// Send returns after the commit: from here the sign-up survives
		// this program.
		ids[i], err = ob.Send(ctx, "signup", fanout.Request{JSON: map[string]any{"email": e}, IdempotencyKey: "signup:" + e})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "committed %d sign-ups to %s\n", len(ids), file)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i, id := range ids {
		res, err := ob.Wait(wctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-20s %s (contact %s, welcome %s)\n", emails[i], res.Status, res.Steps["contact"].Status, res.Steps["welcome"].Status)
	}
	return nil
}

// targets returns the CRM and email APIs' base URLs: from CRM_URL and
// EMAIL_URL, or sample APIs started here until ctx ends.
func targets(ctx context.Context, getenv func(string) string) (string, string, error) {
	crm, email := getenv("CRM_URL"), getenv("EMAIL_URL")
	var err error
	if crm == "" {
		if crm, err = sampleapi.CRM().Serve(ctx); err != nil {
			return "", "", err
		}
	}
	if email == "" {
		if email, err = sampleapi.Email().Serve(ctx); err != nil {
			return "", "", err
		}
	}
	return crm, email, nil
}
