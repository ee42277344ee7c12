package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// edgeRig is a real server (engine, SQLite store, HTTP listener configured
// by ConfigureServer) loaded from a config file in a temp dir.
type edgeRig struct {
	*rig
	cfg *config.Config
}

// newEdgeRig writes yaml (and files, by name) to a temp dir, loads it and
// serves it.
func newEdgeRig(t *testing.T, yaml string, files map[string]string) *edgeRig {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "tandem.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(dir, "t.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quietLogger(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: eng, Logger: quietLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{eng: eng, store: st, handler: h}
	r.srv = httptest.NewUnstartedServer(h)
	ConfigureServer(r.srv.Config, cfg)
	r.srv.Start()
	t.Cleanup(func() {
		r.srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return &edgeRig{rig: r, cfg: cfg}
}

// TestAdminGuard: the admin API answers only loopback Host names and
// server.hosts (421 otherwise), refuses cross-site requests unless CORS
// allows the origin (403), and wants JSON on requests that change state
// (415). Routes answer any Host.
func TestAdminGuard(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Server.Hosts = []string{"gateway.example", "[2001:db8::1]"}
	cfg.Server.CORS = &config.CORS{AllowedOrigins: []string{"https://ops.example"}, AllowedMethods: []string{"GET", "POST"}, AllowedHeaders: []string{"Content-Type"}}
	h := newHandler(t, cfg)
	tests := []struct {
		name, method, path string
		header             map[string]string
		want               int
		kind               string
	}{
		{"localhost", "GET", "/v1/targets", map[string]string{"Host": "localhost"}, 200, ""},
		{"localhost with port", "GET", "/v1/targets", map[string]string{"Host": "localhost:8080"}, 200, ""},
		{"localhost, upper case, dot", "GET", "/v1/targets", map[string]string{"Host": "LOCALHOST.:8080"}, 200, ""},
		{"127.0.0.1", "GET", "/v1/targets", map[string]string{"Host": "127.0.0.1:1"}, 200, ""},
		{"::1", "GET", "/v1/targets", map[string]string{"Host": "[::1]:8080"}, 200, ""},
		{"server.hosts", "GET", "/v1/targets", map[string]string{"Host": "gateway.example"}, 200, ""},
		{"server.hosts, other case and port", "GET", "/v1/targets", map[string]string{"Host": "Gateway.Example:443"}, 200, ""},
		{"server.hosts IPv6", "GET", "/v1/targets", map[string]string{"Host": "[2001:db8::1]:80"}, 200, ""},
		{"rebinding name", "GET", "/v1/targets", map[string]string{"Host": "attacker.example"}, 421, tapi.TypeMisdirected},
		{"rebinding name with the loopback port", "GET", "/openapi.json", map[string]string{"Host": "attacker.example:8080"}, 421, tapi.TypeMisdirected},
		{"a suffix of an allowed name", "GET", "/metrics", map[string]string{"Host": "evilgateway.example"}, 421, tapi.TypeMisdirected},
		{"localhost as a subdomain", "GET", "/v1/targets", map[string]string{"Host": "localhost.attacker.example"}, 421, tapi.TypeMisdirected},
		{"another loopback address", "GET", "/v1/targets", map[string]string{"Host": "127.0.0.2"}, 421, tapi.TypeMisdirected},
		{"empty Host", "GET", "/v1/targets", map[string]string{"Host": ""}, 421, tapi.TypeMisdirected},
		{"cross-site", "GET", "/v1/targets", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, tapi.TypeForbidden},
		{"cross-site from a CORS origin", "GET", "/v1/targets", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://ops.example"}, 200, ""},
		{"cross-site from another origin", "GET", "/v1/targets", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403, tapi.TypeForbidden},
		{"same-site", "GET", "/v1/targets", map[string]string{"Sec-Fetch-Site": "same-site"}, 200, ""},
		{"POST without a content type", "POST", "/v1/dead-letters/replay", nil, 415, tapi.TypeUnsupportedMediaType},
		{"POST as a form", "POST", "/v1/deliveries/x/replay", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, tapi.TypeUnsupportedMediaType},
		{"POST as text/plain", "POST", "/v1/dead-letters/replay", map[string]string{"Content-Type": "text/plain"}, 415, tapi.TypeUnsupportedMediaType},
		{"POST as JSON passes the guard", "POST", "/v1/dead-letters/replay", map[string]string{"Content-Type": "application/json; charset=utf-8"}, 503, tapi.TypeUnavailable},
		{"a route answers any Host", "POST", "/orders", map[string]string{"Host": "attacker.example", "Sec-Fetch-Site": "cross-site"}, 503, tapi.TypeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(`{"all":true}`)
			w := call(t, h, tt.method, tt.path, loopback, body, tt.header)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.kind != "" {
				var p tapi.Problem
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Type != tt.kind || w.Header().Get("Content-Type") != problemContentType {
					t.Errorf("answer %s %s, want a %s problem", w.Header().Get("Content-Type"), w.Body, tt.kind)
				}
			}
		})
	}
}

const schemaYAML = `
targets:
  ok: { url: %q }
routes:
  - name: orders
    path: /orders
    schema: schemas/order.json
    steps: [{ name: charge, target: ok }]
  - name: inline
    path: /inline
    respond: all
    durable: false
    schema: { type: object, required: [id], properties: { id: { type: string, minLength: 2 } } }
    steps: [{ name: charge, target: ok }]
`

const orderSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["sku", "qty"],
  "properties": {
    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
    "qty": {"type": "integer", "minimum": 1},
    "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}}
  },
  "$defs": {"line": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}
}`

// TestRouteSchema: a body that fails its route's JSON Schema answers 422
// with each violation's JSON pointer and message, and nothing is stored or
// sent; a body that passes goes through. The schema is the route's request
// body in /openapi.json.
func TestRouteSchema(t *testing.T) {
	t.Parallel()
	tg := newTestTarget(t, 200)
	r := newEdgeRig(t, fmt.Sprintf(schemaYAML, tg.srv.URL), map[string]string{"schemas/order.json": orderSchema})
	json422 := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name, path, body string
		want             []string // pointer: message fragment
	}{
		{"missing fields", "/orders", `{}`, []string{`"": missing properties`}},
		{"wrong types", "/orders", `{"sku": 7, "qty": 0}`, []string{`/sku: got number, want string`, `/qty: minimum`}},
		{"a bad pattern", "/orders", `{"sku": "abc", "qty": 1}`, []string{`/sku: does not match pattern`}},
		{"deep in a $defs ref", "/orders", `{"sku": "ABC-1", "qty": 1, "lines": [{"n": 1}, {"n": "x"}, {}]}`, []string{`/lines/1/n: got string, want integer`, `/lines/2: missing property`}},
		{"not an object", "/orders", `[1]`, []string{`"": got array, want object`}},
		{"inline schema", "/inline", `{"id": "x"}`, []string{`/id: minLength`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := r.do(t, "POST", tt.path, []byte(tt.body), json422)
			if resp.StatusCode != 422 || resp.Header.Get("Content-Type") != problemContentType {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			var p tapi.Problem
			if err := json.Unmarshal(b, &p); err != nil || p.Type != tapi.TypeValidation {
				t.Fatalf("problem %s", b)
			}
			var got []string
			for _, e := range p.Errors {
				if e.Pointer == nil {
					t.Fatalf("error without a pointer: %s", b)
				}
				got = append(got, fmt.Sprintf("%q: %s", *e.Pointer, e.Message))
			}
			for _, w := range tt.want {
				ptr, msg, _ := strings.Cut(w, ": ")
				if !strings.HasPrefix(ptr, `"`) {
					ptr = fmt.Sprintf("%q", ptr)
				}
				found := false
				for _, g := range got {
					if strings.HasPrefix(g, ptr+": ") && strings.Contains(g, msg) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error %s: %s in %q", ptr, msg, got)
				}
			}
		})
	}
	list, err := r.store.MessageList(context.Background(), &store.MessageListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Messages) != 0 || tg.calls.Load() != 0 {
		t.Fatalf("failing bodies were stored (%d) or sent (%d)", len(list.Messages), tg.calls.Load())
	}
	if resp, b := r.do(t, "POST", "/orders", []byte(`{"sku":"ABC-1","qty":2,"lines":[{"n":1}]}`), json422); resp.StatusCode != 202 {
		t.Fatalf("a passing body: %d %s", resp.StatusCode, b)
	}
	if resp, b := r.do(t, "POST", "/inline", []byte(`{"id":"ok"}`), json422); resp.StatusCode != 200 {
		t.Fatalf("a passing body, in memory: %d %s", resp.StatusCode, b)
	}

	// The schema is the request body of the route in /openapi.json, its
	// own $refs pointing into the components.
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	r.getJSON(t, "/openapi.json", &doc)
	ref := doc.Paths["/orders"]["post"].RequestBody.Content["application/json"].Schema["$ref"]
	body := doc.Components.Schemas["RouteOrdersBody"]
	if ref != "#/components/schemas/RouteOrdersBody" || body == nil {
		t.Fatalf("request body schema %v", doc.Paths["/orders"]["post"].RequestBody)
	}
	b, _ := json.Marshal(body)
	if !strings.Contains(string(b), `"#/components/schemas/RouteOrdersBody/$defs/line"`) || strings.Contains(string(b), `"$schema"`) {
		t.Errorf("embedded schema %s", b)
	}
}

