package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandem-run/tandem/fanout"
)

// quiet keeps the examples' output to what they print.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// jsonAPI is a sample target: it answers fields as JSON, echoing the
// request's "sku" when there is one.
func jsonAPI(fields map[string]any) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		out := map[string]any{}
		for k, v := range fields {
			out[k] = v
		}
		if sku, ok := in["sku"]; ok {
			out["sku"] = sku
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
}

// Two targets called in parallel; the merged result has both answers.
func ExampleRunner_Run() {
	prices := jsonAPI(map[string]any{"price": 12.5})
	defer prices.Close()
	stock := jsonAPI(map[string]any{"in_stock": 3})
	defer stock.Close()

	r, err := fanout.New(fanout.Config{
		Targets: []fanout.Target{
			{Name: "prices", URL: prices.URL},
			{Name: "stock", URL: stock.URL},
		},
		Plans: []fanout.Plan{{
			Name: "product",
			Steps: []fanout.Step{
				{Name: "price", Target: "prices", Body: map[string]any{"sku": "{{ request.body.sku }}"}},
				{Name: "stock", Target: "stock", Body: map[string]any{"sku": "{{ request.body.sku }}"}},
			},
		}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(context.Background())

	res, err := r.Run(context.Background(), "product", fanout.Request{JSON: map[string]any{"sku": "A-1"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	var price struct {
		SKU   string  `json:"sku"`
		Price float64 `json:"price"`
	}
	_ = res.Decode("price", &price)
	fmt.Println(res.Status, res.Steps["price"].Status, res.Steps["stock"].Status)
	fmt.Println(price.SKU, price.Price, string(res.Steps["stock"].Body))
	// Output:
	// succeeded succeeded succeeded
	// A-1 12.5 {"in_stock":3,"sku":"A-1"}
}

// A step that waits for another (After) reads its answer in a template.
// A transient failure (503) is retried with backoff; the step's
// Idempotency-Key is the same on every attempt.
func ExampleStep_after() {
	users := jsonAPI(map[string]any{"id": "u-7"})
	defer users.Close()
	var calls atomic.Int32
	var mu sync.Mutex
	var keys []string
	mail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sent":%s}`, body)
	}))
	defer mail.Close()

	r, err := fanout.New(fanout.Config{
		Targets: []fanout.Target{
			{Name: "users", URL: users.URL},
			{Name: "mail", URL: mail.URL, Retry: fanout.Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond}},
		},
		Plans: []fanout.Plan{{
			Name: "register",
			Steps: []fanout.Step{
				{Name: "user", Target: "users"},
				{Name: "welcome", Target: "mail", After: []string{"user"},
					Body: map[string]any{"to": "{{ steps.user.body.id }}"}},
			},
		}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(context.Background())

	res, err := r.Run(context.Background(), "register", fanout.Request{JSON: map[string]any{"email": "a@example.com"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	w := res.Steps["welcome"]
	fmt.Println(res.Status, w.Attempts, string(w.Body))
	mu.Lock()
	defer mu.Unlock()
	fmt.Println(keys[0] == keys[1], keys[0] == res.ID+".welcome")
	// Output:
	// succeeded 2 {"sent":{"to":"u-7"}}
	// true true
}

// A failed required step does not make Run fail: the Result says which
// steps failed, and a step that waits for it is skipped.
func ExampleResult_partial() {
	ok := jsonAPI(map[string]any{"ok": true})
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such account", http.StatusNotFound) // permanent: not retried
	}))
	defer bad.Close()

	r, err := fanout.New(fanout.Config{
		Targets: []fanout.Target{{Name: "ok", URL: ok.URL}, {Name: "bad", URL: bad.URL}},
		Plans: []fanout.Plan{{
			Name: "sync",
			Steps: []fanout.Step{
				{Name: "a", Target: "ok"},
				{Name: "b", Target: "bad"},
				{Name: "c", Target: "ok", After: []string{"b"}},
			},
		}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(context.Background())
	res, _ := r.Run(context.Background(), "sync", fanout.Request{JSON: map[string]any{}})
	names := make([]string, 0, len(res.Steps))
	for n := range res.Steps {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Println(res.Status, res.OK())
	for _, n := range names {
		s := res.Steps[n]
		fmt.Println(n, s.Status, s.HTTPStatus, s.Attempts)
	}
	// Output:
	// partially_succeeded false
	// a succeeded 200 1
	// b dead 404 1
	// c skipped 0 0
}

// An outbox: Send returns once the message is on disk; the workers in
// this process deliver it; Wait returns the merged result.
func ExampleOpen() {
	crm := jsonAPI(map[string]any{"crm": "ok"})
	defer crm.Close()
	billing := jsonAPI(map[string]any{"billing": "ok"})
	defer billing.Close()
	dir, _ := os.MkdirTemp("", "fanout-example-")
	defer os.RemoveAll(dir)

	ob, err := fanout.Open(filepath.Join(dir, "outbox.db"), fanout.Config{
		Targets: []fanout.Target{{Name: "crm", URL: crm.URL}, {Name: "billing", URL: billing.URL}},
		Plans: []fanout.Plan{{
			Name:  "order",
			Steps: []fanout.Step{{Name: "crm", Target: "crm"}, {Name: "bill", Target: "billing"}},
		}},
		Logger: quiet,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ob.Close(context.Background())

	id, err := ob.Send(context.Background(), "order", fanout.Request{JSON: map[string]any{"order": 42}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := ob.Wait(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Steps["crm"].Status, res.Steps["bill"].Status)
	// Output:
	// succeeded succeeded succeeded
}

// The same plans from a tandem.yaml: each route is a plan of its name.
func ExampleLoadConfig() {
	a := jsonAPI(map[string]any{"a": 1})
	defer a.Close()
	b := jsonAPI(map[string]any{"b": 2})
	defer b.Close()
	dir, _ := os.MkdirTemp("", "fanout-example-")
	defer os.RemoveAll(dir)
	yaml := strings.NewReplacer("A_URL", a.URL, "B_URL", b.URL).Replace(`
targets:
  a: { url: A_URL }
  b: { url: B_URL, retry: { max_attempts: 3 } }
routes:
  - name: both
    path: /both
    steps:
      - { name: a, target: a }
      - { name: b, target: b, body: { from_a: "{{ steps.a.body.a }}" }, after: [a] }
`)
	path := filepath.Join(dir, "tandem.yaml")
	_ = os.WriteFile(path, []byte(yaml), 0o600)

	cfg, err := fanout.LoadConfig(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.Logger = quiet
	r, err := fanout.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(context.Background())
	res, err := r.Run(context.Background(), "both", fanout.Request{JSON: map[string]any{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, string(res.Steps["b"].Body))
	// Output:
	// succeeded {"b":2}
}
