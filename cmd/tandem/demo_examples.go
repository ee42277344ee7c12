package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tandem-run/tandem/examples"
	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// exampleNames lists what `tandem demo --example` accepts.
func exampleNames() []string { return sampleapi.Names() }

// runExample runs examples/<name>.yaml end to end: it starts the sample
// APIs the example calls on loopback (pointing the config's ${env:...}
// URLs at them), serves the gateway with a throwaway SQLite store, sends
// the example's requests and prints each message's timeline.
func (m *Main) runExample(ctx context.Context, name string) error {
	svcs, err := sampleapi.Example(name)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	envs := make([]string, 0, len(svcs))
	for env := range svcs {
		envs = append(envs, env)
	}
	slices.Sort(envs)
	var urls []string
	for _, env := range envs {
		base, err := svcs[env].Serve(ctx)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if err := os.Setenv(env, base); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		urls = append(urls, svcs[env].Name+" on "+base)
	}
	dir, err := os.MkdirTemp("", "tandem-example-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	file := name + ".yaml"
	data, err := examples.FS.ReadFile(file)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Parse(data, "examples/"+file)
	if err != nil {
		return err
	}
	cfg.Store.Driver, cfg.Store.DSN = "sqlite", filepath.Join(dir, name+".db")
	cfg.Server.Listen = "127.0.0.1:0"
	logger, err := telemetry.NewLogger(m.Stderr, cfg.Log.Format, "error")
	if err != nil {
		return err
	}
	srv, err := start(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	defer srv.stop()
	out := m.Stdout
	fmt.Fprintf(out, "tandem demo --example %s: gateway on http://%s; sample APIs: %s\n\n", name, srv.addr, strings.Join(urls, ", "))
	c := &exampleClient{base: "http://" + srv.addr.String(), http: &http.Client{Timeout: 10 * time.Second}}
	switch name {
	case "order":
		return exampleOrder(ctx, out, c)
	case "registration":
		return exampleRegistration(ctx, out, c, svcs["EMAIL_URL"], svcs["CRM_URL"])
	default:
		return examplePublishing(ctx, out, c)
	}
}

func exampleOrder(ctx context.Context, out io.Writer, c *exampleClient) error {
	orders := []struct{ title, body string }{
		{"an order in stock", `{"total": 59.5, "customer": "c-1", "items": [{"sku": "tent", "qty": 1}]}`},
		{"an item out of stock: the charge is refunded", `{"total": 120, "customer": "c-2", "items": [{"sku": "kayak", "qty": 1}]}`},
		{"no total: the charge cannot be built", `{"customer": "c-3", "items": [{"sku": "lamp"}]}`},
	}
	fmt.Fprintln(out, "POST /orders (respond: accepted, saga: true)")
	var ids []string
	for _, o := range orders {
		id, err := postShow(out, c, "/orders", o.title, o.body)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	return settleAndShow(ctx, out, c, ids)
}

func exampleRegistration(ctx context.Context, out io.Writer, c *exampleClient, email, crm *sampleapi.Service) error {
	fmt.Fprintln(out, "POST /users (respond: [create]); the email API is held until the caller has its answer")
	email.Hold()
	defer email.Release()
	start := time.Now()
	id, err := postShow(out, c, "/users", "a new user", `{"email": "Ann@Example.com", "name": "Ann", "plan": "pro"}`)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   answered after %s, while the welcome email is still waiting\n", time.Since(start).Round(time.Millisecond))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := crm.WaitCalls(wctx, "/contacts", 1); err != nil {
		return err
	}
	fmt.Fprintln(out, "   the CRM update ran in parallel; now the email API answers")
	email.Release()
	if _, err := postShow(out, c, "/users", "the same email again (the users API says 409)", `{"email": "ann@example.com", "name": "Ann"}`); err != nil {
		return err
	}
	return settleAndShow(ctx, out, c, []string{id})
}

func examplePublishing(ctx context.Context, out io.Writer, c *exampleClient) error {
	fmt.Fprintln(out, "POST /articles (respond: [store]); search and subscribers follow in the background")
	id, err := postShow(out, c, "/articles", "an article", `{"title": "Retries without tears", "text": "Backoff, jitter and a durable queue.", "topic": "go", "tags": ["go", "http"]}`)
	if err != nil {
		return err
	}
	return settleAndShow(ctx, out, c, []string{id})
}

// postShow posts body, prints the answer, and returns the message id (from
// the answer's id, message or Location).
func postShow(out io.Writer, c *exampleClient, path, title, body string) (string, error) {
	code, hdr, b, err := c.post(path, body, "")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "   %-48s → %d %s\n", title, code, compactJSON(b))
	var a struct{ ID, Message string }
	_ = json.Unmarshal(b, &a)
	switch {
	case strings.HasPrefix(hdr.Get("Location"), "/v1/messages/"):
		return strings.TrimPrefix(hdr.Get("Location"), "/v1/messages/"), nil
	case a.Message != "":
		return a.Message, nil
	}
	return a.ID, nil
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return strings.TrimSpace(string(b))
	}
	return buf.String()
}

// settleAndShow waits for the messages to settle and prints each one's
// steps and timeline.
func settleAndShow(ctx context.Context, out io.Writer, c *exampleClient, ids []string) error {
	fmt.Fprintln(out, "\nWaiting until every message is settled...")
	if err := c.waitSettled(ctx, ids); err != nil {
		return err
	}
	for _, id := range ids {
		var m struct {
			ID, Route, Status string
			Deliveries        []struct {
				Step, Target, Status, Compensates string
				LastError                         string `json:"last_error"`
			}
			Timeline []struct {
				At                  time.Time
				Step, Event, Detail string
			}
		}
		if err := c.get("/v1/messages/"+id, &m); err != nil {
			return err
		}
		fmt.Fprintf(out, "\n   message %s (%s): %s\n", m.ID, m.Route, m.Status)
		for _, d := range m.Deliveries {
			line := fmt.Sprintf("     %-20s → %-10s %s", d.Step, d.Target, d.Status)
			if d.Status != "succeeded" && d.LastError != "" {
				line += ": " + d.LastError
			}
			fmt.Fprintln(out, line)
		}
		fmt.Fprintln(out, "     timeline:")
		var first time.Time
		for _, e := range m.Timeline {
			if first.IsZero() {
				first = e.At
			}
			fmt.Fprintf(out, "       +%-7s %-20s %-12s %s\n", e.At.Sub(first).Round(time.Millisecond), e.Step, e.Event, e.Detail)
		}
	}
	fmt.Fprintln(out)
	return nil
}

// exampleClient talks to the gateway over HTTP, as a user would.
type exampleClient struct {
	base string
	http *http.Client
}

func (c *exampleClient) post(path, body, key string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("demo: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func (c *exampleClient) get(path string, v any) error {
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		return fmt.Errorf("demo: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("demo: GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitSettled polls the messages until each has a final status.
func (c *exampleClient) waitSettled(ctx context.Context, ids []string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		settled := true
		for _, id := range ids {
			var m struct{ Status string }
			if err := c.get("/v1/messages/"+id, &m); err != nil {
				return err
			}
			switch m.Status {
			case "succeeded", "partially_succeeded", "failed", "compensated":
			default:
				settled = false
			}
		}
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: messages did not settle: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