// TestIdempotencyKeyPerCaller: the same Idempotency-Key sent with two API
// keys names two messages; sent again with the first key, it is the
// first message again.
func TestIdempotencyKeyPerCaller(t *testing.T) {
	t.Parallel()
	hash := func(k string) string { s := sha256.Sum256([]byte(k)); return "sha256:" + hex.EncodeToString(s[:]) }
	r := newRig(t, fmt.Sprintf(`auth:
  keys:
    - { name: shop, hash: %q, scopes: ["ingest:*"] }
    - { name: crm, hash: %q, scopes: ["ingest:orders", admin] }
`, hash("shop-key"), hash("crm-key")))
	send := func(key string) (string, bool) {
		resp, b := r.do(t, "POST", "/orders", []byte(`{"n":1}`), map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + key, "Idempotency-Key": "order-1",
		})
		if resp.StatusCode != 202 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var a struct{ ID string }
		_ = json.Unmarshal(b, &a)
		return a.ID, resp.Header.Get("Idempotent-Replayed") == "true"
	}
	shop, rep1 := send("shop-key")
	crm, rep2 := send("crm-key")
	again, rep3 := send("shop-key")
	if shop == crm || rep1 || rep2 {
		t.Errorf("two callers' key named one message: %s %s (replayed %v %v)", shop, crm, rep1, rep2)
	}
	if again != shop || !rep3 {
		t.Errorf("the repeat of the first caller: %s replayed=%v, want %s replayed", again, rep3, shop)
	}
}

