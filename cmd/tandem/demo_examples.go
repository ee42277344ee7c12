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

// exampleOptions are demo --example's flags.
type exampleOptions struct {
	keep     string // keep the SQLite database in this directory
	serve    bool   // serve on fixed ports until interrupted instead of sending
	listen   string // the gateway's address with serve
	basePort int    // the first sample API's port with serve
}

// runExample runs examples/<name>.yaml end to end: it starts the sample
// APIs the example calls on loopback (pointing the config's ${env:...}
// URLs at them), serves the gateway with a SQLite store (in a temporary
// directory unless keep is set), sends the example's requests and prints
// each message's timeline. With serve, the APIs and the gateway listen on
// fixed ports and wait for requests from another terminal until ctx ends.
func (m *Main) runExample(ctx context.Context, name string, o exampleOptions) error {
	svcs, err := sampleapi.Example(name)
	if err != nil {
		return usagef("demo: %v", err)
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
		addr := "127.0.0.1:0"
		if o.serve {
			addr = fmt.Sprintf("127.0.0.1:%d", o.basePort+sampleapi.Offsets[env])
		}
		base, err := svcs[env].ServeAddr(ctx, addr)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if err := os.Setenv(env, base); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		urls = append(urls, svcs[env].Name+" on "+base)
	}
	dir := o.keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tandem-example-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("demo: --keep: %w", err)
	}
	var ev *eventsDemo
	if name == "events" {
		getenv := m.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		if ev, err = prepareEvents(ctx, getenv("NATS_URL")); err != nil {
			return err
		}
		defer ev.close()
	}
	file := name + ".yaml"
	data, err := examples.FS.ReadFile(file)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Parse(data, "examples/"+file)
	if err != nil {
		return err
	}
	db := filepath.Join(dir, name+".db")
	cfg.Store.Driver, cfg.Store.DSN = "sqlite", db
	cfg.Server.Listen = "127.0.0.1:0"
	if o.serve {
		cfg.Server.Listen = o.listen
	}
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
	fmt.Fprintf(out, "tandem demo --example %s: gateway on http://%s; sample APIs: %s\n", name, srv.addr, strings.Join(urls, ", "))
	if o.keep != "" {
		fmt.Fprintf(out, "the store is kept in %s\n", db)
	}
	fmt.Fprintln(out)
	if o.serve {
		fmt.Fprintf(out, "Serving until Ctrl-C. From another terminal, try:\n\n")
		if ev != nil {
			printEventsHints(out, srv.addr.String())
		}
		for _, r := range exampleRequests[name] {
			fmt.Fprintf(out, "  # %s\n  tandem send --server http://%s --path %s --data '%s'\n", r.title, srv.addr, r.path, r.body)
		}
		fmt.Fprintf(out, "  tandem messages list --server http://%s\n", srv.addr)
		<-ctx.Done()
		return nil
	}
	c := &exampleClient{base: "http://" + srv.addr.String(), http: &http.Client{Timeout: 10 * time.Second}}
	switch name {
	case "order":
		return exampleOrder(ctx, out, c)
	case "registration":
		return exampleRegistration(ctx, out, c, svcs["EMAIL_URL"], svcs["CRM_URL"])
	case "events":
		return ev.run(ctx, out, c)
	default:
		return examplePublishing(ctx, out, c)
	}
}

// exampleRequest is one request an example sends.
type exampleRequest struct{ title, path, body string }

// exampleRequests are the requests each example sends, in order; with
// --serve they are printed for the user to send.
var exampleRequests = map[string][]exampleRequest{
	"order": {
		{"an order in stock", "/orders", `{"total": 59.5, "customer": "c-1", "items": [{"sku": "tent", "qty": 1}]}`},
		{"an item out of stock: the charge is refunded", "/orders", `{"total": 120, "customer": "c-2", "items": [{"sku": "kayak", "qty": 1}]}`},
		{"no total: the charge cannot be built", "/orders", `{"customer": "c-3", "items": [{"sku": "lamp"}]}`},
	},
	"registration": {
		{"a new user", "/users", `{"email": "Ann@Example.com", "name": "Ann", "plan": "pro"}`},
		{"the same email again (the users API says 409)", "/users", `{"email": "ann@example.com", "name": "Ann"}`},
	},
	"publishing": {
		{"an article", "/articles", `{"title": "Retries without tears", "text": "Backoff, jitter and a durable queue.", "topic": "go", "tags": ["go", "http"]}`},
	},
}

func exampleOrder(ctx context.Context, out io.Writer, c *exampleClient) error {
	fmt.Fprintln(out, "POST /orders (respond: accepted, saga: true)")
	var ids []string
	for _, o := range exampleRequests["order"] {
		id, err := postShow(out, c, o.path, o.title, o.body)
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
	reqs := exampleRequests["registration"]
	id, err := postShow(out, c, reqs[0].path, reqs[0].title, reqs[0].body)
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
	if _, err := postShow(out, c, reqs[1].path, reqs[1].title, reqs[1].body); err != nil {
		return err
	}
	return settleAndShow(ctx, out, c, []string{id})
}

func examplePublishing(ctx context.Context, out io.Writer, c *exampleClient) error {
	fmt.Fprintln(out, "POST /articles (respond: [store]); search and subscribers follow in the background")
	r := exampleRequests["publishing"][0]
	id, err := postShow(out, c, r.path, r.title, r.body)
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
