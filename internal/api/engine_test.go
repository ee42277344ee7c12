package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// Tests through a real engine, a real SQLite store in a temp dir and real
// HTTP targets; requests go through httptest.NewServer and a real client.

// testTarget is a real HTTP target; its answer is a status the test sets.
type testTarget struct {
	srv    *httptest.Server
	status atomic.Int64
	calls  atomic.Int64
}

func newTestTarget(t testing.TB, status int) *testTarget {
	t.Helper()
	tg := &testTarget{}
	tg.status.Store(int64(status))
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tg.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(tg.status.Load()))
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// rig is a running engine with its store and HTTP handler.
type rig struct {
	eng     *engine.Engine
	store   store.Store
	handler http.Handler
	srv     *httptest.Server
	ok      *testTarget // answers 200
	flaky   *testTarget // answers 400 (dead at once) until set to 200
}

const rigYAML = `
server: { max_body: 1KiB }
targets:
  ok:    { url: %q }
  flaky: { url: %q, retry: { max_attempts: 1 } }
routes:
  - { name: orders, path: /orders, steps: [{ name: charge, target: ok }] }
  - { name: sync, path: /sync, respond: all, deadline: 5s, steps: [{ name: charge, target: ok }] }
  - name: fail
    path: /fail
    steps:
      - { name: first, target: flaky }
      - { name: second, target: ok, after: [first] }
%s`

// newRig starts an engine on a fresh SQLite store; extra is appended to
// the config (e.g. an auth section).
func newRig(t testing.TB, extra string) *rig {
	t.Helper()
	ok := newTestTarget(t, 200)
	flaky := newTestTarget(t, 400)
	cfg, err := config.Parse([]byte(fmt.Sprintf(rigYAML, ok.srv.URL, flaky.srv.URL, extra)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "api.db"), Logger: quietLogger()})
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
	r := &rig{eng: eng, store: st, handler: h, ok: ok, flaky: flaky}
	r.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		r.srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return r
}

// do sends one request to the rig's server with a real client.
func (r *rig) do(t testing.TB, method, path string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// As the Go client does: admin requests that change state are JSON.
	if method != http.MethodGet && strings.HasPrefix(path, "/v1/") && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// getJSON GETs path, checks a 200 and decodes the answer into v.
func (r *rig) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, b := r.do(t, "GET", path, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: decode: %v; %s", path, err, b)
	}
}

// send posts a JSON body to a route and returns the message id.
func (r *rig) send(t testing.TB, path, body string) string {
	t.Helper()
	resp, b := r.do(t, "POST", path, []byte(body), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	var a engine.MessageAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
		t.Fatalf("POST %s: answer %s (%v)", path, b, err)
	}
	return a.ID
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// httpProblem checks that an answer is a problem with the status.
func httpProblem(t testing.TB, resp *http.Response, b []byte, status int) Problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != problemContentType {
		t.Fatalf("content type %q, want %s", ct, problemContentType)
	}
	var p Problem
	if err := json.Unmarshal(b, &p); err != nil || p.Status != status {
		t.Fatalf("problem %s (%v)", b, err)
	}
	return p
}

