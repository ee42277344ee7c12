// Command inmemory registers a user and sends the welcome email from a Go
// program, with tandem's engine in the program (package fanout, no
// gateway, no store): the email step waits for the user step and reads
// the new user's id from its answer.
//
//	go run ./examples/library/inmemory                 # starts the sample APIs itself
//	USERS_URL=http://127.0.0.1:9003 EMAIL_URL=http://127.0.0.1:9004 go run ./examples/library/inmemory
package main

import (
	"context"
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
	if err := run(ctx, os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "inmemory:", err)
		os.Exit(1)
	}
}

// run is the program; main only wires the process in.
func run(ctx context.Context, out io.Writer, getenv func(string) string) error {
	users, email, err := targets(ctx, getenv)
	if err != nil {
		return err
	}
	r, err := fanout.New(fanout.Config{
		Targets: []fanout.Target{
			{Name: "users", URL: users + "/users", Timeout: 5 * time.Second},
			{Name: "email", URL: email + "/messages", Retry: fanout.Retry{MaxAttempts: 5, Initial: 100 * time.Millisecond}},
		},
		Plans: []fanout.Plan{{
			Name:     "register",
			Deadline: 10 * time.Second,
			Steps: []fanout.Step{
				{Name: "user", Target: "users"}, // forwards the request's body
				{Name: "welcome", Target: "email", After: []string{"user"}, Body: map[string]any{
					"to":      "{{ request.body.email }}",
					"user_id": "{{ steps.user.body.id }}",
					"subject": "Welcome, {{ request.body.name }}",
				}},
			},
		}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	defer r.Close(context.Background())

	res, err := r.Run(ctx, "register", fanout.Request{JSON: map[string]any{"email": "ada@example.com", "name": "Ada"}})
	if err != nil {
		return err
	}
	var user struct {
		ID string `json:"id"`
	}
	if err := res.Decode("user", &user); err != nil {
		return err
	}
	fmt.Fprintf(out, "register: %s\n", res.Status)
	fmt.Fprintf(out, "  user     %s (%d) id=%s\n", res.Steps["user"].Status, res.Steps["user"].HTTPStatus, user.ID)
	fmt.Fprintf(out, "  welcome  %s (%d)\n", res.Steps["welcome"].Status, res.Steps["welcome"].HTTPStatus)

	// The same email again: the users API answers 409, a permanent
	// failure; the welcome step is skipped, and the result says so.
	res, err = r.Run(ctx, "register", fanout.Request{JSON: map[string]any{"email": "ada@example.com", "name": "Ada"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "register again: %s\n", res.Status)
	fmt.Fprintf(out, "  user     %s (%d)\n", res.Steps["user"].Status, res.Steps["user"].HTTPStatus)
	fmt.Fprintf(out, "  welcome  %s\n", res.Steps["welcome"].Status)
	return nil
}

// targets returns the users and email APIs' base URLs: from USERS_URL and
// EMAIL_URL, or sample APIs started here until ctx ends.
func targets(ctx context.Context, getenv func(string) string) (string, string, error) {
	users, email := getenv("USERS_URL"), getenv("EMAIL_URL")
	var err error
	if users == "" {
		if users, err = sampleapi.Users().Serve(ctx); err != nil {
			return "", "", err
		}
	}
	if email == "" {
		if email, err = sampleapi.Email().Serve(ctx); err != nil {
			return "", "", err
		}
	}
	return users, email, nil
}