// TestMaxWaiting: beyond server.max_waiting callers waiting on routes that
// answer after their steps, a caller gets 503 overloaded with Retry-After
// and nothing is accepted; routes that answer at once are not counted.
func TestMaxWaiting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	var arrived atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	r := newEdgeRig(t, fmt.Sprintf(`
server: { max_waiting: 2 }
targets:
  slow: { url: %q }
routes:
  - { name: wait, path: /wait, respond: all, durable: false, deadline: 30s, steps: [{ name: s, target: slow }] }
  - { name: later, path: /later, steps: [{ name: s, target: slow }] }
`, slow.URL), nil)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := r.do(t, "POST", "/wait", []byte(`{}`), nil)
			if resp.StatusCode != 200 {
				t.Errorf("a waiting caller: %d %s", resp.StatusCode, b)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for arrived.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, b := r.do(t, "POST", "/wait", []byte(`{}`), nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), tapi.TypeOverloaded) {
		t.Errorf("the third waiting caller: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if resp, b := r.do(t, "POST", "/later", []byte(`{}`), nil); resp.StatusCode != 202 {
		t.Errorf("a route that answers at once: %d %s", resp.StatusCode, b)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	if resp, b := r.do(t, "POST", "/wait", []byte(`{}`), nil); resp.StatusCode != 200 {
		t.Errorf("after the others were answered: %d %s", resp.StatusCode, b)
	}
}

// TestSlowClientsCutOff: with real connections, callers that trickle their
// body are cut off by server.read_timeout, and idle keep-alive connections
// are closed after server.idle_timeout; a prompt caller is served.
func TestSlowClientsCutOff(t *testing.T) {
	t.Parallel()
	tg := newTestTarget(t, 200)
	r := newEdgeRig(t, fmt.Sprintf(`
server: { read_timeout: 1s, read_header_timeout: 1s, idle_timeout: 1s }
targets:
  ok: { url: %q }
routes:
  - { name: orders, path: /orders, steps: [{ name: charge, target: ok }] }
`, tg.srv.URL), nil)
	addr := r.srv.Listener.Addr().String()
	const tricklers = 20
	closed := make(chan time.Duration, tricklers)
	stop := make(chan struct{})
	defer close(stop)
	for range tricklers {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				closed <- -1
				return
			}
			defer c.Close()
			start := time.Now()
			if _, err := io.WriteString(c, "POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"); err != nil {
				closed <- -1
				return
			}
			// One byte every 200ms, for at most 60s: the server must cut
			// the connection long before.
			go func() {
				_, _ = io.Copy(io.Discard, c)
				closed <- time.Since(start)
			}()
			for i := 0; i < 300; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
	}
	for i := range tricklers {
		select {
		case d := <-closed:
			if d < 0 {
				t.Fatal("dial or write failed")
			}
			if d > 30*time.Second {
				t.Errorf("trickler %d lasted %v", i, d)
			}
		case <-time.After(45 * time.Second):
			t.Fatalf("only %d of %d trickling connections were cut off", i, tricklers)
		}
	}

	// A caller trickling its headers (slowloris) is cut off too.
	hc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hdone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, hc)
		close(hdone)
	}()
	head := "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("s", 300)
	for i := 0; i < len(head); i++ {
		if _, err := hc.Write([]byte{head[i]}); err != nil {
			break
		}
		select {
		case <-hdone:
			i = len(head)
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-hdone:
	case <-time.After(30 * time.Second):
		t.Error("a connection trickling its headers was not cut off")
	}

	// An idle keep-alive connection is closed by the server.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz on a raw connection: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive: read %v, want EOF (closed by the server)", err)
	}
}