func TestIngestAcceptedAndMessageDetail(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	resp, b := r.do(t, "POST", "/orders?src=web&token=q-secret&api_key=k-secret", []byte(`{"total": 12.5, "items": ["a"]}`), map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer x", "Cookie": "c=1",
		"Proxy-Authorization": "Basic eA==", "X-Trace": "t1", "X-Api-Key": "h-secret",
		"X-Request-Id": "req-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var ans struct{ ID, Status string }
	if err := json.Unmarshal(b, &ans); err != nil || ans.Status != "accepted" {
		t.Fatalf("answer %s", b)
	}
	if loc := resp.Header.Get("Location"); loc != "/v1/messages/"+ans.ID {
		t.Errorf("Location %q", loc)
	}
	if resp.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first send marked as replayed")
	}

	// Credentials never reach the engine; other headers and the query do.
	md, err := r.store.MessageGet(context.Background(), ans.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Only the headers of server.store_headers (here the default list)
	// are kept: never a credential, nor a header outside the list.
	for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key", "X-Trace"} {
		if _, ok := http.Header(md.Message.Headers)[h]; ok {
			t.Errorf("stored headers hold %s", h)
		}
	}
	stored := http.Header(md.Message.Headers)
	if stored.Get("X-Request-Id") != "req-1" || stored.Get("Traceparent") == "" || md.Message.Query["src"][0] != "web" {
		t.Errorf("stored headers %v query %v", md.Message.Headers, md.Message.Query)
	}
	// Credential-like query parameters are dropped.
	if _, ok := md.Message.Query["token"]; ok || len(md.Message.Query["api_key"]) > 0 {
		t.Errorf("stored query %v holds a credential", md.Message.Query)
	}

	var detail map[string]json.RawMessage
	waitFor(t, "message succeeded", func() bool {
		r.getJSON(t, "/v1/messages/"+ans.ID, &detail)
		return string(detail["status"]) == `"succeeded"`
	})
	wantKeys(t, "message", detail, "id", "route", "status", "created_at", "updated_at", "idempotency_key", "body", "deliveries", "timeline", "trace_id")
	if string(detail["body"]) != `{"total":12.5,"items":["a"]}` || string(detail["route"]) != `"orders"` {
		t.Errorf("body %s route %s", detail["body"], detail["route"])
	}
	var ds []map[string]json.RawMessage
	if err := json.Unmarshal(detail["deliveries"], &ds); err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %s", detail["deliveries"])
	}
	d := ds[0]
	wantKeys(t, "delivery", d, "id", "step", "target", "status", "after", "required", "attempts",
		"next_attempt_at", "last_error", "response", "replays", "compensates", "compensation")
	if string(d["after"]) != `[]` || string(d["next_attempt_at"]) != `null` || string(d["required"]) != `true` {
		t.Errorf("delivery %v", d)
	}
	if string(d["response"]) != `{"http_status":200,"body":{"ok":true}}` {
		t.Errorf("response %s", d["response"])
	}
	var attempts []map[string]json.RawMessage
	if err := json.Unmarshal(d["attempts"], &attempts); err != nil || len(attempts) != 1 {
		t.Fatalf("attempts %s", d["attempts"])
	}
	wantKeys(t, "attempt", attempts[0], "n", "started_at", "duration_ms", "http_status", "outcome", "error")
	if string(attempts[0]["http_status"]) != "200" || string(attempts[0]["outcome"]) != `"success"` {
		t.Errorf("attempt %v", attempts[0])
	}

	resp, b = r.do(t, "GET", "/v1/messages/no-such-id", nil, nil)
	httpProblem(t, resp, b, 404)
}

// wantKeys checks that an object has exactly the keys.
func wantKeys(t testing.TB, what string, obj map[string]json.RawMessage, keys ...string) {
	t.Helper()
	var got []string
	for k := range obj {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("%s keys %v, want %v", what, got, keys)
	}
}

