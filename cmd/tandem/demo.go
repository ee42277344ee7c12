package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/examples"
	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/telemetry"
)

// demo starts two sample APIs and the gateway with examples/demo.yaml,
// sends orders (one flaky, one doomed, one repeated), replays the dead
// letter once the cause is fixed, and prints every message's journey.
func (m *Main) demo(ctx context.Context, args []string) error {
	fs := m.newFlags("demo", "demo [--example NAME [--serve [--listen ADDR] [--base-port N]]] [--keep DIR]")
	keep := fs.String("keep", "", "keep the demo's SQLite database in DIR (default: a temporary directory, removed)")
	example := fs.String("example", "", "run one example ("+strings.Join(exampleNames(), ", ")+") against sample APIs")
	serveIt := fs.Bool("serve", false, "with --example: serve the example and its sample APIs on fixed ports until Ctrl-C, for requests from another terminal")
	listen := fs.String("listen", "127.0.0.1:8080", "with --serve: the gateway's address")
	basePort := fs.Int("base-port", sampleapi.DefaultBasePort, "with --serve: the first sample API's port (payments; the others follow)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *example != "" {
		return m.runExample(ctx, *example, exampleOptions{keep: *keep, serve: *serveIt, listen: *listen, basePort: *basePort})
	}
	if *serveIt {
		return usagef("demo: --serve needs --example NAME (%s)", strings.Join(exampleNames(), ", "))
	}
	dir := *keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tandem-demo-")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	payments := newSampleAPI("payments")
	inventory := newSampleAPI("inventory")
	pSrv, err := payments.serve()
	if err != nil {
		return err
	}
	defer pSrv.Close()
	iSrv, err := inventory.serve()
	if err != nil {
		return err
	}
	defer iSrv.Close()
	os.Setenv("TANDEM_DEMO_PAYMENTS", "http://"+pSrv.Addr)
	os.Setenv("TANDEM_DEMO_INVENTORY", "http://"+iSrv.Addr)
	os.Setenv("TANDEM_DEMO_DB", filepath.Join(dir, "demo.db"))
	data, err := examples.FS.ReadFile("demo.yaml")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := config.Parse(data, "examples/demo.yaml")
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(m.Stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return err
	}
	srv, err := start(ctx, cfg, logger, nil)
	if err != nil {
		return err
	}
	defer srv.stop()
	base := "http://" + srv.addr.String()
	out := m.Stdout
	fmt.Fprintf(out, "tandem demo: gateway on %s, sample APIs payments on %s and inventory on %s\n\n", base, pSrv.Addr, iSrv.Addr)

	c := client.New(base, "")
	// The inventory does not know sku "sea-kayak" yet: that order's
	// reservation is refused with 404 and goes to dead letters.
	orders := []struct{ title, body, key string }{
		{"a plain order", `{"order":"A-1001","card":"ok","sku":"tent"}`, ""},
		{"a card the payments API fails twice with 503", `{"order":"A-1002","card":"flaky","sku":"stove"}`, ""},
		{"an item the inventory does not know (404)", `{"order":"A-1003","card":"ok","sku":"sea-kayak"}`, ""},
		{"an order sent twice with one Idempotency-Key", `{"order":"A-1004","card":"ok","sku":"lamp"}`, "order-A-1004"},
		{"  ... the repeat", `{"order":"A-1004","card":"ok","sku":"lamp"}`, "order-A-1004"},
	}
	var ids []string
	seen := map[string]bool{}
	fmt.Fprintln(out, "1. POST /orders (respond: accepted)")
	for _, o := range orders {
		res, err := c.Send(ctx, "/orders", []byte(o.body), "application/json", o.key)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		code := res.StatusCode
		var a struct{ ID, Status string }
		_ = json.Unmarshal(res.Body, &a)
		extra := ""
		if res.Header.Get("Idempotent-Replayed") == "true" {
			extra = " (repeat: same message, nothing new created)"
		}
		fmt.Fprintf(out, "   %-46s → %d %s%s\n", o.title, code, a.ID, extra)
		if a.ID != "" && !seen[a.ID] {
			seen[a.ID] = true
			ids = append(ids, a.ID)
		}
	}
	fmt.Fprintln(out, "\n2. Waiting until every message is settled (retries run in the background)...")
	if err := waitSettled(ctx, c, ids, 20*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(out)
	for _, id := range ids {
		if err := showJourney(ctx, out, c, id); err != nil {
			return err
		}
	}
	dead, _, err := c.DeadLetters(ctx, client.ListOptions{})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "3. Dead letters: %d\n", len(dead))
	for _, d := range dead {
		fmt.Fprintf(out, "   %s step %s → %s: %s\n", d.MessageID, d.Step, d.Target, d.LastError)
	}
	fmt.Fprintln(out, "\n4. The inventory learns sku \"sea-kayak\"; replaying the dead letters (POST /v1/dead-letters/replay)...")
	inventory.addSKU("sea-kayak")
	replayed, err := c.Replay(ctx, client.ReplayRequest{All: true})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "   → replayed %d: %s\n", len(replayed), strings.Join(replayed, ", "))
	if err := waitSettled(ctx, c, ids, 20*time.Second); err != nil {
		return err
	}
	for _, d := range dead {
		if err := showJourney(ctx, out, c, d.MessageID); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "5. POST /quote (respond: all, durable: false): both APIs in parallel, one merged answer")
	res, err := c.Send(ctx, "/quote", []byte(`{"order":"Q-1","card":"ok","sku":"tent"}`), "application/json", "")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, res.Body, "   ", "  ")
	fmt.Fprintf(out, "   → %d %s\n\n", res.StatusCode, pretty.String())
	fmt.Fprintf(out, "What the sample APIs received: payments %d requests, inventory %d requests;\n", payments.count(), inventory.count())
	fmt.Fprintf(out, "each successful (message, step) reached its API once: payments %v, inventory %v.\n", payments.onceEach(), inventory.onceEach())
	return nil
}