// TestTargetsShowInMemoryInFlight: GET /v1/targets counts the attempts of
// durable: false routes in flight, and they never exceed the target's
// concurrency (counted at the target).
func TestTargetsShowInMemoryInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	var open, most atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := open.Add(1)
		defer open.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	r := newEdgeRig(t, fmt.Sprintf(`
targets:
  slow: { url: %q, concurrency: 2 }
routes:
  - { name: fast, path: /fast, respond: all, durable: false, deadline: 30s, steps: [{ name: s, target: slow }] }
`, slow.URL), nil)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, b := r.do(t, "POST", "/fast", []byte(`{}`), nil); resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	var targets struct {
		Targets []struct {
			Name     string `json:"name"`
			InFlight int    `json:"in_flight"`
		} `json:"targets"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.getJSON(t, "/v1/targets", &targets)
		if len(targets.Targets) == 1 && targets.Targets[0].InFlight == 2 && open.Load() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets %+v, %d open at the target", targets.Targets, open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	once.Do(func() { close(release) })
	wg.Wait()
	if m := most.Load(); m > 2 {
		t.Errorf("%d requests open at once at the target, cap 2", m)
	}
	r.getJSON(t, "/v1/targets", &targets)
	if targets.Targets[0].InFlight != 0 {
		t.Errorf("in flight after all answered: %+v", targets.Targets)
	}
}

// TestStreamingLiftsWriteTimeout: a handler that calls streaming keeps
// writing past server.write_timeout on a real connection.
func TestStreamingLiftsWriteTimeout(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Server: config.Server{WriteTimeout: config.Duration(300 * time.Millisecond)}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stream") == "1" {
			streaming(w)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 8 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	ConfigureServer(srv.Config, cfg)
	srv.Start()
	t.Cleanup(srv.Close)
	read := func(q string) int {
		resp, err := srv.Client().Get(srv.URL + "/?stream=" + q)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Count(string(b), "data: ")
	}
	if n := read("1"); n != 8 {
		t.Errorf("a streaming answer got %d of 8 events", n)
	}
	if n := read("0"); n == 8 {
		t.Errorf("without streaming, the write timeout did not cut the answer (%d events)", n)
	}
}

// TestStoredHeadersAllowList: a durable route keeps the default headers,
// its own store_headers and the headers its templates read, and nothing
// else; a template that reads a header still gets it at the target.
func TestStoredHeadersAllowList(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 2)
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	t.Cleanup(tg.Close)
	r := newEdgeRig(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - name: a
    path: /a
    store_headers: [X-Tenant]
    steps: [{ name: s, target: t, headers: { X-User: "{{ request.headers['x-user-id'] }}" } }]
`, tg.URL), nil)
	resp, b := r.do(t, "POST", "/a?api_key=k&page=2", []byte(`{}`), map[string]string{
		"Content-Type": "application/json", "X-Tenant": "acme", "X-User-Id": "u-7", "X-Other": "no",
		"X-Session-Token": "tok", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	})
	if resp.StatusCode != 202 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var a struct{ ID string }
	_ = json.Unmarshal(b, &a)
	select {
	case h := <-got:
		if h.Get("X-User") != "u-7" {
			t.Errorf("the target got X-User %q, want u-7", h.Get("X-User"))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the target was not called")
	}
	md, err := r.store.MessageGet(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored := http.Header(md.Message.Headers)
	for _, h := range []string{"X-Other", "X-Session-Token", "Traceparent"} {
		if stored.Get(h) != "" {
			t.Errorf("stored %s: %v", h, stored)
		}
	}
	if stored.Get("X-Tenant") != "acme" || stored.Get("X-User-Id") != "u-7" {
		t.Errorf("stored headers %v", stored)
	}
	if q := md.Message.Query; len(q["api_key"]) != 0 || len(q["page"]) != 1 {
		t.Errorf("stored query %v", q)
	}
}