func TestIngestNonJSONBody(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	resp, b := r.do(t, "POST", "/orders", []byte("plain \x00 text"), map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var ans engine.MessageAnswer
	_ = json.Unmarshal(b, &ans)
	var detail struct{ Body json.RawMessage }
	r.getJSON(t, "/v1/messages/"+ans.ID, &detail)
	if string(detail.Body) != `"plain \u0000 text"` {
		t.Errorf("body %s, want a JSON string", detail.Body)
	}
}

func TestIdempotentRepeat(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	hdr := map[string]string{"Content-Type": "application/json", "Idempotency-Key": "order-42"}
	resp1, b1 := r.do(t, "POST", "/orders", []byte(`{"n":1}`), hdr)
	resp2, b2 := r.do(t, "POST", "/orders", []byte(`{"n":1}`), hdr)
	if resp1.StatusCode != 202 || resp2.StatusCode != 202 {
		t.Fatalf("statuses %d %d: %s %s", resp1.StatusCode, resp2.StatusCode, b1, b2)
	}
	var a1, a2 engine.MessageAnswer
	_ = json.Unmarshal(b1, &a1)
	_ = json.Unmarshal(b2, &a2)
	if a1.ID == "" || a1.ID != a2.ID {
		t.Errorf("repeat got id %q, first %q", a2.ID, a1.ID)
	}
	if resp2.Header.Get("Idempotent-Replayed") != "true" || resp1.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("Idempotent-Replayed: first %q, repeat %q", resp1.Header.Get("Idempotent-Replayed"), resp2.Header.Get("Idempotent-Replayed"))
	}
	if resp2.Header.Get("Location") != "/v1/messages/"+a1.ID {
		t.Errorf("repeat Location %q", resp2.Header.Get("Location"))
	}
	resp3, b3 := r.do(t, "POST", "/orders", []byte(`{"n":2}`), hdr)
	// The same key with another body: 422 (IETF httpapi idempotency draft).
	p := httpProblem(t, resp3, b3, http.StatusUnprocessableEntity)
	if !strings.Contains(p.Detail, "Idempotency-Key") || p.Type != tapi.TypeIdempotencyConflict {
		t.Errorf("problem %+v, want type %s", p, tapi.TypeIdempotencyConflict)
	}
	var list struct {
		Messages []struct {
			ID             string `json:"id"`
			IdempotencyKey string `json:"idempotency_key"`
		} `json:"messages"`
	}
	r.getJSON(t, "/v1/messages?route=orders", &list)
	if len(list.Messages) != 1 || list.Messages[0].IdempotencyKey != "order-42" {
		t.Errorf("messages %+v, want the one", list.Messages)
	}
}