// waitSettled polls until every message is terminal.
func waitSettled(ctx context.Context, c *client.Client, ids []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		settled := true
		for _, id := range ids {
			m, err := c.Message(ctx, id)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			settled = settled && m.Terminal()
		}
		if settled {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("demo: messages did not settle in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func showJourney(ctx context.Context, w io.Writer, c *client.Client, id string) error {
	m, err := c.Message(ctx, id)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	printJourney(w, m)
	return nil
}

// sampleAPI is one of the demo's downstream APIs. Payments fails a "flaky"
// card's first two attempts with 503; inventory answers 404 for unknown
// skus. Both count requests per Idempotency-Key.
type sampleAPI struct {
	name string
	mu   sync.Mutex
	seen map[string]int // Idempotency-Key → requests
	ok   map[string]int // Idempotency-Key → 2xx answers
	skus map[string]bool
}

func newSampleAPI(name string) *sampleAPI {
	return &sampleAPI{name: name, seen: map[string]int{}, ok: map[string]int{},
		skus: map[string]bool{"tent": true, "stove": true, "lamp": true}}
}

func (a *sampleAPI) addSKU(s string) {
	a.mu.Lock()
	a.skus[s] = true
	a.mu.Unlock()
}

func (a *sampleAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.seen {
		n += c
	}
	return n
}

// onceEach reports whether no Idempotency-Key got two 2xx answers.
func (a *sampleAPI) onceEach() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.ok {
		if c > 1 {
			return false
		}
	}
	return true
}

func (a *sampleAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct{ Order, Card, SKU string }
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in)
	key := r.Header.Get("Idempotency-Key")
	a.mu.Lock()
	a.seen[key]++
	n := a.seen[key]
	known := a.skus[in.SKU]
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case a.name == "payments" && in.Card == "flaky" && n <= 2:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"card network busy"}`)
		return
	case a.name == "inventory" && !known:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":"unknown sku %q"}`, in.SKU)
		return
	}
	a.mu.Lock()
	a.ok[key]++
	a.mu.Unlock()
	if a.name == "payments" {
		fmt.Fprintf(w, `{"charge":"ch_%s","order":%q}`, strings.ReplaceAll(in.Order, "-", ""), in.Order)
		return
	}
	fmt.Fprintf(w, `{"reservation":"rs_%s","sku":%q,"left":%d}`, strings.ReplaceAll(in.Order, "-", ""), in.SKU, 3+len(a.sortedSKUs()))
}

func (a *sampleAPI) sortedSKUs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var s []string
	for k := range a.skus {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func (a *sampleAPI) serve() (*http.Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: start %s API: %w", a.name, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}