func TestIngestRespondAll(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	resp, b := r.do(t, "POST", "/sync", []byte(`{}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var ans engine.MessageAnswer
	if err := json.Unmarshal(b, &ans); err != nil || ans.Status != record.MessageSucceeded || ans.Steps["charge"].HTTPStatus != 200 {
		t.Fatalf("answer %s", b)
	}
	if resp.Header.Get("Location") != "/v1/messages/"+ans.ID {
		t.Errorf("Location %q", resp.Header.Get("Location"))
	}
}

func TestIngestLimitsOverHTTP(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	big := bytes.Repeat([]byte("a"), 1025) // max_body 1KiB
	resp, b := r.do(t, "POST", "/orders", big, nil)
	httpProblem(t, resp, b, http.StatusRequestEntityTooLarge)

	// Without a Content-Length the limit applies while reading.
	req, _ := http.NewRequest("POST", r.srv.URL+"/orders", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp2, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	httpProblem(t, resp2, b2, http.StatusRequestEntityTooLarge)

	resp, b = r.do(t, "POST", "/orders", []byte(`{"a":}`), map[string]string{"Content-Type": "application/json"})
	if p := httpProblem(t, resp, b, 400); !strings.Contains(p.Detail, "offset 6") {
		t.Errorf("detail %q does not name the offset", p.Detail)
	}
	resp, b = r.do(t, "DELETE", "/orders", nil, nil)
	httpProblem(t, resp, b, 405)
	if resp.Header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
	resp, b = r.do(t, "POST", "/nowhere", nil, nil)
	httpProblem(t, resp, b, 404)
}

func TestMessagesPagination(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	var sent []string
	for i := range 5 {
		sent = append(sent, r.send(t, "/orders", fmt.Sprintf(`{"i":%d}`, i)))
	}
	sent = append(sent, r.send(t, "/fail", `{}`))
	type page struct {
		Messages []map[string]json.RawMessage `json:"messages"`
		Next     string                       `json:"next_cursor"`
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		var p page
		r.getJSON(t, "/v1/messages?route=orders&limit=2&cursor="+cursor, &p)
		if len(p.Messages) > 2 {
			t.Fatalf("page of %d", len(p.Messages))
		}
		for _, m := range p.Messages {
			wantKeys(t, "message", m, "id", "route", "status", "created_at", "updated_at", "idempotency_key")
			var id string
			_ = json.Unmarshal(m["id"], &id)
			got = append(got, id)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	want := slices.Clone(sent[:5])
	slices.Reverse(want) // newest first
	if !slices.Equal(got, want) {
		t.Errorf("paged ids %v, want %v", got, want)
	}

	waitFor(t, "the fail message to fail", func() bool {
		var p page
		r.getJSON(t, "/v1/messages?status=failed", &p)
		return len(p.Messages) == 1 && string(p.Messages[0]["id"]) == `"`+sent[5]+`"`
	})
	for _, path := range []string{"/v1/messages?cursor=garbage", "/v1/dead-letters?cursor=%21%21"} {
		resp, b := r.do(t, "GET", path, nil, nil)
		httpProblem(t, resp, b, http.StatusBadRequest)
	}
	var none page
	r.getJSON(t, "/v1/messages?route=nope", &none)
	if none.Messages == nil || len(none.Messages) != 0 || none.Next != "" {
		t.Errorf("empty filter: %+v", none)
	}
}

func TestDeadLettersAndReplay(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	ids := []string{r.send(t, "/fail", `{"n":1}`), r.send(t, "/fail", `{"n":2}`), r.send(t, "/fail", `{"n":3}`)}
	type deadPage struct {
		DeadLetters []map[string]json.RawMessage `json:"dead_letters"`
		Next        string                       `json:"next_cursor"`
	}
	var dl deadPage
	waitFor(t, "three dead letters", func() bool {
		r.getJSON(t, "/v1/dead-letters?route=fail", &dl)
		return len(dl.DeadLetters) == 3
	})
	wantKeys(t, "dead letter", dl.DeadLetters[0], "id", "message_id", "route", "step", "target", "attempts", "last_error", "updated_at")
	var first deadLetter
	for _, d := range dl.DeadLetters {
		var one deadLetter
		raw, _ := json.Marshal(d)
		_ = json.Unmarshal(raw, &one)
		if one.MessageID == ids[0] {
			first = one
		}
	}
	if first.ID == "" || first.Route != "fail" || first.Target != "flaky" || first.Step != "first" || first.Attempts != 1 || first.LastError == "" {
		t.Errorf("dead letter of the first message %+v", first)
	}
	var p1 deadPage
	r.getJSON(t, "/v1/dead-letters?target=flaky&limit=2", &p1)
	if len(p1.DeadLetters) != 2 || p1.Next == "" {
		t.Fatalf("first page %+v", p1)
	}
	var p2 deadPage
	r.getJSON(t, "/v1/dead-letters?target=flaky&limit=2&cursor="+p1.Next, &p2)
	if len(p2.DeadLetters) != 1 || p2.Next != "" {
		t.Fatalf("second page %+v", p2)
	}
	var targets struct {
		Targets []targetView `json:"targets"`
	}
	r.getJSON(t, "/v1/targets", &targets)
	if len(targets.Targets) != 2 || targets.Targets[0].Name != "flaky" || targets.Targets[0].Queue.Dead != 3 ||
		targets.Targets[1].Name != "ok" || targets.Targets[1].Queue.Dead != 0 {
		t.Errorf("targets %+v", targets.Targets)
	}

	// The target recovers; replay one delivery by id.
	r.flaky.status.Store(200)
	resp, b := r.do(t, "POST", "/v1/deliveries/"+first.ID+"/replay", nil, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != fmt.Sprintf(`{"replayed":1,"ids":["%s"]}`, first.ID) {
		t.Fatalf("replay: %d %s", resp.StatusCode, b)
	}
	resp, b = r.do(t, "POST", "/v1/deliveries/"+first.ID+"/replay", nil, nil)
	if resp.StatusCode != http.StatusConflict {
		// Telling "not dead" from "unknown" needs the store to honour
		// store.DeliveryListParams.ID.
		t.Errorf("replaying a delivery that is not dead: %d %s, want 409", resp.StatusCode, b)
	}
	resp, b = r.do(t, "POST", "/v1/deliveries/no-such-id/replay", nil, nil)
	httpProblem(t, resp, b, http.StatusNotFound)
	waitFor(t, "the replayed message to succeed", func() bool {
		var m struct{ Status string }
		r.getJSON(t, "/v1/messages/"+ids[0], &m)
		return m.Status == "succeeded"
	})

	// Replay the rest by filter.
	resp, b = r.do(t, "POST", "/v1/dead-letters/replay", []byte(`{"route":"fail","target":"flaky"}`), map[string]string{"Content-Type": "application/json"})
	var res replayResult
	if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil || res.Replayed != 2 || len(res.IDs) != 2 {
		t.Fatalf("replay by filter: %d %s", resp.StatusCode, b)
	}
	resp, b = r.do(t, "POST", "/v1/dead-letters/replay", []byte(`{"all":true}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"replayed":0,"ids":[]}` {
		t.Fatalf("replay all with none dead: %d %s", resp.StatusCode, b)
	}
	resp, b = r.do(t, "POST", "/v1/dead-letters/replay", []byte(`{"ids":["no-such-id"]}`), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"replayed":0,"ids":[]}` {
		t.Fatalf("replay unknown ids: %d %s", resp.StatusCode, b)
	}
	r.getJSON(t, "/v1/dead-letters", &dl)
	if len(dl.DeadLetters) != 0 {
		t.Errorf("dead letters left: %v", dl.DeadLetters)
	}
}

func TestRoutesAndReadiness(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	var routes struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	r.getJSON(t, "/v1/routes", &routes)
	if len(routes.Routes) != 3 {
		t.Fatalf("routes %v", routes.Routes)
	}
	wantKeys(t, "route", routes.Routes[0], "name", "method", "path", "respond", "durable", "saga", "steps", "targets")
	if string(routes.Routes[1]["respond"]) != `"all"` || string(routes.Routes[2]["steps"]) != `["first","second"]` {
		t.Errorf("routes %v", routes.Routes)
	}

	resp, b := r.do(t, "GET", "/readyz", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("readyz: %d %s", resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.eng.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp, b = r.do(t, "GET", "/readyz", nil, nil)
	httpProblem(t, resp, b, http.StatusServiceUnavailable)
	resp, b = r.do(t, "POST", "/orders", []byte(`{}`), map[string]string{"Content-Type": "application/json"})
	httpProblem(t, resp, b, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("503 without Retry-After")
	}
	resp, _ = r.do(t, "GET", "/healthz", nil, nil)
	if resp.StatusCode != 200 {
		t.Errorf("healthz while shutting down: %d", resp.StatusCode)
	}
}

func TestAuthOverHTTP(t *testing.T) {
	t.Parallel()
	r := newRig(t, fmt.Sprintf(`auth:
  keys:
    - { name: shop, hash: %q, scopes: ["ingest:orders"] }
    - { name: ops, hash: %q, scopes: [admin] }
`, keyHash("shop-key"), keyHash("ops-key")))
	hdr := map[string]string{"Content-Type": "application/json"}
	resp, b := r.do(t, "POST", "/orders", []byte(`{}`), hdr)
	httpProblem(t, resp, b, 401)
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
	hdr["Authorization"] = "Bearer shop-key"
	if resp, b = r.do(t, "POST", "/orders", []byte(`{}`), hdr); resp.StatusCode != 202 {
		t.Fatalf("ingest with key: %d %s", resp.StatusCode, b)
	}
	resp, b = r.do(t, "POST", "/fail", []byte(`{}`), hdr)
	httpProblem(t, resp, b, 403)
	resp, b = r.do(t, "GET", "/v1/messages", nil, map[string]string{"Authorization": "Bearer shop-key"})
	httpProblem(t, resp, b, 403)
	resp, b = r.do(t, "GET", "/v1/messages", nil, nil)
	httpProblem(t, resp, b, 401) // keys replace the loopback rule
	resp, b = r.do(t, "GET", "/v1/messages", nil, map[string]string{"Authorization": "Bearer ops-key"})
	if resp.StatusCode != 200 {
		t.Fatalf("admin with key: %d %s", resp.StatusCode, b)
	}
}
